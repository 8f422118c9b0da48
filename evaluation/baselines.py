"""Baseline recommenders the trained models are compared against.

* :class:`PopularityRecommender`: items ranked by their train interaction count.
* :class:`EASERecommender`: the closed-form item-item model EASE (Steck, 2019) on the
  most popular items.
* :class:`BiasRatingModel`: rating prediction by global mean + user bias + item bias.

All work on integer-indexed :class:`~evaluation.data.InteractionData`. EASE scores
users in batches and popularity filters one global ranking per user, so no dense users x items
matrix larger than one batch exists.
Ranking ties follow :func:`~evaluation.metrics.select_top_k` (score descending, then
item index ascending).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import scipy.linalg
import scipy.sparse

from evaluation.data import InteractionData, group_by_user
from evaluation.metrics import select_top_k
from trainer.bias_model import fit_biases


class _SeenItems:
    """The distinct train items of each user, for exclusion and user-item matrices."""

    def __init__(self, data: InteractionData) -> None:
        self.n_users, self.n_items = data.n_users, data.n_items
        self.indptr, self.items = group_by_user(data)

    def check_users(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        if users.ndim != 1:
            raise ValueError(f"user_indices must be 1-D, got shape {users.shape}")
        if users.size and (users.min() < 0 or users.max() >= self.n_users):
            raise ValueError(f"user indices must lie in 0..{self.n_users - 1}, got "
                             f"{users.min()}..{users.max()}")
        return users

    def coordinates(self, users: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(row in ``users``, item) pairs of the seen items of the given users."""
        starts, ends = self.indptr[users], self.indptr[users + 1]
        lengths = ends - starts
        rows = np.repeat(np.arange(users.size), lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return rows, self.items[np.repeat(starts, lengths) + offsets]


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


class PopularityRecommender:
    """Recommends the most interacted-with train items, the same ranking for every user."""

    def __init__(self) -> None:
        self.counts: Optional[np.ndarray] = None
        self.ranking: Optional[np.ndarray] = None  # all items, count descending, index ascending
        self._seen: Optional[_SeenItems] = None

    def fit(self, data: InteractionData) -> "PopularityRecommender":
        """Counts train interactions per item (repeats count each time).

        Returns:
            self.
        """
        self.counts = np.bincount(data.items, minlength=data.n_items)
        self.ranking = np.lexsort((np.arange(data.n_items), -self.counts)).astype(np.int64)
        self._seen = _SeenItems(data)
        return self

    def recommend(self, user_indices: np.ndarray, k: int, exclude_seen: bool = True) -> np.ndarray:
        """The k most popular items per user, optionally without the user's train items.

        Args:
            user_indices: int [U] user indices of the fitted data.
            k: list width; padded with -1 when fewer items are left.
            exclude_seen: leave out each user's train items.

        Returns:
            int64 [U, k].
        """
        if self.ranking is None or self._seen is None:
            raise RuntimeError("fit() first")
        _check_k(k)
        users = self._seen.check_users(user_indices)
        out = np.full((users.size, k), -1, dtype=np.int64)
        for row, user in enumerate(users):
            seen = self._seen.items[self._seen.indptr[user]:self._seen.indptr[user + 1]]
            prefix = self.ranking[:k + seen.size] if exclude_seen else self.ranking[:k]
            if exclude_seen:
                prefix = prefix[~np.isin(prefix, seen)][:k]
            out[row, :prefix.size] = prefix
        return out


class EASERecommender:
    """EASE: B = I - P diag(1/diag(P)), P = (X^T X + l2 I)^-1, diag(B) = 0; scores = X B.

    X is the binary user x item matrix of train interactions (ratings ignored), restricted to
    the ``max_items`` most interacted-with items (ties: lower index first) so the Gram matrix
    stays bounded: it is built a block at a time and inverted in place, about
    ``max_items**2 * 4`` bytes (float32; 400 MB at 10000 items) plus one block. Items
    outside that set are never recommended.
    """

    def __init__(self, l2: float = 300.0, max_items: int = 10000, batch_size: int = 1024) -> None:
        """Args:
            l2: the ridge penalty lambda (> 0).
            max_items: the number of most popular items modelled (>= 1).
            batch_size: users scored at once.
        """
        if l2 <= 0 or max_items < 1 or batch_size < 1:
            raise ValueError(f"need l2 > 0, max_items >= 1, batch_size >= 1; got {l2}, "
                             f"{max_items}, {batch_size}")
        self.l2, self.max_items, self.batch_size = l2, max_items, batch_size
        self.item_ids: Optional[np.ndarray] = None  # modelled item indices, ascending
        self.weights: Optional[np.ndarray] = None   # B, float32 [M, M]
        self._local: Optional[np.ndarray] = None    # item index -> position in item_ids or -1
        self._matrix: Optional[scipy.sparse.csr_matrix] = None
        self._seen: Optional[_SeenItems] = None

    def fit(self, data: InteractionData) -> "EASERecommender":
        """Computes the item-item weights B from the train interactions.

        Returns:
            self.
        """
        if len(data) == 0:
            raise ValueError("no interactions to fit")
        counts = np.bincount(data.items, minlength=data.n_items)
        by_popularity = np.lexsort((np.arange(data.n_items), -counts))
        chosen = by_popularity[:self.max_items]
        self.item_ids = np.sort(chosen[counts[chosen] > 0])
        self._local = np.full(data.n_items, -1, dtype=np.int64)
        self._local[self.item_ids] = np.arange(self.item_ids.size)
        self._seen = _SeenItems(data)
        self._matrix = self._user_matrix()
        gram = self._gram()
        gram[np.diag_indices_from(gram)] += self.l2
        # gram is symmetric, so its transpose (a Fortran-ordered view) can be inverted in place.
        precision = scipy.linalg.inv(gram.T, overwrite_a=True, check_finite=False)
        del gram
        precision /= -np.diag(precision)[None, :]
        precision[np.diag_indices_from(precision)] = 0.0
        self.weights = precision
        return self

    def _gram(self, chunk: int = 1024) -> np.ndarray:
        """X^T X as a dense float32 [M, M], built a block of columns at a time."""
        size = self.item_ids.size
        gram = np.empty((size, size), dtype=np.float32)
        columns = self._matrix.tocsc()
        transposed = columns.T.tocsr()
        for start in range(0, size, chunk):
            block = transposed @ columns[:, start:start + chunk]
            gram[:, start:start + chunk] = block.toarray()
        return gram

    def _user_matrix(self) -> scipy.sparse.csr_matrix:
        """Binary users x modelled-items matrix of the train interactions."""
        seen = self._seen
        rows = np.repeat(np.arange(seen.n_users), np.diff(seen.indptr))
        cols = self._local[seen.items]
        kept = cols >= 0
        return scipy.sparse.csr_matrix(
            (np.ones(int(kept.sum()), dtype=np.float32), (rows[kept], cols[kept])),
            shape=(seen.n_users, self.item_ids.size))

    def scores(self, user_indices: np.ndarray) -> np.ndarray:
        """EASE scores X_u B of the modelled items (columns follow ``item_ids``).

        Args:
            user_indices: int [U] user indices; keep U to a batch.

        Returns:
            float32 [U, M].
        """
        if self.weights is None:
            raise RuntimeError("fit() first")
        users = self._seen.check_users(user_indices)
        return np.asarray(self._matrix[users] @ self.weights, dtype=np.float32)

    def recommend(self, user_indices: np.ndarray, k: int, exclude_seen: bool = True) -> np.ndarray:
        """The k best-scored modelled items per user.

        Args:
            user_indices: int [U] user indices of the fitted data.
            k: list width; padded with -1 when fewer modelled items are left.
            exclude_seen: leave out each user's train items.

        Returns:
            int64 [U, k] item indices of the catalog.
        """
        if self.weights is None:
            raise RuntimeError("fit() first")
        _check_k(k)
        users = self._seen.check_users(user_indices)
        out = np.empty((users.size, k), dtype=np.int64)
        for start in range(0, users.size, self.batch_size):
            batch = users[start:start + self.batch_size]
            scores = self.scores(batch)
            if exclude_seen:
                rows, items = self._seen.coordinates(batch)
                cols = self._local[items]
                scores[rows[cols >= 0], cols[cols >= 0]] = -np.inf
            local = select_top_k(scores, k)
            out[start:start + batch.size] = np.where(local >= 0, self.item_ids[local], -1)
        return out


class BiasRatingModel:
    """Predicts rating = mu + b_user + b_item, biases fitted by alternating ridge updates.

    Each pass sets, with the other biases fixed,
    ``b_i = sum_{u in R(i)} (r_ui - mu - b_u) / (l2_item + |R(i)|)`` for every item, then
    ``b_u = sum_{i in R(u)} (r_ui - mu - b_i) / (l2_user + |R(u)|)`` for every user.
    Users or items without train ratings (or given as -1, an unknown id) get bias 0, so their
    predictions fall back to the available terms.
    """

    def __init__(self, l2_user: float = 10.0, l2_item: float = 10.0, n_iters: int = 10,
                 clip: Optional[Tuple[float, float]] = None) -> None:
        """Args:
            l2_user: ridge penalty of the user biases (>= 0).
            l2_item: ridge penalty of the item biases (>= 0).
            n_iters: alternating passes (>= 1).
            clip: (low, high) bounds for predictions, or None.
        """
        if l2_user < 0 or l2_item < 0 or n_iters < 1:
            raise ValueError(f"need l2 >= 0 and n_iters >= 1; got {l2_user}, {l2_item}, "
                             f"{n_iters}")
        self.l2_user, self.l2_item, self.n_iters, self.clip = l2_user, l2_item, n_iters, clip
        self.global_mean = 0.0
        self.user_bias: Optional[np.ndarray] = None
        self.item_bias: Optional[np.ndarray] = None

    def fit(self, data: InteractionData) -> "BiasRatingModel":
        """Fits mu and the biases on the train ratings.

        Returns:
            self.
        """
        biases = fit_biases(data.users, data.items, data.ratings, data.n_users, data.n_items,
                            self.l2_user, self.l2_item, self.n_iters)
        self.global_mean, self.user_bias, self.item_bias = biases.global_mean, biases.user_bias, biases.item_bias
        return self

    def predict(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Predicted ratings for (user, item) pairs.

        Args:
            user_idx: int [n] user indices, or -1 for users unknown to the fitted data.
            item_idx: int [n] item indices, or -1 for unknown items.

        Returns:
            float64 [n].
        """
        if self.user_bias is None or self.item_bias is None:
            raise RuntimeError("fit() first")
        users = np.asarray(user_idx, dtype=np.int64)
        items = np.asarray(item_idx, dtype=np.int64)
        if users.shape != items.shape:
            raise ValueError(f"user_idx {users.shape} and item_idx {items.shape} differ")
        user_terms = _lookup(self.user_bias, users, "user")
        item_terms = _lookup(self.item_bias, items, "item")
        predictions = self.global_mean + user_terms + item_terms
        if self.clip is not None:
            predictions = np.clip(predictions, *self.clip)
        return predictions


def _lookup(bias: np.ndarray, indices: np.ndarray, name: str) -> np.ndarray:
    """bias[indices] with 0 for -1; other out-of-range indices raise ValueError."""
    if indices.size and (indices.min() < -1 or indices.max() >= bias.size):
        raise ValueError(f"{name} indices must lie in 0..{bias.size - 1} or be -1 (unknown)")
    return np.where(indices >= 0, bias[np.maximum(indices, 0)] if bias.size else 0.0, 0.0)
