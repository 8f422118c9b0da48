"""Top-K ranking metrics, rating-error metrics, and top-K selection from scores.

Conventions shared by every ranking metric here:

* A top-K list is an int array ``[U, K]`` of item indices, best first; ``-1`` is padding (a
  slot with no recommendation) and never counts as a hit. An item may appear once per row.
* ``relevant[u]`` holds the items of user ``u`` in the eval split. When the recommender excludes
  the user's train (seen) items, the caller passes only the eval items outside the seen set,
  since the others cannot be retrieved (``data.unseen_eval_items`` builds them).
* Users with no relevant items are skipped: they count in neither numerator nor denominator of
  the mean. A mean over no users is NaN.
* ``k`` cuts each list to its first k columns; None uses the whole list. A list may be padded
  to a width larger than the catalog.
"""

from __future__ import annotations

from typing import Collection, Optional, Sequence, Tuple

import numpy as np

Relevant = Sequence[Collection[int]]


def _as_top_k(top_k: np.ndarray, k: Optional[int]) -> np.ndarray:
    """Validates a top-K array and cuts it to its first k columns."""
    top_k = np.asarray(top_k)
    if top_k.ndim != 2 or not np.issubdtype(top_k.dtype, np.integer):
        raise ValueError(f"top_k must be a 2-D int array [U, K], got {top_k.dtype} "
                         f"of shape {top_k.shape}")
    if k is not None:
        if k < 1 or k > top_k.shape[1]:
            raise ValueError(f"k must lie in 1..{top_k.shape[1]} (the list width), got {k}")
        top_k = top_k[:, :k]
    if top_k.size and top_k.min() < -1:
        raise ValueError(f"item indices must be >= 0, or -1 for padding; got {top_k.min()}")
    ordered = np.sort(top_k, axis=1)
    if np.any((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)):
        raise ValueError("an item appears more than once in a top-K row")
    return top_k.astype(np.int64, copy=False)


def _as_array(items: Collection[int]) -> np.ndarray:
    if isinstance(items, np.ndarray):
        return items.astype(np.int64, copy=False).ravel()
    return np.fromiter(items, dtype=np.int64, count=len(items))


def hit_matrix(top_k: np.ndarray, relevant: Relevant,
               k: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Marks which recommended items are relevant.

    Args:
        top_k: int [U, K] item indices, -1 padding.
        relevant: U collections of relevant item indices (sets, lists or arrays).
        k: cut-off; None uses all K columns.

    Returns:
        (hits, n_relevant): bool [U, k] and int64 [U] distinct relevant items per user.

    Raises:
        ValueError: shapes disagree, or indices are invalid.
    """
    top_k = _as_top_k(top_k, k)
    if len(relevant) != top_k.shape[0]:
        raise ValueError(f"relevant has {len(relevant)} users, top_k has {top_k.shape[0]} rows")
    arrays = [np.unique(_as_array(items)) for items in relevant]
    n_relevant = np.array([a.size for a in arrays], dtype=np.int64)
    if top_k.size == 0:
        return np.zeros(top_k.shape, dtype=bool), n_relevant
    flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    if flat.size and flat.min() < 0:
        raise ValueError(f"relevant item indices must be >= 0, got {flat.min()}")
    width = np.int64(max(int(top_k.max()), int(flat.max()) if flat.size else 0) + 1)
    rows = np.arange(top_k.shape[0], dtype=np.int64)
    relevant_keys = np.repeat(rows, n_relevant) * width + flat
    hits = np.isin(rows[:, None] * width + top_k, relevant_keys) & (top_k >= 0)
    return hits, n_relevant


def recall_per_user(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Hits / min(K, |relevant|) per user (NaN where |relevant| = 0)."""
    denominator = np.minimum(hits.shape[1], n_relevant).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, hits.sum(axis=1) / denominator, np.nan)


def ndcg_per_user(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Binary-relevance NDCG per user (NaN where |relevant| = 0).

    DCG = sum over hit ranks r (1-based) of 1 / log2(r + 1); the ideal DCG places
    min(K, |relevant|) hits at ranks 1..min(K, |relevant|).
    """
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2, dtype=np.float64))
    dcg = hits.astype(np.float64) @ discounts
    ideal_prefix = np.concatenate([[0.0], np.cumsum(discounts)])
    ideal = ideal_prefix[np.minimum(hits.shape[1], n_relevant)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, dcg / ideal, np.nan)


def reciprocal_rank_per_user(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """1 / (rank of the first hit), 0 without a hit in the list (NaN where |relevant| = 0)."""
    any_hit = hits.any(axis=1)
    first = np.argmax(hits, axis=1) + 1.0
    values = np.where(any_hit, 1.0 / first, 0.0)
    return np.where(n_relevant > 0, values, np.nan)


def hit_per_user(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """1.0 if any of the K items is relevant, else 0.0 (NaN where |relevant| = 0)."""
    return np.where(n_relevant > 0, hits.any(axis=1).astype(np.float64), np.nan)


def _mean_over_users(values: np.ndarray) -> float:
    valid = ~np.isnan(values)
    return float(values[valid].mean()) if valid.any() else float("nan")


def recall_at_k(top_k: np.ndarray, relevant: Relevant, k: Optional[int] = None) -> float:
    """Mean over users of hits@k / min(k, |relevant|).

    The min() in the denominator makes a perfect list score 1 even when a user has more
    relevant items than k. Users without relevant items are skipped; NaN if none remain.

    Args:
        top_k: int [U, K] item indices, best first, -1 padding.
        relevant: U collections of relevant item indices.
        k: cut-off; None uses all K columns.

    Returns:
        The mean recall.
    """
    return _mean_over_users(recall_per_user(*hit_matrix(top_k, relevant, k)))


def ndcg_at_k(top_k: np.ndarray, relevant: Relevant, k: Optional[int] = None) -> float:
    """Mean over users of binary-relevance NDCG@k (ideal DCG over min(k, |relevant|) hits).

    Args/Returns: as :func:`recall_at_k`.
    """
    return _mean_over_users(ndcg_per_user(*hit_matrix(top_k, relevant, k)))


def hit_rate_at_k(top_k: np.ndarray, relevant: Relevant, k: Optional[int] = None) -> float:
    """Fraction of users with at least one relevant item among their first k.

    Args/Returns: as :func:`recall_at_k`.
    """
    return _mean_over_users(hit_per_user(*hit_matrix(top_k, relevant, k)))


def mrr(top_k: np.ndarray, relevant: Relevant, k: Optional[int] = None) -> float:
    """Mean reciprocal rank of the first relevant item within the first k (0 if none).

    Args/Returns: as :func:`recall_at_k`.
    """
    return _mean_over_users(reciprocal_rank_per_user(*hit_matrix(top_k, relevant, k)))


def catalog_coverage(top_k: np.ndarray, n_items: int, k: Optional[int] = None) -> float:
    """Distinct items recommended in the first k columns of any row, divided by n_items.

    Args:
        top_k: int [U, K] item indices, -1 padding (not counted).
        n_items: catalog size (> 0).
        k: cut-off; None uses all K columns.

    Returns:
        The covered fraction of the catalog.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    top_k = _as_top_k(top_k, k)
    if top_k.size and top_k.max() >= n_items:
        raise ValueError(f"item index {top_k.max()} outside a catalog of {n_items} items")
    return float(np.unique(top_k[top_k >= 0]).size / n_items)


def interaction_hit_rate_at_k(top_k: np.ndarray, rows: np.ndarray, items: np.ndarray,
                              k: Optional[int] = None) -> float:
    """Fraction of eval interactions whose item is among the first k items of its user's list.

    Each interaction counts once (a user with three eval interactions weighs three times).
    With lists computed without excluding seen items, this is the top-K categorical accuracy
    that TFRS's FactorizedTopK metric reports.

    Args:
        top_k: int [U, K] lists, -1 padding.
        rows: int [n] row of top_k holding the list of each interaction's user.
        items: int [n] item index of each interaction.
        k: cut-off; None uses all K columns.

    Returns:
        The hit fraction; NaN for no interactions.
    """
    top_k = _as_top_k(top_k, k)
    rows, items = np.asarray(rows, dtype=np.int64), np.asarray(items, dtype=np.int64)
    if rows.shape != items.shape or rows.ndim != 1:
        raise ValueError(f"rows and items must be 1-D of one length, got {rows.shape}, "
                         f"{items.shape}")
    if rows.size == 0:
        return float("nan")
    if rows.min() < 0 or rows.max() >= top_k.shape[0]:
        raise ValueError(f"rows must lie in 0..{top_k.shape[0] - 1}")
    if items.min() < 0:
        raise ValueError(f"item indices must be >= 0, got {items.min()}")
    hit = (top_k[rows] == items[:, None]).any(axis=1)
    return float(hit.mean())


def _as_pair(predictions: np.ndarray, targets: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    predictions = np.asarray(predictions, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.float64)
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions {predictions.shape} and targets {targets.shape} differ")
    if predictions.size == 0:
        raise ValueError("no predictions to score")
    return predictions, targets


def rmse(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Root mean squared error between two same-shaped arrays."""
    predictions, targets = _as_pair(predictions, targets)
    return float(np.sqrt(np.mean((predictions - targets) ** 2)))


def mae(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Mean absolute error between two same-shaped arrays."""
    predictions, targets = _as_pair(predictions, targets)
    return float(np.mean(np.abs(predictions - targets)))


def select_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Top-k columns per row of a score matrix that the function may overwrite.

    Order: score descending, then item (column) index ascending, so ties are deterministic.
    Items scored -inf are never selected; slots left empty are -1.

    Args:
        scores: float [U, N]; no NaN.
        k: list width (>= 1); may exceed N.

    Returns:
        int64 [U, k].
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n_rows, n_cols = scores.shape
    out = np.full((n_rows, k), -1, dtype=np.int64)
    if n_rows == 0 or n_cols == 0:
        return out
    width = min(k, n_cols)
    np.negative(scores, out=scores)  # now ascending order is the wanted order
    threshold = np.partition(scores, width - 1, axis=1)[:, width - 1]
    rows, cols = np.nonzero(scores <= threshold[:, None])
    values = scores[rows, cols]
    order = np.lexsort((cols, values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    rank = np.arange(rows.size) - np.searchsorted(rows, rows, side="left")
    keep = (rank < width) & (values != np.inf)
    out[rows[keep], rank[keep]] = cols[keep]
    return out


def top_k_from_scores(scores: np.ndarray, k: int,
                      exclude: Optional[Sequence[Collection[int]]] = None) -> np.ndarray:
    """The k best items of each row of a score matrix.

    Ties are broken deterministically: stable order by score descending, then item index
    ascending. Excluded items and items scored -inf are never returned; when fewer than k items
    remain (k larger than the catalog, or many exclusions) the row is padded with -1.

    Args:
        scores: float [U, N] scores of the N catalog items (not modified); no NaN.
        k: number of items per row (>= 1).
        exclude: None, or U collections of item indices to leave out per row.

    Returns:
        int64 [U, k] item indices, best first.

    Raises:
        ValueError: bad shapes, NaN scores, or excluded indices outside 0..N-1.
    """
    scores = np.asarray(scores)
    floating = np.issubdtype(scores.dtype, np.floating)
    scores = scores.astype(scores.dtype if floating else np.float64, copy=True)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D [U, N], got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if exclude is not None:
        if len(exclude) != scores.shape[0]:
            raise ValueError(f"exclude has {len(exclude)} rows, scores has {scores.shape[0]}")
        arrays = [_as_array(items) for items in exclude]
        cols = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
        if cols.size and (cols.min() < 0 or cols.max() >= scores.shape[1]):
            raise ValueError(f"excluded item indices must lie in 0..{scores.shape[1] - 1}")
        rows = np.repeat(np.arange(scores.shape[0]), [a.size for a in arrays])
        scores[rows, cols] = -np.inf
    return select_top_k(scores, k)
