"""Knowledge distillation: a small student trained on the teacher's scores and the true labels.

Retrieval: the student's loss mixes the project's in-batch softmax on the true (user, item)
pairs with the cross-entropy between the teacher's and the student's in-batch logits, both
softened by a temperature T (scaled by T^2 so that its gradients keep their size):

    loss = (1 - alpha) * retrieval_loss + alpha * T^2 * CE(softmax(teacher / T), softmax(student / T))

The teacher's soft targets grade every in-batch candidate, so the student also learns which
"negatives" the user would like. Ranking: the student regresses on the true rating and on the
teacher's predicted rating, ``(1 - alpha) * MSE(rating) + alpha * MSE(teacher rating)``.
The teacher is frozen (copies with `trainable = False`); `alpha = 0` trains the same student
on the labels alone.
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from compression.config import CompressionConfig
from compression.finetune import TrainingData, copy_network
from core import features as F
from trainer import distribution, export, rating_residual, towers, train
from trainer.bias_model import Biases
from trainer.config import TrainerConfig

CALIBRATION_BATCHES = 200  # training batches the student's residual scale is fitted on


def _select(features: Dict[str, tf.Tensor], model: tf.keras.Model) -> Dict[str, tf.Tensor]:
    return {name: features[name] for name in model.input_names}


def frozen(network: tf.keras.Model) -> tf.keras.Model:
    """A non-trainable copy of `network` (the teacher is never updated)."""
    copy = copy_network(network)
    copy.trainable = False
    return copy


def soft_cross_entropy(teacher_logits: tf.Tensor, student_logits: tf.Tensor,
                       temperature: float) -> tf.Tensor:
    """T^2 * sum over rows of CE(softmax(teacher / T), softmax(student / T))."""
    targets = tf.stop_gradient(tf.nn.softmax(teacher_logits / temperature))
    per_row = tf.nn.softmax_cross_entropy_with_logits(targets, student_logits / temperature)
    return temperature * temperature * tf.reduce_sum(per_row)


class DistilledRetrieval(tfrs.Model):
    """Two-tower student trained on in-batch softmax + the teacher's softened in-batch logits."""

    def __init__(self, query: tf.keras.Model, candidate: tf.keras.Model,
                 teacher_query: tf.keras.Model, teacher_candidate: tf.keras.Model,
                 cfg: TrainerConfig, alpha: float, distillation_temperature: float,
                 item_probabilities: Optional[np.ndarray] = None) -> None:
        super().__init__()
        self.query_tower, self.candidate_tower = query, candidate
        self.teacher_query, self.teacher_candidate = teacher_query, teacher_candidate
        self._alpha = float(alpha)
        self._logit_temperature = float(cfg.temperature)
        self._distillation_temperature = float(distillation_temperature)
        self._remove_accidental_hits = cfg.remove_accidental_hits
        self._item_probabilities = (
            None if item_probabilities is None or not cfg.logq_correction
            else tf.constant(item_probabilities, tf.float32)
        )
        self.task = tfrs.tasks.Retrieval(temperature=cfg.temperature,
                                         remove_accidental_hits=cfg.remove_accidental_hits)

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        query = tf.cast(self.query_tower(_select(features, self.query_tower), training=training), tf.float32)
        candidate = tf.cast(
            self.candidate_tower(_select(features, self.candidate_tower), training=training), tf.float32)
        item_ids = features[F.ITEM_ID_XF]
        probabilities = None
        if self._item_probabilities is not None:
            probabilities = tf.gather(self._item_probabilities, item_ids)
        hard = self.task(query, candidate, candidate_sampling_probability=probabilities,
                         candidate_ids=item_ids if self._remove_accidental_hits else None,
                         compute_metrics=False)
        if self._alpha == 0.0:
            return hard
        teacher_query = tf.cast(self.teacher_query(_select(features, self.teacher_query), training=False), tf.float32)
        teacher_candidate = tf.cast(
            self.teacher_candidate(_select(features, self.teacher_candidate), training=False), tf.float32)
        teacher_logits = tf.matmul(teacher_query, teacher_candidate, transpose_b=True) / self._logit_temperature
        student_logits = tf.matmul(query, candidate, transpose_b=True) / self._logit_temperature
        soft = soft_cross_entropy(teacher_logits, student_logits, self._distillation_temperature)
        return (1.0 - self._alpha) * hard + self._alpha * soft


class DistilledRanking(tfrs.Model):
    """Rating student trained on the true ratings and the teacher's predicted ratings."""

    def __init__(self, network: tf.keras.Model, teacher: tf.keras.Model, alpha: float) -> None:
        super().__init__()
        self.network, self.teacher = network, teacher
        self._alpha = float(alpha)
        self.task = tfrs.tasks.Ranking(loss=tf.keras.losses.MeanSquaredError())

    def compute_loss(self, features: Dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        predictions = self.network(_select(features, self.network), training=training)
        hard = self.task(labels=features[F.RATING_XF], predictions=predictions)
        if self._alpha == 0.0:
            return hard
        teacher = tf.stop_gradient(self.teacher(_select(features, self.teacher), training=False))
        soft = tf.reduce_mean(tf.square(predictions - teacher))
        return (1.0 - self._alpha) * hard + self._alpha * soft


def build_student(vocab: towers.Vocabularies, trainer_cfg: TrainerConfig,
                  cfg: CompressionConfig, biases: Optional[Biases] = None) -> export.Networks:
    """Fresh student networks: the project's towers at the student's (smaller) size, with the
    Trainer's query features (user-id embedding or not) and regularisation; with `biases` (the
    teacher's, `trainer.rating_residual.network_biases`) the rating student predicts the residual
    over that bias model, as the teacher does."""
    dim = cfg.student_embedding_dim
    return export.Networks(
        towers.build_query_tower(vocab, dim, cfg.student_tower_layers,
                                 user_id_embedding=trainer_cfg.user_id_embedding,
                                 embedding_l2=trainer_cfg.embedding_l2),
        towers.build_candidate_tower(vocab, dim, cfg.student_tower_layers, embedding_l2=trainer_cfg.embedding_l2),
        towers.build_ranking_model(vocab, dim, cfg.student_ranking_layers,
                                   trainer_cfg.ranking_cross_layers, trainer_cfg.ranking_low_rank,
                                   trainer_cfg.ranking_embedding_l2, biases=biases),
    )


def distill(teacher: export.Networks, data: TrainingData, trainer_cfg: TrainerConfig,
            cfg: CompressionConfig, alpha: Optional[float] = None) -> export.Networks:
    """Trains a student on the teacher's scores and the labels; returns its networks.

    Args:
      teacher: the trained full networks (left unchanged).
      data: training batches.
      trainer_cfg: the Trainer's losses, optimizer and learning rates (the student is trained
        as the Trainer trains its networks).
      cfg: the student's size, epochs, temperature and alpha.
      alpha: overrides `cfg.distillation_alpha` (0: labels only, the no-teacher baseline).
    """
    alpha = cfg.distillation_alpha if alpha is None else alpha
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    tf.keras.utils.set_random_seed(cfg.seed)
    teacher_biases = rating_residual.network_biases(teacher.ranking_model)
    student = build_student(data.vocab, trainer_cfg, cfg, teacher_biases)
    print(f"distillation: student dim {cfg.student_embedding_dim}, alpha {alpha}, "
          f"T {cfg.distillation_temperature}, {cfg.student_epochs} epochs", flush=True)
    retrieval = DistilledRetrieval(
        student.query_tower, student.candidate_tower, frozen(teacher.query_tower),
        frozen(teacher.candidate_tower), trainer_cfg, alpha, cfg.distillation_temperature,
        data.item_probabilities,
    )
    retrieval.compile(optimizer=train.retrieval_optimizer(trainer_cfg))
    retrieval.fit(data.train, epochs=cfg.student_epochs, verbose=2)
    ranking = DistilledRanking(student.ranking_model, frozen(teacher.ranking_model), alpha)
    ranking.compile(optimizer=tf.keras.optimizers.Adam(
        distribution.learning_rate(trainer_cfg.ranking_learning_rate, trainer_cfg)))
    ranking.fit(data.train, epochs=cfg.student_epochs, verbose=2)
    if teacher_biases is not None:
        # The student's residual, shrunk to fit the teacher's (whose own was shrunk on held-out
        # ratings by the Trainer): it keeps no more of the residual than the teacher does.
        scale = rating_residual.calibrate(student.ranking_model, data.train, teacher_biases,
                                          target=teacher.ranking_model, max_batches=CALIBRATION_BATCHES)
        print(f"distillation: rating student's residual scaled by {scale:.3f} towards the teacher's", flush=True)
    return student
