"""Merged candidates and the learned ranker's features, in TensorFlow (stock ops only).

One function serves training and serving alike, so the ranker sees exactly the features at
serving time that it was trained on. Each candidate source scores the whole catalog ([B, N],
-inf where it does not reach an item); the user's seen items are excluded; each source lists
its best `per_source` items; the candidates are the union of those lists (deduplicated). For
every (user, candidate) the features are, per source, its score standardised over the user's
candidates (0 where the source does not reach the item) and log(1 + its rank in the source's
list) (rank `per_source` when not listed); then the item's log training count and the user's log
number of training items; optionally the user's genre affinity of the candidate (the cosine of
the genre counts over the user's seen items and the item's genres), standardised over the
candidates and raw. Raw source scores are left out: their scale drifts between refits.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import tensorflow as tf

FEATURES_PER_SOURCE = ("z", "logrank")
SHARED_FEATURES = ("item_log_count", "user_log_activity")
GENRE_FEATURES = ("genre_affinity_z", "genre_affinity")


def feature_names(sources: Sequence[str], genre_affinity: bool = False) -> Tuple[str, ...]:
    """Names of the ranker's input features, in order, for the given sources."""
    names = tuple(f"{s}_{f}" for s in sources for f in FEATURES_PER_SOURCE) + SHARED_FEATURES
    return names + GENRE_FEATURES if genre_affinity else names


def genre_affinity(seen_rows: tf.Tensor, candidate_rows: tf.Tensor, item_genre_ids: tf.Tensor) -> tf.Tensor:
    """Cosine of each user's genre counts and each candidate's genres.

    Args:
      seen_rows: int [B, S] catalog rows of the user's seen items, -1 pads.
      candidate_rows: int [B, W] catalog rows (rows outside the catalog score 0).
      item_genre_ids: int [N, G] genre ids of every catalog item, 0 pads (the Transform's
        `item_genres_xf`).

    Returns:
      float32 [B, W]: sum over the candidate's genres of the user's normalised genre count,
      divided by the square root of the candidate's genre count (0 without seen items or genres).
    """
    n_items = tf.shape(item_genre_ids)[0]
    last = tf.maximum(n_items - 1, 0)
    seen = tf.cast(seen_rows, tf.int32)
    seen_ids = tf.cast(tf.gather(item_genre_ids, tf.clip_by_value(seen, 0, last)), tf.int32)
    seen_ids = tf.where((seen >= 0)[:, :, None], seen_ids, tf.zeros_like(seen_ids))
    rows = tf.cast(candidate_rows, tf.int32)
    candidate_ids = tf.cast(tf.gather(item_genre_ids, tf.clip_by_value(rows, 0, last)), tf.int32)
    # Genre ids only up to the largest one gathered (the catalog's table is never scanned whole).
    depth = tf.maximum(tf.maximum(tf.reduce_max(seen_ids), tf.reduce_max(candidate_ids)), 0) + 1
    counts = tf.math.bincount(tf.reshape(seen_ids, [tf.shape(seen)[0], -1]), minlength=depth, maxlength=depth,
                              dtype=tf.float32, axis=-1)
    counts = counts * tf.cast(tf.range(depth) > 0, tf.float32)[None, :]  # id 0 pads
    profile = counts / tf.maximum(tf.norm(counts, axis=1, keepdims=True), 1e-9)
    in_catalog = tf.cast((rows >= 0) & (rows < n_items), tf.float32)
    per_genre = tf.gather(profile, candidate_ids, batch_dims=1)
    n_genres = tf.reduce_sum(tf.cast(candidate_ids > 0, tf.float32), axis=-1)
    return in_catalog * tf.reduce_sum(per_genre, axis=-1) / tf.sqrt(tf.maximum(n_genres, 1.0))


def _dense_positions(rows: tf.Tensor, values: tf.Tensor, shape: tf.Tensor, fill) -> tf.Tensor:
    """[B, N] tensor `fill` everywhere but at (b, rows[b, j]), which holds values[b, j]."""
    batch_index = tf.broadcast_to(tf.range(tf.shape(rows)[0])[:, None], tf.shape(rows))
    indices = tf.stack([tf.reshape(batch_index, [-1]), tf.reshape(rows, [-1])], axis=1)
    base = tf.fill(shape, tf.cast(fill, values.dtype))
    return tf.tensor_scatter_nd_update(base, indices, tf.reshape(values, [-1]))


def _standardised(values: tf.Tensor, valid: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
    """[B, W] values standardised over each row's valid slots (`valid` 0/1, `count` their number)."""
    mean = tf.reduce_sum(values * valid, axis=1, keepdims=True) / count
    var = tf.reduce_sum(tf.square(values - mean) * valid, axis=1, keepdims=True) / count
    return (values - mean) / (tf.sqrt(var) + 1e-6)


def candidate_features(
    source_scores: Sequence[tf.Tensor],
    exclude: tf.Tensor,
    item_log_count: tf.Tensor,
    user_log_activity: tf.Tensor,
    per_source: int,
    num_items: int,
    genres: Optional[Tuple[tf.Tensor, tf.Tensor]] = None,
) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The merged candidates of a batch of users and their features.

    Args:
      source_scores: one float32 [B, N] per source; -inf (or any non-finite value) where the
        source does not reach the item.
      exclude: bool [B, N], items never to recommend (the user's seen items).
      item_log_count: float32 [N], log(1 + training count) of each item.
      user_log_activity: float32 [B], log(1 + training items) of each user.
      per_source: how many items each source lists.
      num_items: N, the catalog size (static).
      genres: (seen rows [B, S], -1 pads; item genre ids [N, G]) for the genre affinity features
        (`genre_affinity`), or None without them.

    Returns:
      (rows int32 [B, W], valid bool [B, W], features float32 [B, W, F]) with
      W = min(len(sources) * min(per_source, N), N); slots beyond a user's candidates are not valid
      and hold zero features.
    """
    shape = tf.shape(exclude)
    depth = min(per_source, num_items)
    in_union = tf.zeros(shape, tf.bool)
    ranks, reach_scores = [], []
    for scores in source_scores:
        scores = tf.cast(scores, tf.float32)
        listed_scores = tf.where(exclude, tf.fill(shape, float("-inf")), scores)
        top_values, top_rows = tf.math.top_k(listed_scores, k=depth)
        listed = tf.math.is_finite(top_values)
        positions = tf.broadcast_to(tf.range(depth, dtype=tf.float32)[None, :], tf.shape(top_values))
        positions = tf.where(listed, positions, tf.fill(tf.shape(positions), float(depth)))
        ranks.append(_dense_positions(top_rows, positions, shape, float(depth)))
        in_union = tf.logical_or(in_union, _dense_positions(top_rows, listed, shape, False))
        reach_scores.append(tf.where(tf.math.is_finite(scores), scores, tf.zeros_like(scores)))
    width = min(len(source_scores) * depth, num_items)
    union_values, rows = tf.math.top_k(tf.cast(in_union, tf.float32), k=width)
    valid = union_values > 0
    valid_f = tf.cast(valid, tf.float32)
    count = tf.maximum(tf.reduce_sum(valid_f, axis=1, keepdims=True), 1.0)
    columns = []
    for scores, rank in zip(reach_scores, ranks):
        columns.append(_standardised(tf.gather(scores, rows, batch_dims=1), valid_f, count))
        columns.append(tf.math.log1p(tf.gather(rank, rows, batch_dims=1)))
    columns.append(tf.gather(tf.cast(item_log_count, tf.float32), rows))
    columns.append(tf.broadcast_to(tf.cast(user_log_activity, tf.float32)[:, None], tf.shape(valid_f)))
    if genres is not None:
        affinity = genre_affinity(genres[0], rows, genres[1])
        columns += [_standardised(affinity, valid_f, count), affinity]
    features = tf.stack(columns, axis=-1) * valid_f[:, :, None]
    return rows, valid, features
