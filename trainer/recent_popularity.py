"""Recent popularity: per-item interaction counts that favour the newest interactions.

The candidate source for new and light users. Either every interaction counts with weight
0.5 ** (age / half-life) (exponential decay), or only those of the last `window_days` count,
1 each. Ages are measured back from `now` (default: the newest timestamp); an interaction
after `now` counts as age 0.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

SECONDS_PER_DAY = 86_400.0


def recent_popularity(
    item_idx: np.ndarray,
    timestamps: np.ndarray,
    num_items: int,
    half_life_days: Optional[float] = None,
    window_days: Optional[float] = None,
    now: Optional[float] = None,
) -> np.ndarray:
    """Recency-weighted interaction count of every item.

    Args:
      item_idx: item index of each interaction, in [0, num_items).
      timestamps: its time in seconds (parallel to `item_idx`).
      num_items: catalog size.
      half_life_days: decay half-life; give exactly one of this and `window_days`.
      window_days: count only interactions at most this many days older than `now`.
      now: the reference time in seconds (default: the newest timestamp).

    Returns:
      float64 [num_items] scores (0 for items without counted interactions).
    """
    items = np.asarray(item_idx).reshape(-1).astype(np.int64)
    times = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if len(items) != len(times):
        raise ValueError(f"item_idx has {len(items)} entries but timestamps has {len(times)}")
    if (half_life_days is None) == (window_days is None):
        raise ValueError("give exactly one of half_life_days and window_days")
    if (half_life_days is not None and half_life_days <= 0) or (window_days is not None and window_days <= 0):
        raise ValueError(f"half_life_days / window_days must be positive, got {half_life_days} / {window_days}")
    if len(items) and (items.min() < 0 or items.max() >= num_items):
        bad = items[(items < 0) | (items >= num_items)][0]
        raise ValueError(f"item index {bad} is outside the catalog [0, {num_items})")
    if not len(items):
        return np.zeros(num_items, np.float64)
    reference = float(times.max()) if now is None else float(now)
    age_days = np.maximum(reference - times, 0.0) / SECONDS_PER_DAY
    if half_life_days is not None:
        weight = np.power(0.5, age_days / half_life_days)
    else:
        weight = (age_days <= window_days).astype(np.float64)
    return np.bincount(items, weights=weight, minlength=num_items)
