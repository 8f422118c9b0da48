"""EASE over the most popular items: a dense item-item weight block, scored with stock ops.

EASE (Steck, 2019) learns B = argmin ||X - XB||^2 + l2 ||B||^2 with diag(B) = 0 in closed form:
P = (X^T X + l2 I)^-1, B_ij = -P_ij / P_jj. Its weights are dense, and cutting each row to its
top-k neighbours loses much of its accuracy, so the block keeps every weight, but only among
the `max_items` most popular items: a user is scored by the sum of the rows of their history
items inside the block, items outside it are not reached (-inf). Memory is max_items^2 floats
whatever the catalog size; a variable, so `saved_model.pb` does not grow with it.

Histories are [B, H] catalog rows (entries < 0 pad): the serving model gives each user's seen items.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class EaseBlockTables:
    """The block's catalog rows [M] (most popular first) and weights float32 [M, M]."""

    rows: np.ndarray
    weights: np.ndarray


def fit_ease_block(users: np.ndarray, rows: np.ndarray, n_items: int, max_items: int, l2: float) -> EaseBlockTables:
    """EASE on the `max_items` most popular catalog rows of the (user, row) interactions."""
    counts = np.bincount(rows, minlength=n_items)
    block = np.argsort(-counts, kind="stable")[:min(max_items, int((counts > 0).sum()))]
    position = np.full(n_items, -1, np.int64)
    position[block] = np.arange(len(block))
    inside = position[rows] >= 0
    pairs = np.unique(np.stack([users[inside], position[rows[inside]]], axis=1), axis=0)
    x = np.zeros((int(users.max()) + 1 if len(users) else 0, len(block)), np.float32)
    x[pairs[:, 0], pairs[:, 1]] = 1.0
    gram = (x.T @ x).astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(weights, 0.0)
    return EaseBlockTables(block.astype(np.int32), weights.astype(np.float32))


class EaseBlock(tf.Module):
    """Scores users from their histories with an `EaseBlockTables` block."""

    def __init__(self, tables: EaseBlockTables, n_items: int, name: str = "ease_block",
                 resizable: bool = False) -> None:
        """Builds the block.

        Args:
          tables: the block's rows and weights.
          n_items: the catalog width of the scores (static).
          name: the module's name.
          resizable: the block's size may change with `assign` (the online learner's versions).
        """
        super().__init__(name=name)
        self.n_items = n_items
        size = None if resizable else len(tables.rows)
        self.block_rows = tf.Variable(tables.rows.astype(np.int32), trainable=False, name="block_rows",
                                      shape=tf.TensorShape([size]))
        self.block_position = tf.Variable(self._positions(tables), trainable=False, name="block_position")
        self.weights = tf.Variable(tables.weights.astype(np.float32), trainable=False, name="weights",
                                   shape=tf.TensorShape([size, size]))

    def _positions(self, tables: EaseBlockTables) -> np.ndarray:
        position = np.full(self.n_items, -1, np.int32)
        position[tables.rows] = np.arange(len(tables.rows), dtype=np.int32)
        return position

    def assign(self, tables: EaseBlockTables) -> None:
        """Serves `tables` from now on (rows within the block's `n_items`; eager)."""
        self.block_rows.assign(tables.rows.astype(np.int32))
        self.block_position.assign(self._positions(tables))
        self.weights.assign(tables.weights.astype(np.float32))

    def scores(self, history: tf.Tensor) -> tf.Tensor:
        """float32 [B, n_items]: the users' EASE scores, -inf outside the block."""
        history = tf.cast(history, tf.int32)
        valid = history >= 0
        positions = tf.gather(self.block_position, tf.where(valid, history, tf.zeros_like(history)))
        inside = tf.logical_and(valid, positions >= 0)
        size = tf.shape(self.block_rows)[0]
        batch = tf.shape(history)[0]
        slot = tf.where(inside, positions, tf.fill(tf.shape(positions), size))  # outside: a spare column
        batch_of = tf.broadcast_to(tf.range(batch)[:, None], tf.shape(slot))
        hits = tf.scatter_nd(tf.stack([tf.reshape(batch_of, [-1]), tf.reshape(slot, [-1])], axis=1),
                             tf.ones([tf.size(slot)], tf.float32), tf.stack([batch, size + 1]))
        indicator = tf.minimum(hits[:, :size], 1.0)  # [B, M]
        block_scores = tf.matmul(indicator, self.weights)
        out = tf.fill(tf.stack([batch, self.n_items]), float("-inf"))
        batch_index = tf.broadcast_to(tf.range(batch)[:, None], tf.shape(block_scores))
        columns = tf.broadcast_to(self.block_rows[None, :], tf.shape(block_scores))
        indices = tf.stack([tf.reshape(batch_index, [-1]), tf.reshape(columns, [-1])], axis=1)
        return tf.tensor_scatter_nd_update(out, indices, tf.reshape(block_scores, [-1]))
