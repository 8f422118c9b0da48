"""Pruning reaches each layer's configured sparsity; the schedule ends inside the fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest

from compression import pruning
from compression.config import CompressionConfig


@pytest.mark.parametrize("total, ramp, frequency, expected", [
    (12, 0.6, 2, (8, 2)),     # round(0.6 * 12 / 2) * 2 = round(3.6) * 2 = 8
    (100, 0.6, 10, (60, 10)),
    (7, 0.6, 10, (7, 7)),     # fewer steps than the frequency: one update, at the last step
    (25, 1.0, 10, (20, 10)),  # the end must be a pruning turn inside the 25 steps
])
def test_schedule_steps_by_hand(total, ramp, frequency, expected):
    assert pruning.schedule_steps(total, ramp, frequency) == expected


def test_schedule_needs_a_step():
    with pytest.raises(ValueError, match="at least one"):
        pruning.schedule_steps(0, 0.5, 10)


def _expected_zeros(size: int, sparsity: float) -> int:
    """TF-MOT keeps the round(size * (1 - sparsity)) largest magnitudes (float32 arithmetic)."""
    return size - int(np.round(np.float32(size) * (np.float32(1.0) - np.float32(sparsity))))


def test_each_layer_reaches_its_configured_sparsity(teacher, training_data, trainer_cfg):
    cfg = CompressionConfig(target_sparsity=0.75, finetune_epochs=1, pruning_frequency=2,
                            sparsity_overrides=(("item_id_embedding", 0.5), ("user_gender_embedding", 0.0)))
    before = {n.name: n.get_weights() for n in (teacher.query_tower, teacher.candidate_tower, teacher.ranking_model)}
    pruned = pruning.prune_networks(teacher, training_data, trainer_cfg, cfg)
    checked = 0
    for network in (pruned.query_tower, pruned.candidate_tower, pruned.ranking_model):
        assert not any("prune" in layer.name for layer in network.layers), "wrappers must be stripped"
        for layer in network.layers:
            weight = pruning.prunable_weight(layer)
            if weight is None:
                continue
            values = weight.numpy()
            sparsity = cfg.sparsity_of(layer.name)
            zeros = int(np.sum(values == 0.0))
            assert zeros == _expected_zeros(values.size, sparsity), f"{network.name}/{layer.name}"
            checked += 1
    assert checked >= 10
    # The trained networks are left untouched.
    for network in (teacher.query_tower, teacher.candidate_tower, teacher.ranking_model):
        for a, b in zip(before[network.name], network.get_weights()):
            np.testing.assert_array_equal(a, b)
