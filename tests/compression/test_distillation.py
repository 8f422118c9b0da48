"""The distilled student beats the same small student trained without the teacher."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.compression.conftest import recall_at
from trainer.compression import distillation
from trainer.compression.config import CompressionConfig


def test_soft_cross_entropy_by_hand():
    import tensorflow as tf

    even = tf.zeros([1, 2])
    assert distillation.soft_cross_entropy(even, even, 1.0).numpy() == pytest.approx(math.log(2))
    # T = 2 scales by T^2 = 4; the softened targets are still uniform.
    assert distillation.soft_cross_entropy(even, even, 2.0).numpy() == pytest.approx(4 * math.log(2))
    teacher = tf.constant([[math.log(3.0), 0.0]])  # softmax: (0.75, 0.25)
    student = tf.zeros([1, 2])
    assert distillation.soft_cross_entropy(teacher, student, 1.0).numpy() == pytest.approx(math.log(2))
    assert distillation.soft_cross_entropy(teacher, teacher, 1.0).numpy() == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), rel=1e-5)


def test_distilled_student_beats_the_student_trained_on_labels_only(teacher, training_data, trainer_cfg,
                                                                    context, world):
    cfg = CompressionConfig(student_embedding_dim=4, student_tower_layers=(), student_epochs=3,
                            distillation_alpha=0.5, distillation_temperature=2.0)
    distilled = distillation.distill(teacher, training_data, trainer_cfg, cfg)
    alone = distillation.distill(teacher, training_data, trainer_cfg, cfg, alpha=0.0)
    assert distilled.query_tower.get_layer("user_id_embedding").output_dim == 4
    teacher_recall = recall_at(teacher, context, world)
    distilled_recall, alone_recall = recall_at(distilled, context, world), recall_at(alone, context, world)
    assert teacher_recall > 0.8, "the teacher must have learnt the tastes"
    assert distilled_recall >= alone_recall + 0.1, (distilled_recall, alone_recall)
    ratings = distilled.ranking_model({n: np.zeros((2,) + tuple(i.shape[1:]), i.dtype.as_numpy_dtype)
                                       for n, i in zip(distilled.ranking_model.input_names,
                                                       distilled.ranking_model.inputs)}).numpy()
    assert np.all(np.isfinite(ratings))
