"""The quality lab's item kNN, inner split and candidate merge, on hand-computed tiny data."""

import numpy as np

from benchmarks import quality_lab
from evaluation.data import InteractionData


def _data(users, items, timestamps=None, n_users=3, n_items=4):
    n = len(users)
    return InteractionData(np.array(users), np.array(items), np.ones(n),
                           np.array(timestamps if timestamps is not None else np.arange(n)), n_users, n_items)


def test_knn_scores_match_hand_computed_cosine_with_shrinkage():
    # user 0: items 0, 1; user 1: items 0, 1, 2; user 2: item 2.
    data = _data([0, 0, 1, 1, 1, 2], [0, 1, 0, 1, 2, 2])
    scores = quality_lab.knn_scores(data, neighbours=3, shrink=1.0)
    # n = [2, 2, 2, 0]; c01 = 2, c02 = 1, c12 = 1; sim = c / (sqrt(n_i n_j) + 1).
    s01, s02 = 2 / 3, 1 / 3
    expected_user2 = [s02, s02, 0.0, 0.0]         # only item 2 in the history
    expected_user0 = [s01, s01, s02 + s02, 0.0]   # items 0 and 1
    np.testing.assert_allclose(scores[2], expected_user2, rtol=1e-5)
    np.testing.assert_allclose(scores[0], expected_user0, rtol=1e-5)


def test_knn_keeps_only_top_neighbours():
    data = _data([0, 0, 1, 1, 1, 2], [0, 1, 0, 1, 2, 2])
    scores = quality_lab.knn_scores(data, neighbours=1, shrink=1.0)
    # item 2's single neighbour is item 0 (tie with item 1, either may win) -> one nonzero.
    assert np.count_nonzero(scores[2]) == 1


def test_inner_split_by_time_holds_out_the_newest_fraction():
    data = _data([0, 0, 1, 1, 2], [0, 1, 2, 3, 0], timestamps=[5, 1, 4, 2, 3])
    fit, label = quality_lab.inner_split(data, "time", fraction=0.4)
    assert sorted(label.timestamps.tolist()) == [4, 5]
    assert sorted(fit.timestamps.tolist()) == [1, 2, 3]


def test_candidates_merge_sources_and_drop_seen_items():
    train = _data([0, 1], [0, 3], n_users=2, n_items=4)
    a = np.array([[9.0, 8.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]], np.float32)
    b = np.array([[0.0, 1.0, 5.0, 0.5], [4.0, 0.0, 0.0, 9.0]], np.float32)
    cfg = quality_lab.RankerConfig(per_source=1)
    cands, x, names = quality_lab.candidate_features({"a": a, "b": b}, train, cfg)
    # user 0 (saw 0): a's best is 1, b's best is 2; user 1 (saw 3): a's best is 2, b's best is 0.
    assert [sorted(c[c >= 0].tolist()) for c in cands] == [[1, 2], [0, 2]]
    assert x.shape == (2, 2, len(names))
    rank_a = x[0, :, names.index("a_logrank")]
    np.testing.assert_allclose(sorted(rank_a), [0.0, np.log1p(1)])  # listed first / not listed
