"""Evaluation of an exported serving model beside the baselines, on the splits it never trained on.

The serving SavedModel itself is evaluated (what is pushed is what is measured): its
`serving_default` (two-stage, seen items removed), `retrieve` (retrieval only, seen removed),
`retrieve_unfiltered` (the TFRS tutorials' protocol), `retrieve_item_item` (the item-item source
alone, when the model has it: `item_item_only`) and `rank` (RMSE/MAE) signatures. Item
popularity, EASE and the bias rating model are fitted on the same train split in the same run.
`previous_metrics` and `write_blessing_marker` read and write what the gate leaves behind. The
TFX component `components.evaluate_model.EvaluateModel` is a thin wrapper of these functions;
the compression stage and the online learner's guard call them directly.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from core import features as F
from core import tfrecord_columns
from core.custom_ops import load_saved_model
from core.utf8 import to_bytes, to_str
from evaluation import baselines, protocol, report, slices
from evaluation.data import IdIndex, InteractionData

BLESSED_MARKER = "BLESSED"
NOT_BLESSED_MARKER = "NOT_BLESSED"
TWO_STAGE = "two_stage"
RETRIEVAL = "retrieval_only"
ITEM_ITEM = "item_item_only"
ITEM_ITEM_SIGNATURE = "retrieve_item_item"
BATCH = 512


def read_interactions(patterns: Sequence[str]) -> Dict[str, np.ndarray]:
    """user_id, item_id (str), rating, timestamp columns of raw interaction examples."""
    return tfrecord_columns.read_columns(patterns, (F.USER_ID, F.ITEM_ID, F.RATING, F.TIMESTAMP), decode_strings=True)


def index_splits(train: Dict[str, np.ndarray], eval_: Dict[str, np.ndarray], catalog_ids: Sequence[str]) -> Tuple[InteractionData, InteractionData]:
    """Both splits in one user/item index space (catalog items included)."""
    users = IdIndex(np.concatenate([train[F.USER_ID], eval_[F.USER_ID]]))
    items = IdIndex(np.concatenate([train[F.ITEM_ID], eval_[F.ITEM_ID], np.asarray(catalog_ids, str)]))

    def build(columns: Dict[str, np.ndarray]) -> InteractionData:
        return InteractionData(
            users=users.index(columns[F.USER_ID]), items=items.index(columns[F.ITEM_ID]),
            ratings=columns[F.RATING], timestamps=columns[F.TIMESTAMP],
            n_users=len(users), n_items=len(items), user_index=users, item_index=items,
        )

    return build(train), build(eval_)


def signature_recommender(loaded, signature: str, users: IdIndex, items: IdIndex) -> Callable[[np.ndarray, int], np.ndarray]:
    """A `recommend_fn(user indices, k)` backed by one signature of the serving model."""
    import tensorflow as tf

    fn = loaded.signatures[signature]
    user_ids = np.asarray(users.ids, dtype=object)

    def recommend(user_indices: np.ndarray, k: int) -> np.ndarray:
        out = []
        for start in range(0, len(user_indices), BATCH):
            batch = to_bytes(user_ids[user_indices[start:start + BATCH]])
            result = fn(**{F.SERVING_INPUT_USER: tf.constant(batch)})
            ids = to_str(result[F.SERVING_OUTPUT_ITEMS].numpy()[:, :k])
            out.append(items.index(ids.ravel(), missing=-1).reshape(ids.shape))
        recs = np.concatenate(out)
        if recs.shape[1] < k:
            recs = np.pad(recs, ((0, 0), (0, k - recs.shape[1])), constant_values=-1)
        return recs

    return recommend


def signature_rater(loaded, users: IdIndex, items: IdIndex) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A `predict(user indices, item indices)` backed by the `rank` signature."""
    import tensorflow as tf

    fn = loaded.signatures["rank"]
    user_ids = np.asarray(users.ids, dtype=object)
    item_ids = np.asarray(items.ids, dtype=object)

    def predict(user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(user_idx), 4096):
            u = to_bytes(user_ids[user_idx[start:start + 4096]])
            i = to_bytes(item_ids[item_idx[start:start + 4096]])[:, None]
            result = fn(**{F.USER_ID: tf.constant(u), F.ITEM_ID: tf.constant(i)})
            out.append(result[F.SERVING_OUTPUT_SCORES].numpy()[:, 0])
        return np.concatenate(out)

    return predict


def evaluate(
    model_dir: str,
    train_patterns: Sequence[str],
    eval_patterns: Sequence[str],
    catalog_ids: Sequence[str],
    cutoffs: Sequence[int],
    max_eval_users: Optional[int],
) -> Tuple[Dict[str, Dict[str, float]], Dict[str, Dict[str, Dict[str, float]]]]:
    """Metrics of the serving model and the baselines, overall and per slice.

    Returns:
      (results: model -> metric -> value, slices: slice -> model -> metric -> value).
    """

    train, eval_ = index_splits(read_interactions(train_patterns), read_interactions(eval_patterns), catalog_ids)
    loaded = load_saved_model(model_dir)
    users, items = train.user_index, train.item_index
    popularity = baselines.PopularityRecommender().fit(train)
    recommenders = {
        TWO_STAGE: signature_recommender(loaded, F.SERVING_SIGNATURE, users, items),
        RETRIEVAL: signature_recommender(loaded, "retrieve", users, items),
        "popularity": popularity.recommend,
        "ease": baselines.EASERecommender().fit(train).recommend,
    }
    if ITEM_ITEM_SIGNATURE in loaded.signatures:  # the served model's item-item source alone
        recommenders[ITEM_ITEM] = signature_recommender(loaded, ITEM_ITEM_SIGNATURE, users, items)
    user_slices, item_slices = slices.slice_users_by_activity(train), slices.slice_items_by_popularity(train)
    results: Dict[str, Dict[str, float]] = {}
    by_slice: Dict[str, Dict[str, Dict[str, float]]] = {}
    for name, fn in recommenders.items():
        logging.info("evaluating %s", name)
        per_slice = protocol.evaluate_slices(fn, train, eval_, user_slices, item_slices, cutoffs, max_eval_users)
        results[name] = dict(per_slice.pop("all"))
        for slice_name, values in per_slice.items():
            by_slice.setdefault(slice_name, {})[name] = values
    unfiltered = {
        TWO_STAGE: signature_recommender(loaded, "retrieve_unfiltered", users, items),
        "popularity": lambda u, k: popularity.recommend(u, k, exclude_seen=False),
    }
    for name, fn in unfiltered.items():
        results[name].update(protocol.evaluate_top_k_unexcluded(fn, eval_, max(cutoffs), max_eval_users))
    results[TWO_STAGE].update(protocol.evaluate_ratings(signature_rater(loaded, users, items), eval_))
    results["bias_model"] = protocol.evaluate_ratings(baselines.BiasRatingModel().fit(train).predict, eval_)
    return results, by_slice


def previous_metrics(blessing_uri: Optional[str]) -> Optional[Dict[str, float]]:
    """The two-stage metrics stored with the last blessed model, if any (local or remote URI)."""
    import tensorflow as tf

    if not blessing_uri:
        return None
    path = os.path.join(blessing_uri, report.METRICS_FILE)
    if not tf.io.gfile.exists(path):
        return None
    return report.read_json(path)["results"][TWO_STAGE]


def write_blessing_marker(blessing_uri: str, blessed: bool, reason: str) -> str:
    """Writes the BLESSED / NOT_BLESSED marker file (the reason inside); returns its path.

    `blessing_uri` may be a local path or a remote artifact URI (``gs://``): written with
    ``tf.io.gfile``.
    """
    import tensorflow as tf

    tf.io.gfile.makedirs(blessing_uri)
    path = os.path.join(blessing_uri, BLESSED_MARKER if blessed else NOT_BLESSED_MARKER)
    report.write_text(path, reason + "\n")
    return path
