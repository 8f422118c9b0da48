"""The item-item candidate source in TensorFlow: a neighbour table scoring users from histories.

`ItemItemSource` holds a [num_items, k] neighbour table (`trainer.item_neighbours`) as two
non-trainable variables, so a SavedModel stores it in its variables and `saved_model.pb` does
not grow with it: ids in the narrowest signed integer type that holds every item index, weights
as float32 or float16. A user's score of item j is the sum over their history items i of the
weight of j in row i; items no history item points to are not candidates. Stock ops only
(gather, unsorted_segment_sum, tensor_scatter_nd_update, top_k), so TF Serving runs it.

Histories are [B, H] item indices (catalog rows); entries < 0 pad.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
import tensorflow as tf

from trainer.item_item_config import WEIGHT_DTYPES
from trainer.table_storage import gather_rows

CANDIDATE_ROWS = "rows"
CANDIDATE_SCORES = "scores"


def narrowest_id_dtype(num_items: int) -> np.dtype:
    """The smallest signed integer type holding every index in [0, num_items)."""
    for dtype in (np.int8, np.int16, np.int32):
        if num_items - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


class ItemItemSource(tf.Module):
    """Scores a catalog of `num_items` items from users' histories; see the module docstring."""

    def __init__(
        self,
        neighbour_ids: np.ndarray,
        weights: np.ndarray,
        top_n: int,
        weights_dtype: str = "float32",
        name: str = "item_item",
    ) -> None:
        """Builds the source.

        Args:
          neighbour_ids: [num_items, k] neighbour indices in [0, num_items).
          weights: [num_items, k] their weights.
          top_n: candidates `candidates` returns per user (at most num_items).
          weights_dtype: 'float32' or 'float16' storage of the weights.
          name: the module's name.
        """
        super().__init__(name=name)
        ids = np.asarray(neighbour_ids)
        if ids.ndim != 2 or np.shape(weights) != ids.shape:
            raise ValueError(f"neighbour ids {ids.shape} and weights {np.shape(weights)} must be equal [items, k]")
        if weights_dtype not in WEIGHT_DTYPES:
            raise ValueError(f"weights_dtype must be one of {WEIGHT_DTYPES}, got {weights_dtype!r}")
        num_items = ids.shape[0]
        if ids.size and (ids.min() < 0 or ids.max() >= num_items):
            raise ValueError(f"neighbour ids must lie in [0, {num_items})")
        if top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {top_n}")
        self.num_items = num_items
        self.top_n = min(top_n, num_items)
        self.neighbour_ids = tf.Variable(ids.astype(narrowest_id_dtype(num_items)), trainable=False, name="neighbour_ids")
        self.neighbour_weights = tf.Variable(np.asarray(weights, weights_dtype), trainable=False, name="neighbour_weights")

    def _contributions(self, history: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Flat segment ids (b * num_items + item), weights and reach flags of every neighbour
        of every valid history entry."""
        history = tf.cast(history, tf.int64)
        valid = history >= 0
        safe = tf.where(valid, history, tf.zeros_like(history))
        ids = tf.cast(tf.gather(self.neighbour_ids, safe), tf.int64)  # [B, H, k]
        weights = tf.cast(gather_rows(self.neighbour_weights, safe), tf.float32)
        valid_k = tf.broadcast_to(tf.expand_dims(valid, -1), tf.shape(ids))
        batch = tf.shape(history, out_type=tf.int64)[0]
        segments = tf.reshape(tf.range(batch)[:, None, None] * self.num_items + ids, [-1])
        return segments, tf.reshape(weights, [-1]), tf.reshape(valid_k, [-1])

    def scores(self, history: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
        """Scores of every catalog item and whether any history item points to it.

        Args:
          history: [B, H] integer item indices; entries < 0 pad.

        Returns:
          (scores float32 [B, num_items], reached bool [B, num_items]).
        """
        segments, weights, valid = self._contributions(history)
        batch = tf.shape(history, out_type=tf.int64)[0]
        n_segments = batch * self.num_items
        zero = tf.zeros_like(weights)
        summed = tf.math.unsorted_segment_sum(tf.where(valid, weights, zero), segments, n_segments)
        reached = tf.math.unsorted_segment_sum(tf.cast(valid, tf.float32), segments, n_segments) > 0
        shape = tf.stack([batch, tf.cast(self.num_items, tf.int64)])
        return tf.reshape(summed, shape), tf.reshape(reached, shape)

    def candidate_scores(self, history: tf.Tensor, exclude: Optional[tf.Tensor] = None) -> tf.Tensor:
        """Scores of every catalog item as a candidate: -inf where no history item points to
        it, where it is a history item, or where `exclude` is True.

        Args:
          history: [B, H] integer item indices; entries < 0 pad.
          exclude: optional [B, num_items] bool, more items to leave out (e.g. all seen items).

        Returns:
          float32 [B, num_items].
        """
        scores, reached = self.scores(history)
        history = tf.cast(history, tf.int64)
        positions = tf.where(history >= 0)  # [M, 2]: (b, h)
        in_history = tf.stack([positions[:, 0], tf.gather_nd(history, positions)], axis=1)
        keep = tf.tensor_scatter_nd_update(reached, in_history, tf.zeros(tf.shape(in_history)[:1], tf.bool))
        if exclude is not None:
            keep = tf.logical_and(keep, tf.logical_not(exclude))
        return tf.where(keep, scores, tf.fill(tf.shape(scores), tf.constant(-np.inf, tf.float32)))

    def top(self, history: tf.Tensor, exclude: Optional[tf.Tensor] = None) -> Dict[str, tf.Tensor]:
        """The `top_n` best items per user, without their history items (and `exclude`).

        Args:
          history: [B, H] integer item indices; entries < 0 pad.
          exclude: optional [B, num_items] bool, more items to leave out (e.g. all seen items).

        Returns:
          {'rows': int32 [B, top_n] item indices, 'scores': float32 [B, top_n]}, best first;
          slots without a candidate (not reached, or excluded) score -inf.
        """
        top_scores, rows = tf.math.top_k(self.candidate_scores(history, exclude), k=self.top_n)
        return {CANDIDATE_ROWS: rows, CANDIDATE_SCORES: top_scores}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int64, name="history")])
    def candidates(self, history: tf.Tensor) -> Dict[str, tf.Tensor]:
        """`top` as a signature: history [B, H] int64 (< 0 pads) -> rows, scores [B, top_n]."""
        return self.top(history)
