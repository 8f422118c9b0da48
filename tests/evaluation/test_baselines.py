"""Baselines against small worked examples."""

import numpy as np
import pytest

from evaluation.baselines import BiasRatingModel, EASERecommender, PopularityRecommender
from evaluation.data import InteractionData
from evaluation.metrics import recall_at_k


def _data(pairs, n_users, n_items, ratings=None):
    users, items = zip(*pairs, strict=True)
    ratings = [1.0] * len(pairs) if ratings is None else ratings
    return InteractionData(users, items, ratings, [0] * len(pairs), n_users, n_items)


def test_popularity_ranks_by_count_then_index_and_excludes_seen():
    # counts: item0 1, item1 3, item2 2, item3 0
    data = _data([(0, 1), (1, 1), (1, 2), (2, 1), (2, 2), (2, 0)], 3, 4)
    model = PopularityRecommender().fit(data)
    np.testing.assert_array_equal(model.recommend(np.array([0]), 3), [[2, 0, 3]])
    np.testing.assert_array_equal(model.recommend(np.array([2]), 3), [[3, -1, -1]])
    np.testing.assert_array_equal(model.recommend(np.array([0]), 2, exclude_seen=False), [[1, 2]])
    # an exact tie: items 0 and 2 both count 1 -> lower index first, then item 1 (count 0)
    tied = PopularityRecommender().fit(_data([(0, 2), (1, 0)], 2, 3))
    np.testing.assert_array_equal(tied.recommend(np.array([0]), 3, exclude_seen=False),
                                  [[0, 2, 1]])
    with pytest.raises(ValueError, match="user indices"):
        model.recommend(np.array([3]), 2)


def test_ease_two_items_by_hand():
    # users {0,1}, {0}, {0}: G = [[3, 1], [1, 1]]; with l2 = 1, G + I = [[4, 1], [1, 2]]
    # B[0,1] = G01 / (G00 + l2) = 1/4 and B[1,0] = G01 / (G11 + l2) = 1/2 for two items
    model = EASERecommender(l2=1.0).fit(_data([(0, 0), (0, 1), (1, 0), (2, 0)], 3, 2))
    np.testing.assert_allclose(model.weights, [[0.0, 0.25], [0.5, 0.0]], atol=1e-6)


# X (users x items):  u0 [1 1 0], u1 [1 0 0], u2 [1 0 1], u3 [1 1 1], u4 [0 1 0]
EASE_PAIRS = [(0, 0), (0, 1), (1, 0), (2, 0), (2, 2), (3, 0), (3, 1), (3, 2), (4, 1)]


def test_ease_three_items_by_hand():
    # G = X^T X = [[4,2,2],[2,3,1],[2,1,2]]; l2 = 2: A = [[6,2,2],[2,5,1],[2,1,4]]
    # det A = 6*19 - 2*6 + 2*(-8) = 86; P = adj(A)/86 = [[19,-6,-8],[-6,20,-2],[-8,-2,26]]/86
    # B[i,j] = -P[i,j] / P[j,j]
    expected = np.array([[0.0, 6 / 20, 8 / 26],
                         [6 / 19, 0.0, 2 / 26],
                         [8 / 19, 2 / 20, 0.0]])
    model = EASERecommender(l2=2.0).fit(_data(EASE_PAIRS, 5, 3))
    np.testing.assert_allclose(model.weights, expected, atol=1e-6)
    # the same through the formula with numpy's inverse
    gram = np.array([[4, 2, 2], [2, 3, 1], [2, 1, 2]], dtype=float) + 2.0 * np.eye(3)
    precision = np.linalg.inv(gram)
    formula = np.eye(3) - precision / np.diag(precision)[None, :]
    np.testing.assert_allclose(model.weights, formula, atol=1e-6)
    # u1 {0}: scores B[0] = [0, .3, .3077] -> [2, 1]; u4 {1}: B[1] = [.3158, 0, .0769] -> [0, 2]
    # u2 {0,2}: B[0] + B[2] = [.4211, .4, .3077]; 0 and 2 seen -> [1, -1]
    np.testing.assert_array_equal(model.recommend(np.array([1, 4, 2]), 2),
                                  [[2, 1], [0, 2], [1, -1]])
    np.testing.assert_array_equal(model.recommend(np.array([1]), 2, exclude_seen=False), [[2, 1]])


def test_ease_models_only_the_most_popular_items():
    # counts 4, 3, 2: max_items=2 keeps items 0 and 1; item 2 is never recommended
    model = EASERecommender(l2=2.0, max_items=2).fit(_data(EASE_PAIRS, 5, 3))
    np.testing.assert_array_equal(model.item_ids, [0, 1])
    assert model.weights.shape == (2, 2)
    np.testing.assert_array_equal(model.recommend(np.array([1]), 3), [[1, -1, -1]])


def _planted(seed):
    """Group A (20 users) likes items 0-9, group B (40 users) items 10-19; one held out each."""
    rng = np.random.default_rng(seed)
    train, held_out = [], []
    for user in range(60):
        pool = np.arange(10) if user < 20 else np.arange(10, 20)
        chosen = rng.choice(pool, size=6, replace=False)
        train += [(user, int(item)) for item in chosen[:5]]
        held_out.append({int(chosen[5])})
    return _data(train, 60, 20), held_out


def test_ease_beats_popularity_on_two_disjoint_taste_groups():
    train, held_out = _planted(seed=0)
    users = np.arange(60)
    ease_lists = EASERecommender(l2=1.0).fit(train).recommend(users, 5)
    popular_lists = PopularityRecommender().fit(train).recommend(users, 5)
    # popularity recommends group B's (more frequent) items to group A users: no hit for them,
    # so its recall is at most 40/60
    assert recall_at_k(popular_lists[:20], held_out[:20]) == 0.0
    popular = recall_at_k(popular_lists, held_out)
    assert popular <= 40 / 60
    assert recall_at_k(ease_lists[:20], held_out[:20]) > 0.8
    assert recall_at_k(ease_lists, held_out) > popular + 0.2


TOY = [(0, 0), (0, 1), (1, 0), (2, 2)]
TOY_RATINGS = [5.0, 3.0, 4.0, 1.0]


def test_bias_model_one_pass_by_hand():
    data = _data(TOY, 3, 3, TOY_RATINGS)
    model = BiasRatingModel(l2_user=1.0, l2_item=2.0, n_iters=1).fit(data)
    # mu = (5 + 3 + 4 + 1) / 4 = 3.25; residuals r - mu: 1.75, -0.25, 0.75, -2.25
    assert model.global_mean == pytest.approx(3.25)
    # items first (user biases 0): i0 (1.75 + 0.75)/(2+2), i1 -0.25/(2+1), i2 -2.25/(2+1)
    np.testing.assert_allclose(model.item_bias, [0.625, -0.25 / 3, -0.75])
    # users: u0 ((1.75 - 0.625) + (-0.25 + 0.25/3))/(1+2), u1 (0.75 - 0.625)/(1+1),
    # u2 (-2.25 + 0.75)/(1+1)  =  [0.958333 / 3, 0.0625, -0.75]
    np.testing.assert_allclose(model.user_bias, [0.319444, 0.0625, -0.75], atol=1e-6)
    # u0, i1: mu + b_u0 + b_i1 = 3.25 + 0.319444 - 0.083333
    np.testing.assert_allclose(model.predict([0], [1]), [3.486111], atol=1e-6)


def test_bias_model_converges_to_the_ridge_fixed_point():
    data = _data(TOY, 3, 3, TOY_RATINGS)
    model = BiasRatingModel(l2_user=3.0, l2_item=0.5, n_iters=500).fit(data)
    residual = data.ratings - model.global_mean
    users, items = data.users, data.items
    item_fixed = (np.bincount(items, residual - model.user_bias[users], 3)
                  / (0.5 + np.bincount(items, minlength=3)))
    user_fixed = (np.bincount(users, residual - model.item_bias[items], 3)
                  / (3.0 + np.bincount(users, minlength=3)))
    np.testing.assert_allclose(model.item_bias, item_fixed, atol=1e-9)
    np.testing.assert_allclose(model.user_bias, user_fixed, atol=1e-9)


def test_bias_model_falls_back_for_unknown_users_and_items():
    model = BiasRatingModel(l2_user=1.0, l2_item=1.0, n_iters=1).fit(_data(TOY, 4, 4, TOY_RATINGS))
    # user 3 and item 3 have no ratings: bias 0; -1 marks an unknown id: bias 0
    np.testing.assert_allclose(model.predict([3, -1, -1], [0, 3, -1]),
                               [3.25 + 2.5 / 3, 3.25 + 0.0, 3.25])
    with pytest.raises(ValueError, match="user indices"):
        model.predict([4], [0])
    clipped = BiasRatingModel(n_iters=1, clip=(3.0, 3.3)).fit(_data(TOY, 3, 3, TOY_RATINGS))
    assert clipped.predict([2], [2])[0] == 3.0
