"""Ranking and rating metrics on tiny cases computed by hand."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation import metrics

LOG3 = math.log2(3)  # discount of rank 2 is 1 / log2(3) = 0.6309

# user 0: relevant {1, 4, 7}: hits at ranks 2 and 3
# user 1: relevant {2}: hit at rank 1, rest padding
# user 2: no eval items -> skipped everywhere
# user 3: relevant {9}: no hit
TOP_K = np.array([[3, 1, 4], [2, -1, -1], [0, 5, 6], [5, 6, 0]])
RELEVANT = [{1, 4, 7}, {2}, set(), {9}]


def test_recall_uses_min_of_k_and_relevant_count():
    # (2/min(3,3) + 1/min(3,1) + 0) / 3 users = (2/3 + 1 + 0) / 3 = 5/9
    assert metrics.recall_at_k(TOP_K, RELEVANT) == pytest.approx(5 / 9)
    # k=1: (0/1 + 1/1 + 0/1) / 3 = 1/3
    assert metrics.recall_at_k(TOP_K, RELEVANT, k=1) == pytest.approx(1 / 3)
    # 5 relevant items, both of the K=2 slots hit: 2 / min(2, 5) = 1
    assert metrics.recall_at_k(np.array([[0, 1]]), [{0, 1, 2, 3, 4}]) == pytest.approx(1.0)


def test_ndcg_binary_with_ideal_over_min_k_relevant():
    user0 = (1 / LOG3 + 1 / 2) / (1 + 1 / LOG3 + 1 / 2)  # hits at ranks 2,3; ideal 3 hits
    user1 = 1.0                                         # hit at rank 1; ideal 1 hit
    expected = (user0 + user1 + 0.0) / 3                # = (0.5307 + 1 + 0) / 3
    assert metrics.ndcg_at_k(TOP_K, RELEVANT) == pytest.approx(expected)
    assert expected == pytest.approx(0.51024, abs=1e-5)


def test_hit_rate_and_mrr():
    assert metrics.hit_rate_at_k(TOP_K, RELEVANT) == pytest.approx(2 / 3)  # users 0 and 1 hit
    assert metrics.mrr(TOP_K, RELEVANT) == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert metrics.mrr(TOP_K, RELEVANT, k=1) == pytest.approx((0 + 1 + 0) / 3)


def test_users_without_eval_items_are_skipped_and_none_left_is_nan():
    # the skipped user 2 would have recall 0; with it counted the mean would be 5/12
    assert metrics.recall_at_k(TOP_K[:3], RELEVANT[:3]) == pytest.approx((2 / 3 + 1) / 2)
    assert math.isnan(metrics.recall_at_k(np.array([[1, 2]]), [set()]))


def test_padding_never_hits():
    assert metrics.recall_at_k(np.array([[-1, -1]]), [{0}]) == 0.0


def test_k_larger_than_catalog():
    # catalog of 3 items, lists of width 5: three items then two pads
    top = metrics.top_k_from_scores(np.array([[0.1, 0.7, 0.4]]), k=5)
    np.testing.assert_array_equal(top, [[1, 2, 0, -1, -1]])
    # all 3 relevant items found: 3 / min(5, 3) = 1
    assert metrics.recall_at_k(top, [{0, 1, 2}]) == pytest.approx(1.0)
    assert metrics.ndcg_at_k(top, [{0, 1, 2}]) == pytest.approx(1.0)


def test_catalog_coverage():
    assert metrics.catalog_coverage(np.array([[0, 1], [1, -1]]), n_items=4) == 0.5  # {0,1}/4
    assert metrics.catalog_coverage(np.array([[0, 1], [0, 2]]), 4, k=1) == 0.25     # {0}/4
    with pytest.raises(ValueError, match="catalog"):
        metrics.catalog_coverage(np.array([[7]]), n_items=4)


def test_interaction_hit_rate():
    top = np.array([[1, 2], [3, 0]])
    rows, items = np.array([0, 0, 1, 1]), np.array([2, 5, 0, 0])
    # 2 in row 0: yes; 5 in row 0: no; 0 in row 1: yes, twice -> 3/4
    assert metrics.interaction_hit_rate_at_k(top, rows, items) == pytest.approx(0.75)
    # first column only: row 0 [1], row 1 [3] -> 0/4
    assert metrics.interaction_hit_rate_at_k(top, rows, items, k=1) == 0.0


def test_rmse_and_mae():
    # errors 0, -2, 3: squares 0, 4, 9 -> rmse sqrt(13/3); abs 0, 2, 3 -> mae 5/3
    assert metrics.rmse([1, 2, 3], [1, 4, 0]) == pytest.approx(math.sqrt(13 / 3))
    assert metrics.mae([1, 2, 3], [1, 4, 0]) == pytest.approx(5 / 3)
    with pytest.raises(ValueError, match="differ"):
        metrics.rmse([1, 2], [1])


def test_top_k_ties_by_item_index_and_exclusion():
    scores = np.array([[0.5, 0.9, 0.5, 0.9, 0.1]])
    # 0.9 tie: 1 before 3; 0.5 tie: 0 before 2, and only one fits
    np.testing.assert_array_equal(metrics.top_k_from_scores(scores, 3), [[1, 3, 0]])
    np.testing.assert_array_equal(metrics.top_k_from_scores(scores, 3, exclude=[{1}]),
                                  [[3, 0, 2]])
    # -inf scores are never returned
    np.testing.assert_array_equal(metrics.top_k_from_scores(np.array([[-np.inf, -1, -2]]), 3),
                                  [[1, 2, -1]])
    # the caller's array is left untouched
    np.testing.assert_array_equal(scores, [[0.5, 0.9, 0.5, 0.9, 0.1]])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), min_size=6, max_size=6), min_size=1, max_size=4),
       st.integers(1, 8))
def test_top_k_matches_a_full_stable_sort(rows, k):
    scores = np.array(rows, dtype=np.float64)  # values 0..3: many ties
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    expected = np.pad(expected, ((0, 0), (0, k - expected.shape[1])), constant_values=-1)
    np.testing.assert_array_equal(metrics.top_k_from_scores(scores, k), expected)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="relevant has 1 users"):
        metrics.recall_at_k(np.array([[0], [1]]), [{0}])
    with pytest.raises(ValueError, match="more than once"):
        metrics.recall_at_k(np.array([[1, 1]]), [{1}])
    with pytest.raises(ValueError, match="k must lie"):
        metrics.recall_at_k(np.array([[1, 2]]), [{1}], k=3)
    with pytest.raises(ValueError, match="NaN"):
        metrics.top_k_from_scores(np.array([[np.nan, 1.0]]), 1)
    with pytest.raises(ValueError, match="excluded"):
        metrics.top_k_from_scores(np.array([[0.0, 1.0]]), 1, exclude=[{2}])
    with pytest.raises(ValueError, match="2-D int"):
        metrics.recall_at_k(np.array([0, 1]), [{0}, {1}])
