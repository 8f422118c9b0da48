"""The offline evaluation protocol: full-catalog top-K metrics over the eval users, in batches.

Two protocols are provided:

* :func:`evaluate_top_k` (and :func:`evaluate_slices`): the recommender excludes each user's
  train items; the relevant items of a user are the user's eval items that are not among the
  user's train items. Users left with no relevant item are skipped.
* :func:`evaluate_top_k_unexcluded`: no exclusion; the fraction of eval interactions whose item
  is in the user's top-K. This is the number the TFRS tutorials report as "top-K categorical
  accuracy" (FactorizedTopK), kept for comparison with them.

A ``recommend_fn(user_indices: int [U], k) -> int [U, k]`` is called once per batch of users;
only one batch of recommendations is held at a time. Slice definitions live in
:mod:`evaluation.slices`.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from evaluation import metrics
from evaluation.data import InteractionData, check_same_space, rows_of, unseen_eval_items

RecommendFn = Callable[[np.ndarray, int], np.ndarray]
DEFAULT_CUTOFFS = (10, 20, 50, 100)


class _Accumulator:
    """Sums per-user metrics of one slice over batches."""

    def __init__(self, cutoffs: Sequence[int], n_items: int,
                 user_mask: Optional[np.ndarray], item_mask: Optional[np.ndarray]) -> None:
        self.cutoffs, self.n_items = cutoffs, n_items
        self.user_mask, self.item_mask = user_mask, item_mask
        self.sums: Dict[str, float] = {}
        self.n_users = 0
        self.covered = np.zeros((len(cutoffs), n_items), dtype=bool)

    def _add_sum(self, name: str, values: np.ndarray) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + float(values.sum())

    def add(self, users: np.ndarray, recs: np.ndarray, relevant: List[np.ndarray]) -> None:
        """Adds one batch: user indices, their lists [B, K], their relevant item arrays."""
        if self.user_mask is not None:
            rows = np.flatnonzero(self.user_mask[users])
            recs, relevant = recs[rows], [relevant[r] for r in rows]
        if self.item_mask is not None:
            relevant = [items[self.item_mask[items]] for items in relevant]
        hits, n_relevant = metrics.hit_matrix(recs, relevant)
        valid = n_relevant > 0
        hits, n_relevant, recs = hits[valid], n_relevant[valid], recs[valid]
        self.n_users += int(valid.sum())
        for position, k in enumerate(self.cutoffs):
            cut = hits[:, :k]
            self._add_sum(f"recall_at_{k}", metrics.recall_per_user(cut, n_relevant))
            self._add_sum(f"ndcg_at_{k}", metrics.ndcg_per_user(cut, n_relevant))
            self._add_sum(f"user_hit_rate_at_{k}", metrics.hit_per_user(cut, n_relevant))
            listed = recs[:, :k]
            self.covered[position, listed[listed >= 0]] = True
        self._add_sum("mrr", metrics.reciprocal_rank_per_user(hits, n_relevant))

    def result(self) -> Dict[str, float]:
        """Means over the users seen, coverage, and the user count (NaN means for no users)."""
        out: Dict[str, float] = {}
        for k in self.cutoffs:
            for name in (f"recall_at_{k}", f"ndcg_at_{k}", f"user_hit_rate_at_{k}"):
                out[name] = self.sums.get(name, 0.0) / self.n_users if self.n_users else math.nan
        out["mrr"] = self.sums.get("mrr", 0.0) / self.n_users if self.n_users else math.nan
        pool = self.item_mask if self.item_mask is not None else np.ones(self.n_items, bool)
        size = int(pool.sum())
        for position, k in enumerate(self.cutoffs):
            covered = int((self.covered[position] & pool).sum())
            out[f"coverage_at_{k}"] = covered / size if size else math.nan
        out["n_users"] = float(self.n_users)
        return out


def _check_cutoffs(cutoffs: Sequence[int]) -> Tuple[int, ...]:
    values = tuple(sorted({int(k) for k in cutoffs}))
    if not values or values[0] < 1:
        raise ValueError(f"cutoffs must be a non-empty set of positive ints, got {cutoffs}")
    return values


def _sample_users(users: np.ndarray, max_users: Optional[int], seed: int) -> np.ndarray:
    """All users, or ``max_users`` of them drawn without replacement by ``seed``, ascending."""
    if max_users is None or users.size <= max_users:
        return users
    if max_users < 1:
        raise ValueError(f"max_users must be >= 1 or None, got {max_users}")
    return np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))


def _recommend(recommend_fn: RecommendFn, users: np.ndarray, k: int, n_items: int) -> np.ndarray:
    """Calls recommend_fn and checks its answer is an int [U, k] array of catalog indices."""
    recs = np.asarray(recommend_fn(users, k))
    if recs.shape != (users.size, k) or not np.issubdtype(recs.dtype, np.integer):
        raise ValueError(f"recommend_fn must return int [{users.size}, {k}], got {recs.dtype} "
                         f"of shape {recs.shape}")
    if recs.size and (recs.min() < -1 or recs.max() >= n_items):
        raise ValueError(f"recommend_fn returned item indices outside -1..{n_items - 1}")
    return recs.astype(np.int64, copy=False)


def _masks(n: int, groups: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    out = {}
    for name, indices in groups.items():
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise ValueError(f"slice {name!r} holds indices outside 0..{n - 1}")
        mask = np.zeros(n, dtype=bool)
        mask[indices] = True
        out[name] = mask
    return out


def evaluate_slices(recommend_fn: RecommendFn, train: InteractionData, eval_data: InteractionData,
                    user_slices: Mapping[str, np.ndarray], item_slices: Mapping[str, np.ndarray],
                    cutoffs: Sequence[int] = DEFAULT_CUTOFFS, max_users: Optional[int] = None,
                    seed: int = 0, batch_size: int = 1024) -> Dict[str, Dict[str, float]]:
    """Seen-excluded top-K metrics overall ("all") and per slice, in one pass over the users.

    A user slice restricts the users averaged over. An item slice restricts each user's
    relevant items to the slice's items (users with none are skipped), so recall counts only
    hits on that slice; its coverage is the fraction of the slice's items recommended.

    Args:
        recommend_fn: (user indices [U], k) -> int [U, k] seen-excluded lists, -1 padding.
        train: train split (its items are the seen items).
        eval_data: eval split in the same index space.
        user_slices: slice name -> user indices.
        item_slices: slice name -> item indices.
        cutoffs: the K values reported; lists of width max(cutoffs) are requested.
        max_users: evaluate a random sample of this many users (None: all).
        seed: seed of that sample.
        batch_size: users per recommend_fn call.

    Returns:
        name -> {recall_at_K, ndcg_at_K, user_hit_rate_at_K, coverage_at_K, mrr, n_users},
        MRR being over the whole list of max(cutoffs) items.
    """
    check_same_space(train, eval_data)
    cutoffs = _check_cutoffs(cutoffs)
    if set(user_slices) & set(item_slices) or "all" in set(user_slices) | set(item_slices):
        raise ValueError("slice names must be distinct and differ from 'all'")
    indptr, items = unseen_eval_items(train, eval_data)
    users = _sample_users(np.flatnonzero(np.diff(indptr) > 0), max_users, seed)
    accumulators = {"all": _Accumulator(cutoffs, train.n_items, None, None)}
    for name, mask in _masks(train.n_users, user_slices).items():
        accumulators[name] = _Accumulator(cutoffs, train.n_items, mask, None)
    for name, mask in _masks(train.n_items, item_slices).items():
        accumulators[name] = _Accumulator(cutoffs, train.n_items, None, mask)
    for start in range(0, users.size, batch_size):
        batch = users[start:start + batch_size]
        recs = _recommend(recommend_fn, batch, cutoffs[-1], train.n_items)
        relevant = rows_of(indptr, items, batch)
        for accumulator in accumulators.values():
            accumulator.add(batch, recs, relevant)
    return {name: accumulator.result() for name, accumulator in accumulators.items()}


def evaluate_top_k(recommend_fn: RecommendFn, train: InteractionData, eval_data: InteractionData,
                   cutoffs: Sequence[int] = DEFAULT_CUTOFFS, max_users: Optional[int] = None,
                   seed: int = 0, batch_size: int = 1024) -> Dict[str, float]:
    """Seen-excluded top-K metrics over the eval users; see :func:`evaluate_slices`.

    Returns:
        {recall_at_K, ndcg_at_K, user_hit_rate_at_K, coverage_at_K for each K; mrr; n_users}.
    """
    return evaluate_slices(recommend_fn, train, eval_data, {}, {}, cutoffs, max_users, seed,
                           batch_size)["all"]


def evaluate_top_k_unexcluded(recommend_fn_unexcluded: RecommendFn, eval_data: InteractionData,
                              k: int = 100, max_users: Optional[int] = None, seed: int = 0,
                              batch_size: int = 1024) -> Dict[str, float]:
    """The TFRS protocol: share of eval interactions whose item is in the user's top-k.

    Args:
        recommend_fn_unexcluded: (user indices [U], k) -> int [U, k] lists that do NOT exclude
            train items.
        eval_data: eval split; every interaction counts, repeats included.
        k: list width.
        max_users: evaluate the interactions of a random sample of this many users.
        seed: seed of that sample.
        batch_size: users per call.

    Returns:
        {f"top{k}_interaction_hit_rate": fraction, "n_interactions": count}.
    """
    order = np.argsort(eval_data.users, kind="stable")
    sorted_items = eval_data.items[order]
    counts = np.bincount(eval_data.users, minlength=eval_data.n_users)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    users = _sample_users(np.flatnonzero(counts), max_users, seed)
    hits, total = 0.0, 0
    for start in range(0, users.size, batch_size):
        batch = users[start:start + batch_size]
        recs = _recommend(recommend_fn_unexcluded, batch, k, eval_data.n_items)
        relevant = rows_of(indptr, sorted_items, batch)
        rows = np.repeat(np.arange(batch.size), [r.size for r in relevant])
        flat = np.concatenate(relevant)
        hits += metrics.interaction_hit_rate_at_k(recs, rows, flat) * flat.size
        total += flat.size
    return {f"top{k}_interaction_hit_rate": hits / total if total else math.nan,
            "n_interactions": float(total)}


def evaluate_ratings(predict_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
                     eval_data: InteractionData) -> Dict[str, float]:
    """RMSE and MAE of predicted ratings on the eval interactions.

    Args:
        predict_fn: (user indices [n], item indices [n]) -> predicted ratings [n].
        eval_data: eval split.

    Returns:
        {"rmse": ..., "mae": ...}.
    """
    predictions = np.asarray(predict_fn(eval_data.users, eval_data.items), dtype=np.float64)
    return {"rmse": metrics.rmse(predictions, eval_data.ratings),
            "mae": metrics.mae(predictions, eval_data.ratings)}


def compare_side_by_side(results: Mapping[str, Mapping[str, float]]) -> str:
    """A markdown table: one row per metric, one column per model.

    Args:
        results: model name -> metric name -> value.

    Returns:
        The table; metrics in first-seen order, values to 4 decimals, "n/a" for NaN, "-" where
        a model lacks the metric.
    """
    models = list(results)
    names: List[str] = []
    for values in results.values():
        names.extend(name for name in values if name not in names)
    lines = ["| metric | " + " | ".join(models) + " |",
             "|---|" + "---:|" * len(models)]
    for name in names:
        cells = [_format(results[model].get(name)) for model in models]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _format(value: Optional[float]) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:.4f}"
