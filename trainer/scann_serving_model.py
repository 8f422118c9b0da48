"""`ScannServingModel`: the two-stage serving model whose retrieval step is a ScaNN index.

The same signatures as `ServingModel`; the two-tower's candidates come from
`tfrs.layers.factorized_top_k.ScaNN` built over the catalog's candidate embeddings instead of a
matrix product with every item. The index retrieves `candidates_to_rank` plus a headroom for the
user's seen items (`RetrievalIndexConfig.seen_headroom`, no more than the longest seen list),
scores the seen ones -1e9 and keeps the best `candidates_to_rank`, which are re-ranked as in
`ServingModel` (`retrieve`, `retrieve_unfiltered`, and `serving_default` without the item-item
source and the learned ranker). With the item-item source or the ranker, the other sources score
every catalog item anyway and read the two-tower score of any item they propose, so those paths
keep the exact matrix product (and the float candidate embeddings): there the index saves no
time. Without them the float embeddings are not saved beside the index.

The SavedModel holds ScaNN's custom ops (namespace `Scann`): stock TF Serving cannot load it;
a process that has imported `scann` (`core.custom_ops.load_saved_model`: the project's model
server, `recsys recommend` and the evaluator call it) can. `uses_scann_index` tells such a
SavedModel from a brute-force one without loading it.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import tensorflow as tf

from trainer.retrieval_index import SCANN_MISSING, SCANN_NAMESPACE, RetrievalIndexConfig, scann_installed
from trainer.serving_model import ServingModel

PADDED_SCORE = -3e9  # slots the index could not fill with unseen items (brute force scores seen ones -1e9)


def require_scann() -> None:
    """Raises ImportError (one line, with the pip requirement) when `scann` is not installed."""
    if not scann_installed():
        raise ImportError(SCANN_MISSING)


def uses_scann_index(saved_model_dir: str) -> bool:
    """Whether the SavedModel in `saved_model_dir` calls ScaNN's ops (read from its graph, not loaded).

    Raises:
      FileNotFoundError: the folder holds no `saved_model.pb`.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as handle:
        model.ParseFromString(handle.read())
    prefix = SCANN_NAMESPACE + ">"
    for graph in (meta.graph_def for meta in model.meta_graphs):
        nodes = [*graph.node, *(node for function in graph.library.function for node in function.node_def)]
        if any(node.op.startswith(prefix) for node in nodes):
            return True
    return False


def build_index(embeddings: np.ndarray, k: int, config: RetrievalIndexConfig):
    """A `tfrs.layers.factorized_top_k.ScaNN` over `embeddings` [N, D] returning catalog rows.

    Args:
      embeddings: candidate embeddings, one row per catalog item.
      k: the number of neighbours searched for (the index's default k).
      config: the index settings.

    Returns:
      The indexed layer; `layer(queries, k=...)` gives (scores [B, k], rows int32 [B, k]).

    Raises:
      ValueError: `num_leaves` exceeds the number of items (one line); see
        `RetrievalIndexConfig.resolve_leaves`, which sets the unset leaf counts.
      ImportError: scann is not installed.
    """
    require_scann()
    import tensorflow_recommenders as tfrs

    num_leaves, leaves_to_search = config.resolve_leaves(int(embeddings.shape[0]), k)
    layer = tfrs.layers.factorized_top_k.ScaNN(
        k=k,
        num_leaves=num_leaves,
        num_leaves_to_search=leaves_to_search,
        training_iterations=config.training_iterations,
        dimensions_per_block=config.dimensions_per_block,
        num_reordering_candidates=max(config.reorder, k) if config.reorder else None,
        name="scann_index",
    )
    indexed = layer.index(tf.constant(embeddings, tf.float32))
    indexed.leaves = (num_leaves, leaves_to_search)  # what the index was built with
    return indexed


class ScannServingModel(ServingModel):
    """`ServingModel` retrieving through a ScaNN index; see the module docstring.

    Args (beyond `ServingModel`'s):
      index: the retrieval index settings (`kind` is not read: this class is the ScaNN one).
    """

    def __init__(self, *args, index: RetrievalIndexConfig = RetrievalIndexConfig(kind="scann"), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        embeddings = self.candidate_embeddings.numpy()
        n_items = int(embeddings.shape[0])
        seen_counts = np.diff(self.seen_row_splits.numpy())
        longest_seen = int(seen_counts.max()) if seen_counts.size else 0
        self._n_retrieved = min(n_items, self._n_candidates + min(longest_seen, index.seen_headroom))
        self._n_items = n_items
        self.index = build_index(embeddings, self._n_retrieved, index)
        if self.item_item is None and self.candidate_ranker is None:
            # Only `_top_candidates` retrieves: the index holds all it needs (del untracks it).
            del self.candidate_embeddings

    def save_options(self) -> Optional[tf.saved_model.SaveOptions]:
        return tf.saved_model.SaveOptions(namespace_whitelist=[SCANN_NAMESPACE])

    def _top_candidates(self, query: tf.Tensor, exclude: Optional[tf.Tensor], k: int):
        asked = self._n_retrieved if exclude is not None else k
        scores, rows = self.index(query, k=asked)
        # When the searched leaves hold fewer items than asked for, ScaNN pads the row with
        # catalog row 0 and a NaN score, or returns fewer columns: those slots rank below
        # everything real.
        missing = [[0, 0], [0, tf.maximum(asked - tf.shape(scores)[1], 0)]]
        scores = tf.pad(scores, missing, constant_values=float("nan"))
        rows = tf.pad(rows, missing)
        found = tf.math.is_finite(scores)
        if exclude is not None:  # a seen item counts as not found: an unseen filler replaces it
            found &= ~tf.gather(exclude, rows, batch_dims=1)
        scores = tf.where(found, scores, tf.fill(tf.shape(scores), PADDED_SCORE))
        top_scores, order = tf.math.top_k(scores, k=k)
        top_rows = tf.gather(rows, order, batch_dims=1)
        short = tf.reduce_any(top_scores <= PADDED_SCORE)
        return tf.cond(short, lambda: self._fill_padded(top_scores, top_rows, rows, found, exclude),
                       lambda: (top_scores, top_rows))

    def _fill_padded(self, top_scores, top_rows, rows, found, exclude):
        """Replaces padded slots of `top_rows` by distinct unseen catalog rows (lowest first), so
        that no item appears twice in a row; they keep `PADDED_SCORE`."""
        n_items = self._n_items
        fillers = tf.range(tf.minimum(n_items, tf.shape(rows)[1] + tf.shape(top_rows)[1]), dtype=rows.dtype)
        real = tf.where(found, rows, -tf.ones_like(rows))  # padding matches no filler
        taken = tf.reduce_any(tf.equal(fillers[None, :, None], real[:, None, :]), axis=-1)  # [B, F]
        if exclude is not None:
            taken |= tf.gather(exclude, tf.broadcast_to(fillers[None], tf.shape(taken)), batch_dims=1)
        free = ~taken
        free_rank = tf.cumsum(tf.cast(free, tf.int32), axis=1) - 1  # rank of each free filler
        padded = top_scores <= PADDED_SCORE  # [B, k]; padded slots are the row's last ones
        slot = tf.cumsum(tf.cast(padded, tf.int32), axis=1) - 1  # j for the j-th padded slot
        pick = free[:, None, :] & tf.equal(free_rank[:, None, :], slot[:, :, None])  # [B, k, F]
        has_filler = tf.reduce_any(pick, axis=-1)
        filler_rows = tf.gather(fillers, tf.argmax(tf.cast(pick, tf.int32), axis=-1, output_type=tf.int32))
        return top_scores, tf.where(padded & has_filler, tf.cast(filler_rows, top_rows.dtype), top_rows)
