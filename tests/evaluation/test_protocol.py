"""The evaluation protocol, its slices and the side-by-side table, on hand-checked data."""

import math

import numpy as np
import pytest

from evaluation.data import InteractionData
from evaluation.protocol import (
    compare_side_by_side,
    evaluate_ratings,
    evaluate_slices,
    evaluate_top_k,
    evaluate_top_k_unexcluded,
)
from evaluation.slices import slice_items_by_popularity, slice_users_by_activity

LOG3 = math.log2(3)


def _data(pairs, n_users=4, n_items=5, ratings=None):
    users, items = zip(*pairs, strict=True) if pairs else ((), ())
    ratings = [1.0] * len(pairs) if ratings is None else ratings
    return InteractionData(users, items, ratings, [0] * len(pairs), n_users, n_items)


# train: u0 {0}, u1 {1}, u2 {0, 1}; u3 is cold
TRAIN = _data([(0, 0), (1, 1), (2, 0), (2, 1)])
# eval: u0 {1, 0 (seen, dropped)}, u1 {2}, u2 nothing, u3 {3}
EVAL = _data([(0, 1), (0, 0), (1, 2), (3, 3)])
LISTS = {0: [1, 2], 1: [3, 2], 2: [4, 3], 3: [3, 4]}


class _Fixed:
    """A recommend_fn returning the lists above, recording the users it is asked for."""

    def __init__(self):
        self.calls = []

    def __call__(self, users, k):
        self.calls.append(users.tolist())
        return np.array([LISTS[int(u)][:k] for u in users])


def test_evaluate_top_k_by_hand():
    recommend = _Fixed()
    result = evaluate_top_k(recommend, TRAIN, EVAL, cutoffs=(1, 2))
    assert recommend.calls == [[0, 1, 3]]  # u2 has no eval item; one list width: max(cutoffs)
    # relevant: u0 {1} (item 0 was seen), u1 {2}, u3 {3}
    assert result["n_users"] == 3
    assert result["recall_at_1"] == pytest.approx((1 + 0 + 1) / 3)
    # had the seen item 0 stayed relevant, u0 would score 1/min(2,2) = 0.5 here
    assert result["recall_at_2"] == pytest.approx((1 + 1 + 1) / 3)
    assert result["ndcg_at_2"] == pytest.approx((1 + 1 / LOG3 + 1) / 3)  # u1 hits at rank 2
    assert result["user_hit_rate_at_1"] == pytest.approx(2 / 3)
    assert result["mrr"] == pytest.approx((1 + 1 / 2 + 1) / 3)
    assert result["coverage_at_1"] == pytest.approx(2 / 5)  # {1, 3} of 5 items
    assert result["coverage_at_2"] == pytest.approx(4 / 5)  # {1, 2, 3, 4}


def test_batches_do_not_change_results():
    recommend = _Fixed()
    batched = evaluate_top_k(recommend, TRAIN, EVAL, cutoffs=(1, 2), batch_size=2)
    assert recommend.calls == [[0, 1], [3]]
    assert batched == evaluate_top_k(_Fixed(), TRAIN, EVAL, cutoffs=(1, 2))


def test_max_users_samples_reproducibly():
    first = evaluate_top_k(_Fixed(), TRAIN, EVAL, cutoffs=(2,), max_users=2, seed=3)
    assert first["n_users"] == 2
    assert first == evaluate_top_k(_Fixed(), TRAIN, EVAL, cutoffs=(2,), max_users=2, seed=3)


def test_bad_recommendations_and_mismatched_splits_raise():
    with pytest.raises(ValueError, match="must return int"):
        evaluate_top_k(lambda users, k: np.zeros((users.size, k - 1), int), TRAIN, EVAL, (2,))
    with pytest.raises(ValueError, match="outside"):
        evaluate_top_k(lambda users, k: np.full((users.size, k), 9), TRAIN, EVAL, (2,))
    with pytest.raises(ValueError, match="share"):
        evaluate_top_k(_Fixed(), TRAIN, _data([(0, 1)], n_items=6), (2,))


def test_unexcluded_interaction_hit_rate():
    # eval interactions: (u0,1) in [1,2] yes; (u0,0) no; (u1,2) in [3,2] yes; (u3,3) yes -> 3/4
    result = evaluate_top_k_unexcluded(_Fixed(), EVAL, k=2)
    assert result == {"top2_interaction_hit_rate": pytest.approx(0.75), "n_interactions": 4.0}
    # k=1: only (u0,1) and (u3,3) -> 2/4
    assert evaluate_top_k_unexcluded(_Fixed(), EVAL, k=1)["top1_interaction_hit_rate"] == 0.5


def test_evaluate_slices_restricts_users_and_relevant_items():
    results = evaluate_slices(_Fixed(), TRAIN, EVAL, user_slices={"first_two": [0, 1]},
                              item_slices={"x": [2], "y": [1, 3]}, cutoffs=(1, 2))
    assert results["all"] == evaluate_top_k(_Fixed(), TRAIN, EVAL, cutoffs=(1, 2))
    # u0, u1: recall@1 = (1 + 0) / 2
    assert results["first_two"]["recall_at_1"] == pytest.approx(0.5)
    assert results["first_two"]["n_users"] == 2
    # only u1 has a relevant item in {2}: [3, 2] -> recall@1 0, recall@2 1; item 2 listed -> 1/1
    assert results["x"]["n_users"] == 1
    assert (results["x"]["recall_at_1"], results["x"]["recall_at_2"]) == (0.0, 1.0)
    assert results["x"]["coverage_at_2"] == 1.0
    # u0 {1} and u3 {3} hit at rank 1; of the slice's items 1 and 3, both listed at k=1
    assert results["y"]["recall_at_1"] == 1.0
    assert results["y"]["coverage_at_1"] == 1.0
    with pytest.raises(ValueError, match="outside"):
        evaluate_slices(_Fixed(), TRAIN, EVAL, {"bad": [7]}, {}, cutoffs=(1,))


def test_empty_slice_gives_nan_metrics():
    results = evaluate_slices(_Fixed(), TRAIN, EVAL, {"nobody": []}, {}, cutoffs=(1,))
    assert results["nobody"]["n_users"] == 0
    assert math.isnan(results["nobody"]["recall_at_1"])


def test_slice_users_by_activity():
    # train counts per user: [0, 1, 2, 3, 4, 10]; active [1, 2, 3, 4, 10]
    # median 3; 75th percentile at position 0.75 * 4 = 3 of the sorted counts -> 4
    pairs = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)] + [(4, i) for i in range(4)]
    pairs += [(5, i % 5) for i in range(10)]
    slices = slice_users_by_activity(_data(pairs, n_users=6))
    expected = {"cold": [0], "light": [1, 2], "medium": [3], "heavy": [4, 5]}
    assert {name: users.tolist() for name, users in slices.items()} == expected


def test_slice_items_by_popularity():
    # counts [6, 2, 1, 1, 0], total 10: 20 % is 2 interactions, item 0 alone covers them
    pairs = [(0, 0)] * 6 + [(1, 1)] * 2 + [(2, 2), (3, 3)]
    slices = slice_items_by_popularity(_data(pairs))
    assert slices["head"].tolist() == [0] and slices["tail"].tolist() == [1, 2, 3, 4]
    # counts [3, 3, 3, 3, 3], total 15: 20 % is 3 (not 3.0000000000000004): item 0 suffices
    equal = slice_items_by_popularity(_data([(0, i % 5) for i in range(15)]))
    assert equal["head"].tolist() == [0]
    # counts [1, 2, 0, 1, 0], total 4: 20 % is 0.8 -> the most popular item 1
    assert slice_items_by_popularity(_data([(0, 0), (0, 1), (1, 1), (0, 3)]))["head"].tolist() \
        == [1]


def test_evaluate_ratings():
    eval_data = _data([(0, 0), (1, 1)], ratings=[4.0, 2.0])
    result = evaluate_ratings(lambda users, items: np.array([3.0, 3.0]), eval_data)
    assert result == {"rmse": pytest.approx(1.0), "mae": pytest.approx(1.0)}  # errors 1, -1


def test_compare_side_by_side():
    table = compare_side_by_side({"ease": {"recall_at_10": 0.25, "mrr": float("nan")},
                                  "popularity": {"recall_at_10": 0.125, "rmse": 1.0}})
    assert table == ("| metric | ease | popularity |\n"
                     "|---|---:|---:|\n"
                     "| recall_at_10 | 0.2500 | 0.1250 |\n"
                     "| mrr | n/a | - |\n"
                     "| rmse | - | 1.0000 |\n")
