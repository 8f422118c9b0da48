"""Tables the serving model embeds: known users' features, seen items, popularity, catalog.

Computed with numpy from the transformed training examples and the raw item catalog; the
catalog's features go through the same tf.Transform graph as the training data.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from core import features as F
from core import tfrecord_columns
from core.utf8 import to_bytes
from trainer import history
from trainer.candidate_sources import cold_start_list, popularity_tables
from trainer.ease_block import fit_ease_block
from trainer.item_item_config import ItemItemConfig
from trainer.item_item_tables import build_item_item_tables
from trainer.serving_model import ServingTables

USER_COLUMNS = F.USER_TRANSFORMED + (F.ITEM_ID_XF, F.TIMESTAMP_XF)


def read_catalog(file_patterns: Sequence[str]) -> Dict[str, np.ndarray]:
    """Raw catalog features (`F.CATALOG_FEATURES`) from gzipped TFRecord item examples.

    Raises:
      FileNotFoundError: no file matches.
    """
    return tfrecord_columns.read_columns(file_patterns, F.CATALOG_FEATURES, batch_size=4096)


def transform_catalog(
    catalog: Dict[str, np.ndarray], tf_transform_output: tft.TFTransformOutput, batch_size: int = 4096
) -> Dict[str, np.ndarray]:
    """Transformed item features ([N, ...] per `F.ITEM_TRANSFORMED`) of raw catalog columns."""
    layer = tf_transform_output.transform_features_layer()
    n = len(catalog[F.ITEM_ID])
    parts: Dict[str, list] = {name: [] for name in F.ITEM_TRANSFORMED}
    for start in range(0, n, batch_size):
        raw = {name: tf.constant(col[start:start + batch_size])[:, None] for name, col in catalog.items()}
        out = layer(raw)
        for name in F.ITEM_TRANSFORMED:
            parts[name].append(out[name].numpy())
    return {name: np.concatenate(p) for name, p in parts.items()}


def embed_catalog(candidate_tower: tf.keras.Model, item_features: Dict[str, np.ndarray], batch_size: int = 4096) -> np.ndarray:
    """Candidate embeddings [N, D] of the transformed catalog."""
    n = len(next(iter(item_features.values())))
    out = []
    for start in range(0, n, batch_size):
        batch = {k: v[start:start + batch_size] for k, v in item_features.items()}
        out.append(candidate_tower({k: batch[k] for k in candidate_tower.input_names}).numpy())
    return np.concatenate(out)


def unknown_user_features(tf_transform_output: tft.TFTransformOutput) -> Dict[str, int]:
    """Transformed features of a user the training data never saw, with default side features.

    They go through the Transform graph, so they are exactly what training examples of users
    without side information looked like (e.g. the 'unknown' gender token, not the OOV bucket).
    """
    raw = {
        F.USER_ID: tf.constant([[""]]),
        F.USER_AGE: tf.constant([[F.UNKNOWN_INT]], tf.int64),
        F.USER_GENDER: tf.constant([[F.UNKNOWN_TOKEN]]),
        F.USER_OCCUPATION: tf.constant([[F.UNKNOWN_TOKEN]]),
    }
    out = tf_transform_output.transform_features_layer()(raw)
    return {name: int(np.asarray(out[name]).reshape(-1)[0]) for name in F.USER_TRANSFORMED}


def concat_batches(batches: Iterable[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """The `USER_COLUMNS` of transformed batches, concatenated.

    Raises:
      ValueError: there are no interactions.
    """
    parts: Dict[str, list] = {name: [] for name in USER_COLUMNS}
    for batch in batches:
        for name in USER_COLUMNS:
            parts[name].append(batch[name])
    if not parts[F.ITEM_ID_XF]:
        raise ValueError("no training interactions to build the user tables from")
    return {name: np.concatenate(p) for name, p in parts.items()}


def catalog_rows_of_items(tf_transform_output: tft.TFTransformOutput, catalog_keys: np.ndarray) -> np.ndarray:
    """Transformed item index -> catalog row (-1 for the OOV buckets or items not in the catalog)."""
    item_vocab = tf_transform_output.vocabulary_by_name(F.ITEM_ID_VOCAB)
    row_of_key = {key: row for row, key in enumerate(catalog_keys)}
    return np.array([row_of_key.get(key, -1) for key in item_vocab] + [-1] * F.OOV_BUCKETS)


def _known_interactions(data: Dict[str, np.ndarray], tf_transform_output: tft.TFTransformOutput,
                        catalog_keys: np.ndarray) -> np.ndarray:
    """bool [rows]: interactions of a vocabulary user with a catalog item."""
    n_users = len(tf_transform_output.vocabulary_by_name(F.USER_ID_VOCAB))
    rows = catalog_rows_of_items(tf_transform_output, catalog_keys)[data[F.ITEM_ID_XF]]
    return (data[F.USER_ID_XF] < n_users) & (rows >= 0)


def interaction_rows(data: Dict[str, np.ndarray], tf_transform_output: tft.TFTransformOutput,
                     catalog_keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user rows, catalog rows, transformed timestamps) of the interactions `build_tables` reads.

    Args:
      data: transformed interaction columns.
      tf_transform_output: the Transform output (its user and item vocabularies).
      catalog_keys: the catalog's item ids, in row order.
    """
    known = _known_interactions(data, tf_transform_output, catalog_keys)
    rows = catalog_rows_of_items(tf_transform_output, catalog_keys)[data[F.ITEM_ID_XF][known]]
    return (data[F.USER_ID_XF][known].astype(np.int64), rows.astype(np.int64),
            np.asarray(data[F.TIMESTAMP_XF][known], np.float64))


def out_of_vocabulary_interactions(raw: Dict[str, np.ndarray], tf_transform_output: tft.TFTransformOutput,
                                   catalog_keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw interactions of vocabulary users with catalog items outside the item vocabulary.

    Items first rated after the Transform analysed the training split (e.g. in a temporal eval
    split) have no vocabulary index, so the transformed examples cannot tell them apart; their
    raw ids still name a catalog row.

    Args:
      raw: raw columns `F.USER_ID`, `F.ITEM_ID` (str) and `F.TIMESTAMP`.
      tf_transform_output: the Transform output (vocabularies, timestamp transform).
      catalog_keys: the catalog's item ids, in row order.

    Returns:
      (user rows, catalog rows, transformed timestamps) for `build_tables(extra_interactions=...)`.
    """
    user_index = {key: i for i, key in enumerate(_decoded(tf_transform_output.vocabulary_by_name(F.USER_ID_VOCAB)))}
    item_vocab = set(_decoded(tf_transform_output.vocabulary_by_name(F.ITEM_ID_VOCAB)))
    catalog_row = {key: r for r, key in enumerate(_decoded(catalog_keys))}
    users = np.array([user_index.get(u, -1) for u in _decoded(raw[F.USER_ID])], np.int64)
    items = _decoded(raw[F.ITEM_ID])
    rows = np.array([catalog_row.get(i, -1) if i not in item_vocab else -1 for i in items], np.int64)
    keep = (users >= 0) & (rows >= 0)
    stamps = np.asarray(raw[F.TIMESTAMP], np.int64)[keep]
    times = np.zeros(0, np.float64)
    if keep.any():
        layer = tf_transform_output.transform_features_layer()
        times = layer({F.TIMESTAMP: tf.constant(stamps[:, None])})[F.TIMESTAMP_XF].numpy().reshape(-1)
    return users[keep], rows[keep], times.astype(np.float64)


def _decoded(values) -> list:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(values, dtype=object)]


def build_tables(
    train_batches: Iterable[Dict[str, np.ndarray]],
    tf_transform_output: tft.TFTransformOutput,
    catalog: Dict[str, np.ndarray],
    catalog_features: Dict[str, np.ndarray],
    item_item: Optional[ItemItemConfig] = None,
    half_life: Optional[float] = None,
    ease: Optional[Tuple[int, float]] = None,
    extra_interactions: Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]] = None,
    cold_start_half_life: Optional[float] = None,
) -> ServingTables:
    """Per-user and per-item tables from transformed training batches and the catalog.

    A user's side features are those of their newest training interaction; the unknown-user
    row (last) carries the out-of-vocabulary index of every user feature. With an enabled
    `item_item` config the tables also carry the item-item source, learned from the same
    (user, catalog row) interactions as the seen-item filter. With `half_life` they also carry
    the popularity sources (`trainer.candidate_sources`) the candidate ranker reads; with
    `ease` = (block items, l2) the EASE block (`trainer.ease_block`). `extra_interactions` =
    (user rows, catalog rows, transformed timestamps) join the seen-item filter, popularity and
    every source, but not the user features (`out_of_vocabulary_interactions`: interactions
    with items the Transform vocabulary does not hold). Unknown users get the items by
    popularity, or by recent popularity at `cold_start_half_life` when given
    (`trainer.candidate_sources.cold_start_list`).
    """
    data = concat_batches(train_batches)
    user_vocab = np.array(tf_transform_output.vocabulary_by_name(F.USER_ID_VOCAB), dtype=object)
    catalog_keys = catalog[F.ITEM_ID]
    known = _known_interactions(data, tf_transform_output, catalog_keys)
    users, rows = data[F.USER_ID_XF][known], catalog_rows_of_items(tf_transform_output, catalog_keys)[
        data[F.ITEM_ID_XF][known]]
    n_users = len(user_vocab)

    newest = np.lexsort((data[F.TIMESTAMP_XF][known], users))
    last_of_user = newest[np.r_[np.flatnonzero(np.diff(users[newest])), len(newest) - 1]]
    user_features = {}
    oov = unknown_user_features(tf_transform_output)
    for name in F.USER_TRANSFORMED:
        column = np.full(n_users + 1, oov[name], np.int64)
        column[users[last_of_user]] = data[name][known][last_of_user]
        user_features[name] = column
    user_features[F.USER_ID_XF][:n_users] = np.arange(n_users)
    in_vocab = data[F.USER_ID_XF] < n_users
    user_features[F.USER_HISTORY] = history.latest_histories(
        data[F.USER_ID_XF][in_vocab], data[F.ITEM_ID_XF][in_vocab], data[F.TIMESTAMP_XF][in_vocab], n_users
    )

    times = np.asarray(data[F.TIMESTAMP_XF][known], np.float64)
    if extra_interactions is not None:
        extra_users, extra_rows, extra_times = extra_interactions
        users = np.concatenate([users, np.asarray(extra_users, users.dtype)])
        rows = np.concatenate([rows, np.asarray(extra_rows, rows.dtype)])
        times = np.concatenate([times, np.asarray(extra_times, np.float64)])
    pairs = np.unique(np.stack([users, rows], axis=1), axis=0)
    row_splits = np.searchsorted(pairs[:, 0], np.arange(n_users + 2)).astype(np.int64)
    popular_rows, popular_scores = cold_start_list(rows, times, len(catalog_keys), cold_start_half_life)
    item_item_tables = None
    if item_item is not None and item_item.enabled:
        item_item_tables = build_item_item_tables(users, rows, times, n_users, len(catalog_keys), item_item)
    sources = None
    if half_life is not None:
        sources = popularity_tables(users, rows, times, n_users, len(catalog_keys), half_life)
    ease_tables = fit_ease_block(users, rows, len(catalog_keys), *ease) if ease is not None else None
    return ServingTables(
        user_keys=to_bytes(user_vocab),
        user_features=user_features,
        seen_row_splits=row_splits,
        seen_values=pairs[:, 1].astype(np.int64),
        item_keys=to_bytes(catalog_keys),
        item_features=catalog_features,
        item_titles=to_bytes(catalog[F.ITEM_TITLE]),
        item_genres=to_bytes(catalog[F.ITEM_GENRES]),
        popular_rows=popular_rows,
        popular_scores=popular_scores,
        item_item=item_item_tables,
        sources=sources,
        ease=ease_tables,
    )

