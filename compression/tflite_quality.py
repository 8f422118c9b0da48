"""Quality of the TFLite exports, judged with the evaluation step's protocol on the same split.

A TFLite query tower cannot sit inside the serving SavedModel, so its recommender is rebuilt
around it with the serving model's own tables and rules (`ServingModel.retrieve`): known
users' transformed features and seen items, the serving timestamp, float candidate embeddings
of the catalog (computed on the server by the candidate tower), seen items excluded, unknown
users given the popular items. The TFLite ranking model is scored like the `rank` signature.
The resulting recommender and rater go through `evaluation.protocol` exactly as the
serving variants do.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import numpy as np

from compression.measure import EvalSplit
from compression.serving_variants import ServingContext
from compression.tflite_export import TFLiteNetwork
from core import features as F
from evaluation import protocol
from evaluation.data import IdIndex

MASKED = -1e9


def _as_str(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)


class _Lookup:
    """Evaluation indices <-> serving table rows."""

    def __init__(self, context: ServingContext, users: IdIndex, items: IdIndex) -> None:
        tables = context.tables
        user_rows = {key: row for row, key in enumerate(_as_str(tables.user_keys))}
        self.unknown_user = len(tables.user_keys)
        self.user_row = np.array([user_rows.get(key, self.unknown_user) for key in users.ids], np.int64)
        self.catalog_keys = _as_str(tables.item_keys)
        item_rows = {key: row for row, key in enumerate(self.catalog_keys)}
        self.item_row = np.array([item_rows.get(key, -1) for key in items.ids], np.int64)
        self.catalog_to_index = items.index(self.catalog_keys, missing=-1)

    def user_features(self, context: ServingContext, rows: np.ndarray) -> Dict[str, np.ndarray]:
        feats = {name: column[rows] for name, column in context.tables.user_features.items()}
        feats[F.TIMESTAMP_XF] = np.full(len(rows), context.options.context_timestamp, np.float32)
        return feats


def tflite_recommender(query: TFLiteNetwork, embeddings: np.ndarray, context: ServingContext,
                       users: IdIndex, items: IdIndex) -> Callable[[np.ndarray, int], np.ndarray]:
    """A seen-excluded `recommend_fn(user indices, k)` using the TFLite query tower.

    Args:
      query: the TFLite query tower.
      embeddings: float candidate embeddings of the catalog [N, D].
      context: the serving tables and options.
      users / items: the evaluation's index spaces.
    """
    lookup = _Lookup(context, users, items)
    tables = context.tables
    width = min(context.options.top_k, len(embeddings))

    def recommend(user_indices: np.ndarray, k: int) -> np.ndarray:
        rows = lookup.user_row[user_indices]
        scores = query(lookup.user_features(context, rows)) @ embeddings.T
        for position, row in enumerate(rows):
            if row != lookup.unknown_user:
                seen = tables.seen_values[tables.seen_row_splits[row]:tables.seen_row_splits[row + 1]]
                scores[position, seen] = MASKED
        part = np.argpartition(-scores, width - 1, axis=1)[:, :width]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(part, order, axis=1)
        popular = np.broadcast_to(tables.popular_rows[:width], top.shape)
        top = np.where((rows == lookup.unknown_user)[:, None], popular, top)
        recs = lookup.catalog_to_index[top][:, :k]
        if recs.shape[1] < k:
            recs = np.pad(recs, ((0, 0), (0, k - recs.shape[1])), constant_values=-1)
        return recs

    return recommend


def tflite_rater(ranking: TFLiteNetwork, context: ServingContext, users: IdIndex,
                 items: IdIndex) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A `predict(user indices, item indices)` using the TFLite ranking model (0 for unknown items)."""
    lookup = _Lookup(context, users, items)

    def predict(user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        item_rows = lookup.item_row[item_idx]
        feats = lookup.user_features(context, lookup.user_row[user_idx])
        safe = np.maximum(item_rows, 0)
        feats.update({name: column[safe] for name, column in context.item_features.items()})
        ratings = ranking(feats)
        return np.where(item_rows >= 0, ratings, 0.0)

    return predict


def evaluate_tflite(query_path: str, ranking_path: str, embeddings: np.ndarray,
                    context: ServingContext, split: EvalSplit, cutoffs: Sequence[int],
                    max_users: Optional[int]) -> Dict[str, float]:
    """Retrieval metrics (as `retrieval_recall_at_K` / `retrieval_ndcg_at_K`), RMSE and MAE."""
    users, items = split.train.user_index, split.train.item_index
    recommend = tflite_recommender(TFLiteNetwork(query_path), embeddings, context, users, items)
    top = protocol.evaluate_top_k(recommend, split.train, split.eval, cutoffs, max_users)
    metrics = {}
    for k in cutoffs:
        metrics[f"retrieval_recall_at_{k}"] = top[f"recall_at_{k}"]
        metrics[f"retrieval_ndcg_at_{k}"] = top[f"ndcg_at_{k}"]
    rater = tflite_rater(TFLiteNetwork(ranking_path), context, users, items)
    metrics.update(protocol.evaluate_ratings(rater, split.eval))
    return metrics
