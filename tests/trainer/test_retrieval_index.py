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
