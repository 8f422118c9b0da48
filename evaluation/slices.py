"""Slices of users and items for sliced evaluation, defined on the train split.

User slices by train activity (the number of train interactions, repeats included):

* ``cold``: no train interaction;
* ``light``: below the median activity of the users with at least one interaction;
* ``medium``: at or above that median and below its 75th percentile;
* ``heavy``: at or above the 75th percentile (the top quartile).

Percentiles use numpy's default linear interpolation. The four slices partition the users.

Item slices by train popularity:

* ``head``: the most interacted-with items (count descending, then index ascending) that
  together make up the first ``head_share`` (20 %) of train interactions: the shortest such
  prefix whose cumulative count reaches ``head_share`` of the total;
* ``tail``: every other item of the catalog, items without interactions included.
"""

from __future__ import annotations

from typing import Dict

import numpy as np

from evaluation.data import InteractionData


def slice_users_by_activity(train: InteractionData) -> Dict[str, np.ndarray]:
    """Splits the users into cold / light / medium / heavy by train activity.

    Args:
        train: the train split.

    Returns:
        slice name -> ascending int64 user indices.
    """
    counts = np.bincount(train.users, minlength=train.n_users)
    active = counts[counts > 0]
    if active.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return {"cold": np.arange(train.n_users, dtype=np.int64), "light": empty,
                "medium": empty, "heavy": empty}
    median, upper = np.percentile(active, [50, 75])
    return {
        "cold": np.flatnonzero(counts == 0),
        "light": np.flatnonzero((counts > 0) & (counts < median)),
        "medium": np.flatnonzero((counts > 0) & (counts >= median) & (counts < upper)),
        "heavy": np.flatnonzero((counts > 0) & (counts >= upper)),
    }


def slice_items_by_popularity(train: InteractionData,
                              head_share: float = 0.2) -> Dict[str, np.ndarray]:
    """Splits the catalog into head and tail items by train popularity.

    Args:
        train: the train split.
        head_share: share of train interactions the head items make up, in (0, 1].

    Returns:
        {"head": item indices, "tail": item indices}, each ascending.
    """
    if not 0 < head_share <= 1:
        raise ValueError(f"head_share must lie in (0, 1], got {head_share}")
    counts = np.bincount(train.items, minlength=train.n_items)
    total = int(counts.sum())
    order = np.lexsort((np.arange(train.n_items), -counts))
    if total == 0:
        n_head = 0
    else:
        cumulative = np.cumsum(counts[order])
        target = head_share * total * (1 - 1e-12)  # 0.2 * 15 is 3.0000000000000004 in floats
        n_head = int(np.searchsorted(cumulative, target, side="left")) + 1
    head = np.sort(order[:n_head])
    return {"head": head.astype(np.int64), "tail": np.sort(order[n_head:]).astype(np.int64)}
