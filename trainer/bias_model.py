"""The bias rating model: global mean + regularised user and item biases, fitted in closed form.

The rating network predicts the residual over it (`TrainerConfig.rating_bias`), and its RMSE is
the bar the rating head is measured against (`training_summary.json`). The biases are fitted by
alternating ridge updates: each pass sets, with the other biases fixed,
``b_i = sum_{u in R(i)} (r_ui - mu - b_u) / (l2_item + |R(i)|)`` for every item, then
``b_u = sum_{i in R(u)} (r_ui - mu - b_i) / (l2_user + |R(u)|)`` for every user. Ids without
ratings get bias 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Biases:
    """A fitted bias model: `global_mean` + `user_bias[u]` + `item_bias[i]`."""

    global_mean: float
    user_bias: np.ndarray  # float64 [n_users]
    item_bias: np.ndarray  # float64 [n_items]

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings (float64 [n]) of (user, item) index pairs; indices must be in range."""
        return self.global_mean + self.user_bias[np.asarray(users)] + self.item_bias[np.asarray(items)]


def fit_biases(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int,
               l2_user: float = 10.0, l2_item: float = 10.0, n_iters: int = 10) -> Biases:
    """Fits mu and the biases on the ratings of (user, item) index pairs.

    Args:
      users / items / ratings: parallel [n] arrays (indices in 0..n_users-1 / 0..n_items-1).
      n_users / n_items: sizes of the bias tables.
      l2_user / l2_item: ridge penalties (>= 0).
      n_iters: alternating passes (>= 1).

    Returns:
      The fitted `Biases`.

    Raises:
      ValueError: no ratings, a negative penalty or no pass.
    """
    if len(ratings) == 0:
        raise ValueError("no ratings to fit")
    if l2_user < 0 or l2_item < 0 or n_iters < 1:
        raise ValueError(f"need l2 >= 0 and n_iters >= 1; got {l2_user}, {l2_item}, {n_iters}")
    ratings = np.asarray(ratings, np.float64)
    global_mean = float(ratings.mean())
    residual = ratings - global_mean
    user_counts = np.bincount(users, minlength=n_users)
    item_counts = np.bincount(items, minlength=n_items)
    user_bias = np.zeros(n_users)
    item_bias = np.zeros(n_items)
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 only for ids without ratings at l2 = 0
        for _ in range(n_iters):
            item_bias = np.bincount(items, residual - user_bias[users], n_items) / (l2_item + item_counts)
            item_bias = np.nan_to_num(item_bias, nan=0.0)
            user_bias = np.bincount(users, residual - item_bias[items], n_users) / (l2_user + user_counts)
            user_bias = np.nan_to_num(user_bias, nan=0.0)
    return Biases(global_mean, user_bias, item_bias)


def rmse(predictions: np.ndarray, ratings: np.ndarray) -> float:
    """Root mean squared error of `predictions` against `ratings` (NaN when empty)."""
    if len(ratings) == 0:
        return float("nan")
    return float(np.sqrt(np.mean((np.asarray(predictions, np.float64) - np.asarray(ratings, np.float64)) ** 2)))
