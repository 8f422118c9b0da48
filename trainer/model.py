"""tensorflow-recommenders models: they wrap the functional towers and define the losses only."""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import tensorflow as tf
import tensorflow_recommenders as tfrs

from core import features as F
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


def _loss_scale_optimizer(optimizer) -> bool:
    return isinstance(optimizer, tf.keras.mixed_precision.LossScaleOptimizer)


def global_batch_size(local_batch_size: tf.Tensor) -> tf.Tensor:
    """Number of examples in the global batch: the sum of every replica's local batch size.

    Summed across replicas rather than taken as local size x replicas, so that an uneven last
    batch (say 4 + 3 examples over 2 replicas) is counted exactly. Outside a multi-replica
    context it is the local size.
    """
    local = tf.cast(local_batch_size, tf.int32)
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return local
    # Summed as float32: integer all-reduces are not supported by every cross-device op.
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(local, tf.float32))
    return tf.cast(tf.round(total), tf.int32)


def average_over_global_batch(per_example_loss: tf.Tensor) -> tf.Tensor:
    """SUM of this replica's per-example losses divided by the GLOBAL batch size, in float32.

    Keras sums gradients (and, in `fit`, the reported per-replica losses) across replicas, so N
    replicas together optimise the mean over the global batch: the single-device loss.
    """
    per_example_loss = tf.cast(per_example_loss, tf.float32)
    return tf.nn.compute_average_loss(
        per_example_loss, global_batch_size=global_batch_size(tf.shape(per_example_loss)[0])
    )


class _Model(tfrs.Model):
    """`tfrs.Model` with a train step that is correct under tf.distribute and mixed_float16.

    * Regularisation losses are divided by the number of replicas
      (`tf.nn.scale_regularization_loss`): gradients are summed across replicas, so each replica
      contributes 1/N of the penalty (on one device nothing changes).
    * Under a `LossScaleOptimizer` (mixed_float16) the loss is scaled before differentiation
      and the gradients unscaled, so that small float16 gradients do not underflow to zero.
    * `compile` wraps the optimizer in a `LossScaleOptimizer` when any layer computes in
      float16, also when the model itself was created outside a mixed_float16 policy scope.
    """

    def compile(self, optimizer="rmsprop", **kwargs):
        if self._computes_in_float16():
            optimizer = tf.keras.optimizers.get(optimizer)
            if not _loss_scale_optimizer(optimizer):
                optimizer = tf.keras.mixed_precision.LossScaleOptimizer(optimizer)
        super().compile(optimizer=optimizer, **kwargs)

    def _computes_in_float16(self) -> bool:
        return any(getattr(layer, "compute_dtype", None) == "float16" for layer in self.submodules)

    def regularization_loss(self) -> tf.Tensor:
        """This replica's share of the regularisation losses (float32 scalar)."""
        if not self.losses:
            return tf.constant(0.0, tf.float32)
        total = tf.add_n([tf.cast(tf.reduce_sum(loss), tf.float32) for loss in self.losses])
        return tf.nn.scale_regularization_loss(total)

    def loss_parts(self, features: Dict[str, tf.Tensor], training: bool = False
                   ) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        """The loss and, logged beside it, named parts of it (none here; see `MultitaskModel`)."""
        return self.compute_loss(features, training=training), {}

    def _logs(self, loss: tf.Tensor, regularization_loss: tf.Tensor,
              parts: Optional[Dict[str, tf.Tensor]] = None) -> Dict[str, tf.Tensor]:
        logs = {metric.name: metric.result() for metric in self.metrics}
        logs.update(parts or {})
        logs["loss"] = loss
        logs["regularization_loss"] = regularization_loss
        logs["total_loss"] = loss + regularization_loss
        return logs

    def train_step(self, inputs):
        with tf.GradientTape() as tape:
            loss, parts = self.loss_parts(inputs, training=True)
            loss = tf.cast(loss, tf.float32)
            regularization_loss = self.regularization_loss()
            total_loss = loss + regularization_loss
            scaled = total_loss
            if _loss_scale_optimizer(self.optimizer):
                scaled = self.optimizer.get_scaled_loss(total_loss)
        gradients = tape.gradient(scaled, self.trainable_variables)
        if _loss_scale_optimizer(self.optimizer):
            gradients = self.optimizer.get_unscaled_gradients(gradients)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return self._logs(loss, regularization_loss, parts)

    def test_step(self, inputs):
        loss, parts = self.loss_parts(inputs, training=False)
        return self._logs(tf.cast(loss, tf.float32), self.regularization_loss(), parts)


class RetrievalModel(_Model):
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


class RankingModel(_Model):
    """Rating regression (mean squared error) with the DCN-v2 ranking network.

    The loss is the per-example squared error summed over this replica's examples and divided
    by the global batch size (`average_over_global_batch`): the batch mean on one device, and
    under a multi-replica strategy the replicas' losses (and gradients) sum to it. Predictions
    are cast to float32, so the loss stays in full precision under a mixed-precision policy.
    """

    def __init__(self, network: tf.keras.Model) -> None:
        super().__init__()
        self.network = network
        self.task = tfrs.tasks.Ranking(
            # Per-example losses: the reduction over the global batch is done in compute_loss
            # (Keras' AUTO reduction is refused inside a tf.distribute replica context).
            loss=tf.keras.losses.MeanSquaredError(reduction=tf.keras.losses.Reduction.NONE),
            metrics=[tf.keras.metrics.RootMeanSquaredError(name="rmse")],
        )

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        predictions = tf.cast(self.network(_select(features, self.network), training=training), tf.float32)
        labels = tf.cast(features[F.RATING_XF], tf.float32)
        # [batch, 1]: MeanSquaredError averages over the last axis, giving one loss per example.
        per_example = self.task(labels=labels[:, tf.newaxis], predictions=predictions[:, tf.newaxis])
        return average_over_global_batch(per_example)


class MultitaskModel(_Model):
    """Rating + retrieval in one model, as in the TFRS multitask tutorial.

    The loss is `retrieval_weight` x the `RetrievalModel` loss (in-batch softmax, summed over the
    local queries) + `rating_weight` x the `RankingModel` loss (squared error averaged over the
    global batch); both are computed by those models, which this one holds over the same
    networks. `network` is expected to share the towers (`towers.build_shared_ranking_model`),
    so the rating loss trains them too. Both parts are correct under a multi-replica strategy
    (summed across replicas they give the single-device values), hence so is their weighted sum.
    `fit` logs the unweighted parts as `retrieval_loss` and `rating_loss` beside `loss`.
    """

    def __init__(
        self,
        query_tower: tf.keras.Model,
        candidate_tower: tf.keras.Model,
        network: tf.keras.Model,
        rating_weight: float = 1.0,
        retrieval_weight: float = 1.0,
        item_probabilities: Optional[tf.Tensor] = None,
        temperature: float = 1.0,
        remove_accidental_hits: bool = False,
        cross_replica_negatives: bool = True,
    ) -> None:
        super().__init__()
        self.retrieval = RetrievalModel(
            query_tower,
            candidate_tower,
            item_probabilities=item_probabilities,
            temperature=temperature,
            remove_accidental_hits=remove_accidental_hits,
            cross_replica_negatives=cross_replica_negatives,
        )
        self.ranking = RankingModel(network)
        self.rating_weight = float(rating_weight)
        self.retrieval_weight = float(retrieval_weight)

    @property
    def query_tower(self) -> tf.keras.Model:
        return self.retrieval.query_tower

    @property
    def candidate_tower(self) -> tf.keras.Model:
        return self.retrieval.candidate_tower

    @property
    def network(self) -> tf.keras.Model:
        return self.ranking.network

    def loss_parts(self, features: Dict[str, tf.Tensor], training: bool = False
                   ) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        """The weighted loss, and the unweighted `retrieval_loss` and `rating_loss` (float32)."""
        retrieval = tf.cast(self.retrieval.compute_loss(features, training=training), tf.float32)
        rating = tf.cast(self.ranking.compute_loss(features, training=training), tf.float32)
        loss = self.retrieval_weight * retrieval + self.rating_weight * rating
        return loss, {"retrieval_loss": retrieval, "rating_loss": rating}

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        return self.loss_parts(features, training=training)[0]
