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
a process that has imported `scann` (the project's model server does,
`serving.custom_ops`) can.
"""

from __future__ import annotations

import importlib.util
from typing import Optional

import numpy as np
import tensorflow as tf

from trainer.retrieval_index import RetrievalIndexConfig
from trainer.serving_model import ServingModel

SCANN_NAMESPACE = "Scann"  # op namespace of ScaNN's custom ops in a saved graph
SCANN_REQUIREMENT = "scann==1.3.2"


def require_scann() -> None:
    """Raises ImportError (one line, with the pip requirement) when `scann` is not installed."""
    if importlib.util.find_spec("scann") is None:
        raise ImportError(f"retrieval_index.kind 'scann' needs the scann package: pip install {SCANN_REQUIREMENT}")


def build_index(embeddings: np.ndarray, k: int, config: RetrievalIndexConfig):
    """A `tfrs.layers.factorized_top_k.ScaNN` over `embeddings` [N, D] returning catalog rows.

    Args:
      embeddings: candidate embeddings, one row per catalog item.
      k: the number of neighbours searched for (the index's default k).
      config: the index settings.

    Returns:
      The indexed layer; `layer(queries, k=...)` gives (scores [B, k], rows int32 [B, k]).

    Raises:
      ValueError: `num_leaves` exceeds the number of items (one line).
      ImportError: scann is not installed.
    """
    require_scann()
    import tensorflow_recommenders as tfrs

    n_items = int(embeddings.shape[0])
    if config.num_leaves > n_items:
        raise ValueError(f"retrieval_index.num_leaves ({config.num_leaves}) exceeds the catalog's {n_items} items")
    layer = tfrs.layers.factorized_top_k.ScaNN(
        k=k,
        num_leaves=config.num_leaves,
        num_leaves_to_search=config.leaves_to_search,
        training_iterations=config.training_iterations,
        dimensions_per_block=config.dimensions_per_block,
        num_reordering_candidates=max(config.reorder, k) if config.reorder else None,
        name="scann_index",
    )
    return layer.index(tf.constant(embeddings, tf.float32))


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
        self.index = build_index(embeddings, self._n_retrieved, index)
        if self.item_item is None and self.candidate_ranker is None:
            # Only `_top_candidates` retrieves: the index holds all it needs (del untracks it).
            del self.candidate_embeddings

    def save_options(self) -> Optional[tf.saved_model.SaveOptions]:
        return tf.saved_model.SaveOptions(namespace_whitelist=[SCANN_NAMESPACE])

    def _top_candidates(self, query: tf.Tensor, exclude: Optional[tf.Tensor], k: int):
        scores, rows = self.index(query, k=self._n_retrieved if exclude is not None else k)
        if exclude is not None:
            seen = tf.gather(exclude, rows, batch_dims=1)
            scores = tf.where(seen, tf.fill(tf.shape(scores), -1e9), scores)
        top_scores, order = tf.math.top_k(scores, k=k)
        return top_scores, tf.gather(rows, order, batch_dims=1)
