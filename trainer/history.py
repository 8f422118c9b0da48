"""Each user's recent items, the query tower's history input.

Histories are item vocabulary indices shifted by one (0 pads), most recent first, at most
`features.HISTORY_LENGTH` long. For a training example the history holds the user's items
strictly before it (by timestamp, then by position), so the target never leaks into its input;
for serving, a user's history is their latest training items.
"""

from __future__ import annotations

import numpy as np

from core import features as F


def _order(users: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    return np.lexsort((np.arange(len(users)), timestamps, users))


def example_histories(users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, length: int = F.HISTORY_LENGTH) -> np.ndarray:
    """History [n, length] of every example: the same user's previous items, newest first.

    Args:
      users / items / timestamps: parallel [n] arrays (transformed user and item indices).
      length: history width.
    """
    n = len(users)
    order = _order(users, timestamps)
    sorted_users, sorted_items = users[order], items[order].astype(np.int64) + 1
    out_sorted = np.zeros((n, length), np.int64)
    for k in range(1, length + 1):
        if k >= n:
            break
        same_user = sorted_users[k:] == sorted_users[:-k]
        out_sorted[k:, k - 1] = np.where(same_user, sorted_items[:-k], 0)
    out = np.empty_like(out_sorted)
    out[order] = out_sorted
    return out


def latest_histories(users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, n_users: int, length: int = F.HISTORY_LENGTH) -> np.ndarray:
    """History [n_users + 1, length] of each user after all their items; the last row is empty."""
    order = _order(users, timestamps)
    sorted_users, sorted_items = users[order], items[order].astype(np.int64) + 1
    out = np.zeros((n_users + 1, length), np.int64)
    if len(order) == 0:
        return out
    # Position of each row counted back from its user's newest row: 0 = newest.
    ends = np.r_[np.flatnonzero(np.diff(sorted_users)), len(order) - 1]
    end_of_row = np.repeat(ends, np.diff(np.r_[-1, ends]))
    back = end_of_row - np.arange(len(order))
    keep = back < length
    out[sorted_users[keep], back[keep]] = sorted_items[keep]
    return out
