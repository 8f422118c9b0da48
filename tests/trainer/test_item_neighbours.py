"""Neighbour tables against hand-computed tiny examples and dense numpy formulas."""

import tracemalloc

import numpy as np
import pytest

from trainer import item_neighbours as N
from trainer.item_item_config import ItemItemConfig

# Users 0, 1, 2 with items {0, 1}, {0, 1, 2}, {1, 2}; user 0 rates item 0 twice (counts once).
USERS = np.array([0, 0, 0, 1, 1, 1, 2, 2])
ITEMS = np.array([0, 1, 0, 0, 1, 2, 1, 2])


def _dense(users, items, num_items):
    x = np.zeros((users.max() + 1, num_items))
    for u, i in zip(users, items):
        x[u, i] = 1.0
    return x


def _reference_top_k(matrix, k):
    """Top k of each row without the diagonal, ties to the smaller column (a full stable sort)."""
    m = matrix.astype(np.float64).copy()
    np.fill_diagonal(m, -np.inf)
    cols = np.argsort(-m, axis=1, kind="stable")[:, :k]
    return cols, np.take_along_axis(m, cols, axis=1)


def test_ease_tiny_example_by_hand():
    # X^T X = [[2,2,1],[2,3,2],[1,2,2]]; + 1 I = [[3,2,1],[2,4,2],[1,2,3]], determinant 16,
    # inverse P = [[8,-4,0],[-4,8,-4],[0,-4,8]] / 16; B_ij = -P_ij / P_jj:
    # B_01 = B_10 = B_12 = B_21 = 0.5, B_02 = B_20 = 0.
    ids, weights = N.ease_neighbours(USERS, ITEMS, num_items=3, l2=1.0, k=2)
    np.testing.assert_array_equal(ids, [[1, 2], [0, 2], [1, 0]])  # row 1: a tie, smaller id first
    np.testing.assert_allclose(weights, [[0.5, 0.0], [0.5, 0.5], [0.5, 0.0]], atol=1e-6)
    assert ids.dtype == np.int32 and weights.dtype == np.float32


def test_ease_matches_the_dense_formula_on_random_data():
    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 60, 500), rng.integers(0, 25, 500)
    x = _dense(users, items, 25)
    p = np.linalg.inv(x.T @ x + 7.0 * np.eye(25))
    b = np.eye(25) - p / np.diag(p)[None, :]
    expected_ids, expected_weights = _reference_top_k(b, 6)
    # A small block size exercises the blocked Gram matrix, symmetrisation and top-k.
    ids, weights = N.ease_neighbours(users, items, 25, l2=7.0, k=6, block_bytes=3 * 25 * 24)
    np.testing.assert_array_equal(ids, expected_ids)
    np.testing.assert_allclose(weights, expected_weights, rtol=1e-5, atol=1e-7)


def test_cooccurrence_tiny_example_by_hand():
    # Item 3 is rated by user 3 alone: it co-occurs with nothing.
    users, items = np.r_[USERS, 3], np.r_[ITEMS, 3]
    ids, weights = N.cooccurrence_neighbours(users, items, num_items=4, shrinkage=1.0, k=2)
    # n = (2, 3, 2, 1); c_01 = 2, c_02 = 1, c_12 = 2.
    s01 = 2 / (np.sqrt(2 * 3) + 1)
    s02 = 1 / (np.sqrt(2 * 2) + 1)
    s12 = 2 / (np.sqrt(3 * 2) + 1)
    np.testing.assert_array_equal(ids, [[1, 2], [0, 2], [1, 0], [3, 3]])  # item 3: padded with itself
    np.testing.assert_allclose(weights, [[s01, s02], [s01, s12], [s12, s02], [0, 0]], rtol=1e-6)


def test_cooccurrence_matches_the_dense_formula_in_any_blocking():
    rng = np.random.default_rng(5)
    users, items = rng.integers(0, 80, 700), rng.integers(0, 40, 700)
    x = _dense(users, items, 40)
    n = x.sum(axis=0)
    sim = (x.T @ x) / (np.sqrt(n[:, None] * n[None, :]) + 4.0)
    expected_ids, expected_weights = _reference_top_k(sim, 7)
    for block_bytes in (1, 64 << 20):  # one item per block, then all in one block
        ids, weights = N.cooccurrence_neighbours(users, items, 40, shrinkage=4.0, k=7, block_bytes=block_bytes)
        np.testing.assert_array_equal(ids, expected_ids)
        np.testing.assert_allclose(weights, expected_weights, rtol=1e-6)


def test_cooccurrence_on_a_large_sparse_catalog_never_allocates_num_items_squared():
    num_items, k = 200_000, 10
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 2_000, 20_000), rng.integers(0, num_items, 20_000)
    tracemalloc.start()
    try:
        ids, weights = N.cooccurrence_neighbours(users, items, num_items, shrinkage=10.0, k=k, block_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    table_bytes = num_items * k * (4 + 4)
    # The table, its padding template and a few O(interactions + num_items) arrays; a dense
    # float row block of the 200k x 200k matrix would need 1.6 MB per row.
    assert peak < 3 * table_bytes + 16 * num_items * 8, f"peak {peak / 1e6:.1f} MB"
    assert ids.shape == (num_items, k)
    assert (weights > 0).sum() > 0
    # Every item that is somebody's only item is padded with itself.
    loners = np.flatnonzero(weights[:, 0] == 0)
    np.testing.assert_array_equal(ids[loners, 0], loners)


def test_dispatcher_uses_ease_up_to_the_limit_and_cooccurrence_above():
    small = N.item_neighbours(ItemItemConfig(ease_max_items=3, ease_l2=1.0, neighbours=2), USERS, ITEMS, 3)
    assert small.method == N.EASE
    np.testing.assert_allclose(small.weights[0], [0.5, 0.0], atol=1e-6)
    large = N.item_neighbours(ItemItemConfig(ease_max_items=2, cooccurrence_shrinkage=1.0, neighbours=2), USERS, ITEMS, 3)
    assert large.method == N.COOCCURRENCE
    np.testing.assert_allclose(large.weights[0, 0], 2 / (np.sqrt(6) + 1), rtol=1e-6)


def test_neighbours_are_capped_by_the_catalog_and_repeated_pairs_count_once():
    ids, weights = N.ease_neighbours(np.r_[USERS, USERS], np.r_[ITEMS, ITEMS], 3, l2=1.0, k=100)
    assert ids.shape == (3, 2)
    np.testing.assert_allclose(weights, [[0.5, 0.0], [0.5, 0.5], [0.5, 0.0]], atol=1e-6)


@pytest.mark.parametrize("learner", [
    lambda u, i, n: N.ease_neighbours(u, i, n, l2=1.0, k=2),
    lambda u, i, n: N.cooccurrence_neighbours(u, i, n, shrinkage=1.0, k=2),
])
def test_items_outside_the_catalog_are_refused(learner):
    with pytest.raises(ValueError, match="item index 3 is outside the catalog"):
        learner(USERS, np.r_[ITEMS[:-1], 3], 3)


def test_config_names_the_bad_key():
    with pytest.raises(ValueError, match="item_item.neighbours must be at least 1"):
        ItemItemConfig(neighbours=0)
    with pytest.raises(ValueError, match="item_item.weights_dtype"):
        ItemItemConfig(weights_dtype="int8")
