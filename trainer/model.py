"""tensorflow-recommenders models: they wrap the functional towers and define the losses only."""

from __future__ import annotations

from typing import Dict, Optional

import tensorflow as tf
import tensorflow_recommenders as tfrs

from trainer import features as F
from trainer import replica_negatives


def _select(features: Dict[str, tf.Tensor], model: tf.keras.Model) -> Dict[str, tf.Tensor]:
    """The inputs of `model` from a feature batch; a missing history input means no history."""
    selected = {}
    for name in model.input_names:
        if name == F.USER_HISTORY and name not in features:
            batch = tf.shape(features[F.USER_ID_XF])[0]
            selected[name] = tf.zeros([batch, F.HISTORY_LENGTH], tf.int64)
        else:
            selected[name] = features[name]
    return selected


class RetrievalModel(tfrs.Model):
    """Two-tower retrieval trained with in-batch softmax.

    Options: a temperature on the logits, logQ correction (subtracting log of each candidate's
    sampling probability, so that popular items are not over-penalised as negatives), and removal
    of accidental hits (in-batch negatives that are the positive item itself).

    Under a multi-replica strategy the candidates of every replica are gathered
    (`trainer.replica_negatives`), so N replicas with global batch B optimise the loss of one
    device with batch B; `cross_replica_negatives=False` keeps per-replica negatives.
    """

    def __init__(
        self,
        query_tower: tf.keras.Model,
        candidate_tower: tf.keras.Model,
        item_probabilities: Optional[tf.Tensor] = None,
        temperature: float = 1.0,
        remove_accidental_hits: bool = False,
        cross_replica_negatives: bool = True,
    ) -> None:
        super().__init__()
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self._item_probabilities = (
            None if item_probabilities is None else tf.constant(item_probabilities, tf.float32)
        )
        self._remove_accidental_hits = remove_accidental_hits
        self._cross_replica_negatives = cross_replica_negatives
        self._temperature = temperature
        # Kept for callers that use the task (its metrics); compute_loss gives the same loss.
        self.task = tfrs.tasks.Retrieval(
            temperature=temperature, remove_accidental_hits=remove_accidental_hits
        )

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Sum over the local queries of the softmax loss against all in-batch candidates.

        The loss equals `self.task`'s (`replica_negatives.in_batch_softmax_loss`, tested against
        it). Embeddings are cast to float32 so that the logits and the softmax stay in full
        precision under a mixed-precision policy.
        """
        query = tf.cast(self.query_tower(_select(features, self.query_tower), training=training), tf.float32)
        candidate = tf.cast(
            self.candidate_tower(_select(features, self.candidate_tower), training=training), tf.float32
        )
        item_ids = features[F.ITEM_ID_XF]
        probabilities = None
        if self._item_probabilities is not None:
            probabilities = tf.gather(self._item_probabilities, item_ids)
        return replica_negatives.in_batch_softmax_loss(
            query,
            candidate,
            candidate_ids=item_ids,
            sampling_probability=probabilities,
            temperature=self._temperature,
            remove_accidental_hits=self._remove_accidental_hits,
            cross_replica=self._cross_replica_negatives,
        )


class RankingModel(tfrs.Model):
    """Rating regression (mean squared error) with the DCN-v2 ranking network."""

    def __init__(self, network: tf.keras.Model) -> None:
        super().__init__()
        self.network = network
        self.task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.MeanSquaredError(),
            metrics=[tf.keras.metrics.RootMeanSquaredError(name="rmse")],
        )

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        predictions = self.network(_select(features, self.network), training=training)
        return self.task(labels=features[F.RATING_XF], predictions=predictions)
