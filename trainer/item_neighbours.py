"""Per-item top-k neighbour tables learned from implicit feedback: EASE or co-occurrence.

The interactions are binarised into a user x item matrix X (a user who interacted with an item
several times counts once). Two learners fill the same [num_items, k] table, row i holding the
items j that item i recommends and their weights w_ij, so that a user's score of item j is
sum over their history items i of w_ij (`trainer.item_item_source` serves it):

* `ease_neighbours`: closed-form EASE (Steck, 2019). P = (X^T X + l2 I)^-1 and
  B = I - P / diag(P) (B_ij = -P_ij / P_jj, B_ii = 0); row i keeps the k largest B_ij.
  Memory: one dense num_items^2 float64 matrix (the Gram matrix, Cholesky-inverted in place by
  LAPACK) plus one block of rows of about `block_bytes`, the sparse X (O(interactions)) and the
  table. `item_neighbours` uses it only up to `ItemItemConfig.ease_max_items` items.
* `cooccurrence_neighbours`: sim_ij = c_ij / (sqrt(n_i n_j) + shrinkage), c_ij the number of
  users of both items, n_i those of item i. C = X^T X is computed one block of item rows at a
  time as a sparse product and cut to its top k before the next block, so no num_items^2
  matrix exists. Memory: the sparse X (O(interactions)), the table (num_items * k) and one
  block's sparse product, whose entries are bounded by `block_bytes` / 32 or, for a block of
  one very popular item, by num_items.

Ties are broken towards the smaller item index, so tables are deterministic. A row with fewer
than k items of non-zero similarity is padded with its own index and weight 0 (a history item
never scores itself: serving removes seen items).
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Tuple

import numpy as np
from scipy import sparse
from scipy.linalg import lapack

from trainer.item_item_config import ItemItemConfig

EASE = "ease"
COOCCURRENCE = "cooccurrence"
# Bytes per entry of a block's sparse product while it is built and sorted (indices, data,
# similarity, sort order).
_BYTES_PER_PAIR = 32
# Bytes per entry of a dense EASE block (the block, a boolean and an int64 cumulative count).
_BYTES_PER_DENSE = 24


@dataclasses.dataclass(frozen=True)
class Neighbours:
    """A neighbour table: ids int32 [num_items, k], weights float32 [num_items, k], best first."""

    ids: np.ndarray
    weights: np.ndarray
    method: str


def _incidence(user_idx: np.ndarray, item_idx: np.ndarray, num_items: int) -> sparse.csr_matrix:
    """The binary user x item matrix (users renumbered densely), float64 CSR."""
    users = np.asarray(user_idx).reshape(-1)
    items = np.asarray(item_idx).reshape(-1).astype(np.int64)
    if len(users) != len(items):
        raise ValueError(f"user_idx has {len(users)} entries but item_idx has {len(items)}")
    if num_items < 1:
        raise ValueError(f"num_items must be at least 1, got {num_items}")
    if len(items) and (items.min() < 0 or items.max() >= num_items):
        bad = items[(items < 0) | (items >= num_items)][0]
        raise ValueError(f"item index {bad} is outside the catalog [0, {num_items})")
    _, user_rows = np.unique(users, return_inverse=True)
    n_users = int(user_rows.max()) + 1 if len(user_rows) else 0
    x = sparse.csr_matrix(
        (np.ones(len(items)), (user_rows.reshape(-1), items)), shape=(n_users, num_items)
    )
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def _width(k: int, num_items: int) -> int:
    if k < 1:
        raise ValueError(f"k (neighbours per item) must be at least 1, got {k}")
    return min(k, num_items - 1)


def _row_blocks(costs: np.ndarray, budget: float) -> Iterator[Tuple[int, int]]:
    """Consecutive [start, stop) row ranges whose summed cost stays within `budget` (at least
    one row each)."""
    n = len(costs)
    ends = np.cumsum(costs, dtype=np.float64)
    start = 0
    while start < n:
        base = ends[start - 1] if start else 0.0
        stop = int(np.searchsorted(ends, base + budget, side="right"))
        stop = min(max(stop, start + 1), n)
        yield start, stop
        start = stop


def _padded_table(num_items: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    ids = np.repeat(np.arange(num_items, dtype=np.int32)[:, None], width, axis=1)
    return ids, np.zeros((num_items, width), np.float32)


def _dense_top_k(block: np.ndarray, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Columns and values of the k largest entries of each row, best first, ties by column."""
    rows = block.shape[0]
    if k == 0:
        return np.zeros((rows, 0), np.int64), np.zeros((rows, 0), block.dtype)
    threshold = -np.partition(-block, k - 1, axis=1)[:, k - 1 : k]
    greater = block > threshold
    ties = block == threshold
    needed = k - greater.sum(axis=1, keepdims=True)
    chosen = greater | (ties & (np.cumsum(ties, axis=1) <= needed))
    cols = np.nonzero(chosen)[1].reshape(rows, k)
    values = np.take_along_axis(block, cols, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1), np.take_along_axis(values, order, axis=1)


def _symmetrize_from_lower(matrix: np.ndarray, block_rows: int) -> None:
    """Copies the lower triangle of a square C-ordered matrix onto its upper one, in place."""
    n = matrix.shape[0]
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        for row in range(start, stop):  # the diagonal block, row by row
            matrix[row, row + 1 : stop] = matrix[row + 1 : stop, row]
        matrix[start:stop, stop:] = matrix[stop:, start:stop].T


def ease_neighbours(
    user_idx: np.ndarray, item_idx: np.ndarray, num_items: int, l2: float, k: int, block_bytes: int = 64 << 20
) -> Tuple[np.ndarray, np.ndarray]:
    """Top-k rows of the closed-form EASE weight matrix.

    Args:
      user_idx / item_idx: parallel arrays, one entry per interaction (any non-negative user
        ids; item indices in [0, num_items)). Repeated pairs count once.
      num_items: catalog size.
      l2: L2 regularisation (> 0).
      k: neighbours per item; the table has min(k, num_items - 1) columns.
      block_bytes: scratch memory per block of rows.

    Returns:
      (neighbour ids int32 [num_items, w], weights float32 [num_items, w]), row i best first.
    """
    if l2 <= 0:
        raise ValueError(f"l2 must be positive, got {l2}")
    x = _incidence(user_idx, item_idx, num_items)
    width = _width(k, num_items)
    block_rows = max(1, block_bytes // (num_items * _BYTES_PER_DENSE))
    gram = np.empty((num_items, num_items), np.float64)
    xt = x.T.tocsr()
    for start in range(0, num_items, block_rows):
        stop = min(start + block_rows, num_items)
        gram[start:stop] = (xt[start:stop] @ x).toarray()
    gram[np.diag_indices(num_items)] += l2
    # LAPACK sees the Fortran-ordered transpose (the same symmetric matrix) and works in place;
    # its upper triangle is the lower triangle of `gram`.
    factor, info = lapack.dpotrf(gram.T, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky factorisation of the EASE Gram matrix failed (info {info})")
    inverse, info = lapack.dpotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"inversion of the EASE Gram matrix failed (info {info})")
    p = inverse.T  # C-ordered view; valid in its lower triangle
    _symmetrize_from_lower(p, block_rows)
    diag = np.diag(p).copy()
    ids, weights = _padded_table(num_items, width)
    for start in range(0, num_items, block_rows):
        stop = min(start + block_rows, num_items)
        block = -p[start:stop] / diag[None, :]
        block[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        cols, values = _dense_top_k(block, width)
        ids[start:stop], weights[start:stop] = cols, values
    return ids, weights


def cooccurrence_neighbours(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    num_items: int,
    shrinkage: float,
    k: int,
    block_bytes: int = 64 << 20,
) -> Tuple[np.ndarray, np.ndarray]:
    """Top-k co-occurrence neighbours, sim_ij = c_ij / (sqrt(n_i n_j) + shrinkage).

    Args:
      user_idx / item_idx: parallel arrays, one entry per interaction (any non-negative user
        ids; item indices in [0, num_items)). Repeated pairs count once.
      num_items: catalog size.
      shrinkage: added to the denominator (>= 0).
      k: neighbours per item; the table has min(k, num_items - 1) columns.
      block_bytes: scratch memory for one block of rows of the sparse co-occurrence matrix.

    Returns:
      (neighbour ids int32 [num_items, w], weights float32 [num_items, w]), row i best first;
      items that co-occur with fewer than w others are padded with their own index, weight 0.
    """
    if shrinkage < 0:
        raise ValueError(f"shrinkage must be non-negative, got {shrinkage}")
    x = _incidence(user_idx, item_idx, num_items)
    width = _width(k, num_items)
    xt = x.T.tocsr()
    users_per_item = np.diff(xt.indptr).astype(np.float64)
    # An upper bound of each item row's entries in C: the summed history lengths of its users.
    row_pairs = xt @ np.diff(x.indptr).astype(np.float64)
    ids, weights = _padded_table(num_items, width)
    if width == 0:
        return ids, weights
    for start, stop in _row_blocks(row_pairs, max(1, block_bytes // _BYTES_PER_PAIR)):
        block = (xt[start:stop] @ x).tocoo()
        rows, cols = block.row.astype(np.int64), block.col.astype(np.int64)
        items = rows + start
        off_diagonal = cols != items
        rows, cols, items = rows[off_diagonal], cols[off_diagonal], items[off_diagonal]
        sim = block.data[off_diagonal] / (np.sqrt(users_per_item[items] * users_per_item[cols]) + shrinkage)
        order = np.lexsort((cols, -sim, rows))
        rows, cols, sim = rows[order], cols[order], sim[order]
        first_of_row = np.searchsorted(rows, rows, side="left")
        rank = np.arange(len(rows)) - first_of_row
        keep = rank < width
        ids[rows[keep] + start, rank[keep]] = cols[keep]
        weights[rows[keep] + start, rank[keep]] = sim[keep]
    return ids, weights


def item_neighbours(
    cfg: ItemItemConfig, user_idx: np.ndarray, item_idx: np.ndarray, num_items: int
) -> Neighbours:
    """EASE up to `cfg.ease_max_items` items, co-occurrence similarity above.

    Args:
      cfg: the item-item settings.
      user_idx / item_idx: parallel interaction arrays (item indices in [0, num_items)).
      num_items: catalog size.

    Returns:
      The table and the method that learned it (`EASE` or `COOCCURRENCE`).
    """
    if num_items <= cfg.ease_max_items:
        ids, weights = ease_neighbours(user_idx, item_idx, num_items, cfg.ease_l2, cfg.neighbours, cfg.block_bytes)
        return Neighbours(ids, weights, EASE)
    ids, weights = cooccurrence_neighbours(
        user_idx, item_idx, num_items, cfg.cooccurrence_shrinkage, cfg.neighbours, cfg.block_bytes
    )
    return Neighbours(ids, weights, COOCCURRENCE)
