"""Per-item and per-user tables of the non-neural candidate sources, from interactions.

Interactions are parallel arrays of user indices, catalog rows and (transformed) timestamps.
Popularity is each item's share of the interactions; recent popularity weighs each interaction
by 0.5 ** (age / half_life), age measured back from the newest interaction in the same units as
the timestamps (the Transform scales them to [0, 1] over the training period). The ranker's
shared features come from the same counts: the item's and the user's log(1 + interactions).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class PopularityTables:
    """What the popularity sources and the ranker's shared features read.

    Attributes:
      popularity: float32 [N], each item's share of the interactions.
      recent_popularity: float32 [N], the same with time-decayed weights (sums to 1).
      item_log_count: float32 [N], log(1 + interactions of the item).
      user_log_activity: float32 [U + 1], log(1 + interactions of the user); the last row (the
        unknown user) is 0.
      half_life: recent popularity's half-life, in timestamp units.
    """

    popularity: np.ndarray
    recent_popularity: np.ndarray
    item_log_count: np.ndarray
    user_log_activity: np.ndarray
    half_life: float


def recent_popularity(rows: np.ndarray, timestamps: np.ndarray, n_items: int, half_life: float) -> np.ndarray:
    """Time-decayed item shares: sum over interactions of 0.5 ** ((newest - t) / half_life)."""
    if len(rows) == 0:
        return np.zeros(n_items, np.float32)
    ages = float(np.max(timestamps)) - np.asarray(timestamps, np.float64)
    weights = np.exp2(-ages / half_life)
    scores = np.bincount(rows, weights=weights, minlength=n_items)
    return (scores / max(scores.sum(), 1e-300)).astype(np.float32)


def popularity_tables(
    users: np.ndarray, rows: np.ndarray, timestamps: np.ndarray, n_users: int, n_items: int, half_life: float
) -> PopularityTables:
    """The tables of interactions (users in [0, n_users), rows in [0, n_items))."""
    counts = np.bincount(rows, minlength=n_items).astype(np.float64)
    activity = np.zeros(n_users + 1, np.float32)
    activity[:n_users] = np.log1p(np.bincount(users, minlength=n_users)[:n_users])
    return PopularityTables(
        popularity=(counts / max(counts.sum(), 1.0)).astype(np.float32),
        recent_popularity=recent_popularity(rows, timestamps, n_items, half_life),
        item_log_count=np.log1p(counts).astype(np.float32),
        user_log_activity=activity,
        half_life=float(half_life),
    )


def cold_start_list(rows: np.ndarray, timestamps: np.ndarray, n_items: int,
                    half_life: Optional[float]) -> Tuple[np.ndarray, np.ndarray]:
    """What unknown users are recommended: catalog rows by descending score, and the scores.

    The score is each item's share of the interactions (`half_life` None: all-time popularity)
    or its time-decayed share (`recent_popularity` at `half_life`). Ties keep catalog order.

    Returns:
      (int32 [n_items] rows, float32 [n_items] their scores).
    """
    if half_life is None:
        return ranked_by_share(np.bincount(np.asarray(rows, np.int64), minlength=n_items))
    return ranked_by_share(recent_popularity(np.asarray(rows, np.int64), timestamps, n_items, half_life))


def ranked_by_share(weights: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Items by descending weight (ties in catalog order): (int32 rows, float32 shares of the total)."""
    weights = np.asarray(weights, np.float64)
    order = np.argsort(-weights, kind="stable")
    return order.astype(np.int32), (weights[order] / max(weights.sum(), 1e-300)).astype(np.float32)
