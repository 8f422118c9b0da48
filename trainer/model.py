"""tensorflow-recommenders models: they wrap the functional towers and define the losses only."""

from __future__ import annotations

from typing import Dict, Optional

import tensorflow as tf
import tensorflow_recommenders as tfrs

from trainer import features as F


def _select(features: Dict[str, tf.Tensor], model: tf.keras.Model) -> Dict[str, tf.Tensor]:
    return {name: features[name] for name in model.input_names}


class RetrievalModel(tfrs.Model):
    """Two-tower retrieval trained with in-batch softmax.

    Options: a temperature on the logits, logQ correction (subtracting log of each candidate's
    sampling probability, so that popular items are not over-penalised as negatives), and removal
    of accidental hits (in-batch negatives that are the positive item itself).
    """

    def __init__(
        self,
        query_tower: tf.keras.Model,
        candidate_tower: tf.keras.Model,
        item_probabilities: Optional[tf.Tensor] = None,
        temperature: float = 1.0,
        remove_accidental_hits: bool = False,
    ) -> None:
        super().__init__()
        self.query_tower = query_tower
        self.candidate_tower = candidate_tower
        self._item_probabilities = (
            None if item_probabilities is None else tf.constant(item_probabilities, tf.float32)
        )
        self._remove_accidental_hits = remove_accidental_hits
        self.task = tfrs.tasks.Retrieval(
            temperature=temperature, remove_accidental_hits=remove_accidental_hits
        )

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        query = self.query_tower(_select(features, self.query_tower), training=training)
        candidate = self.candidate_tower(_select(features, self.candidate_tower), training=training)
        item_ids = features[F.ITEM_ID_XF]
        probabilities = None
        if self._item_probabilities is not None:
            probabilities = tf.gather(self._item_probabilities, item_ids)
        return self.task(
            query,
            candidate,
            candidate_sampling_probability=probabilities,
            candidate_ids=item_ids if self._remove_accidental_hits else None,
            compute_metrics=False,
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
