"""`RetrievalIndexConfig`: every bad key is a one-line ConfigError naming it, at load."""

from __future__ import annotations

import pytest

from core.config_loader import ConfigError, from_dict
from trainer.retrieval_index import RetrievalIndexConfig


def test_the_default_is_brute_force():
    assert not from_dict(RetrievalIndexConfig, {}, "retrieval_index").approximate
    assert from_dict(RetrievalIndexConfig, {"kind": "scann"}, "retrieval_index").approximate


@pytest.mark.parametrize("values, message", [
    ({"kind": "annoy"}, "retrieval_index.kind must be one of brute_force, scann, got 'annoy'"),
    ({"num_leaves": 0, "leaves_to_search": 0},
     "retrieval_index.num_leaves must be >= 1, got 0; retrieval_index.leaves_to_search must be >= 1, got 0"),
    ({"reorder": -1}, "retrieval_index.reorder must be >= 0, got -1"),
    ({"seen_headroom": -5}, "retrieval_index.seen_headroom must be >= 0, got -5"),
    ({"num_leaves": 10, "leaves_to_search": 20},
     "retrieval_index.leaves_to_search (20) must not exceed num_leaves (10)"),
    ({"dimensions_per_block": 0}, "retrieval_index.dimensions_per_block must be >= 1, got 0"),
])
def test_bad_values_are_one_line_errors_naming_the_key(values, message):
    with pytest.raises(ConfigError) as caught:
        from_dict(RetrievalIndexConfig, values, "retrieval_index")
    assert str(caught.value) == message


def test_a_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match=r"retrieval_index.num_leaves: expected an integer"):
        from_dict(RetrievalIndexConfig, {"num_leaves": "many"}, "retrieval_index")


def test_the_leaf_counts_are_automatic_by_default():
    cfg = RetrievalIndexConfig(kind="scann")
    assert (cfg.num_leaves, cfg.leaves_to_search) == (None, None)
    # round(sqrt(n)) leaves, a tenth of them (at least 1) searched
    assert cfg.resolve_leaves(48) == (7, 1)  # sqrt 6.93
    assert cfg.resolve_leaves(42) == (6, 1)  # sqrt 6.48
    assert cfg.resolve_leaves(1) == (1, 1)
    assert cfg.resolve_leaves(12_100) == (110, 11)
    assert cfg.resolve_leaves(1_000_000) == (1000, 100)


def test_automatic_search_covers_three_times_what_a_query_retrieves():
    cfg = RetrievalIndexConfig(kind="scann")
    assert cfg.resolve_leaves(800, 300) == (28, 28)  # ceil(3 * 300 * 28 / 800) = 32, at most 28
    assert cfg.resolve_leaves(12_100, 300) == (110, 11)  # ceil(8.2) = 9 < a tenth
    assert cfg.resolve_leaves(40_000, 300) == (200, 20)  # ceil(4.5) < a tenth
    assert cfg.resolve_leaves(10_000, 300) == (100, 10)  # ceil(9.0) = 9 < a tenth
    assert cfg.resolve_leaves(2_500, 300) == (50, 18)  # ceil(18.0)
    assert RetrievalIndexConfig(kind="scann", leaves_to_search=2).resolve_leaves(800, 300) == (28, 2)


def test_explicit_leaf_counts_are_kept():
    assert RetrievalIndexConfig(kind="scann", num_leaves=10, leaves_to_search=4).resolve_leaves(48) == (10, 4)
    assert RetrievalIndexConfig(kind="scann", num_leaves=30).resolve_leaves(1000) == (30, 3)
    assert RetrievalIndexConfig(kind="scann", leaves_to_search=5).resolve_leaves(100) == (10, 5)


@pytest.mark.parametrize("values, n_items, message", [
    ({"num_leaves": 100, "leaves_to_search": 10}, 48, "retrieval_index.num_leaves (100) exceeds the catalog's 48 items"),
    ({"num_leaves": 49}, 48, "retrieval_index.num_leaves (49) exceeds the catalog's 48 items"),
    ({"leaves_to_search": 8}, 48,
     "retrieval_index.leaves_to_search (8) exceeds the automatic num_leaves (7) of the catalog's 48 items"),
])
def test_leaf_counts_the_catalog_cannot_hold_are_one_line_errors(values, n_items, message):
    with pytest.raises(ValueError) as caught:
        RetrievalIndexConfig(kind="scann", **values).resolve_leaves(n_items)
    assert str(caught.value) == message
