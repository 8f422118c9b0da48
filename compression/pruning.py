"""Magnitude pruning of the towers' Dense kernels and Embedding tables with TF-MOT.

Every `Dense` and `Embedding` layer of a functional network is wrapped with
`tfmot.sparsity.keras.prune_low_magnitude` under a `PolynomialDecay` schedule that ramps the
layer's sparsity from 0 to its configured target over the first `pruning_ramp` share of the
fine-tuning steps; the networks are fine-tuned with the Trainer's losses while
`UpdatePruningStep` advances the schedule, and `strip_pruning` returns plain functional
networks whose pruned weights are exact zeros.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from compression.config import CompressionConfig
from compression.finetune import TrainingData, copy_network, finetune
from trainer import export
from trainer.config import TrainerConfig

keras = tf.keras
PRUNABLE = {keras.layers.Dense: "kernel", keras.layers.Embedding: "embeddings"}


def schedule_steps(total_steps: int, ramp: float, frequency: int) -> tuple:
    """(end_step, frequency) of a schedule that reaches its target inside `total_steps`.

    The end step is a multiple of the frequency (the schedule prunes to the final sparsity only
    on a pruning turn) and lies in [1, total_steps].

    Raises:
      ValueError: `total_steps` < 1.
    """
    if total_steps < 1:
        raise ValueError(f"pruning needs at least one fine-tuning step, got {total_steps}")
    frequency = max(1, min(frequency, total_steps))
    end = int(round(ramp * total_steps / frequency)) * frequency
    return max(frequency, min(end, total_steps - total_steps % frequency)), frequency


def prunable_weight(layer: keras.layers.Layer):
    """The weight TF-MOT prunes in `layer` (None when the layer is not prunable here)."""
    name = PRUNABLE.get(type(layer))
    return None if name is None else getattr(layer, name)


def wrap_for_pruning(network: keras.Model, cfg: CompressionConfig, end_step: int,
                     frequency: int) -> keras.Model:
    """A copy of `network` whose Dense and Embedding layers are wrapped for pruning.

    Layers whose configured sparsity is 0 are left unwrapped.
    """
    def wrap(layer: keras.layers.Layer) -> keras.layers.Layer:
        sparsity = cfg.sparsity_of(layer.name)
        if type(layer) not in PRUNABLE or sparsity <= 0.0:
            return layer
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0, end_step=end_step,
            frequency=frequency,
        )
        return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)

    # The copy owns fresh layers, so wrapping and fine-tuning never touch `network`.
    return keras.models.clone_model(copy_network(network), clone_function=wrap)


def prune_networks(networks: export.Networks, data: TrainingData, trainer_cfg: TrainerConfig,
                   cfg: CompressionConfig) -> export.Networks:
    """Pruned, fine-tuned and stripped copies of the three networks.

    Args:
      networks: the trained float networks (left unchanged).
      data: training batches.
      trainer_cfg: the Trainer's hyperparameters (losses, learning rates).
      cfg: sparsity targets and fine-tuning settings.

    Returns:
      Plain functional networks with the configured share of zeros in each pruned weight.
    """
    total = data.steps_per_epoch * cfg.finetune_epochs
    end_step, frequency = schedule_steps(total, cfg.pruning_ramp, cfg.pruning_frequency)
    print(f"pruning: {total} fine-tuning steps per network, sparsity ramp to step {end_step}",
          flush=True)
    wrapped = export.Networks(*(wrap_for_pruning(n, cfg, end_step, frequency) for n in
                                (networks.query_tower, networks.candidate_tower, networks.ranking_model)))
    finetune(wrapped, data, trainer_cfg, cfg.finetune_epochs, cfg.finetune_learning_rate_scale,
             callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return export.Networks(*(tfmot.sparsity.keras.strip_pruning(n) for n in
                             (wrapped.query_tower, wrapped.candidate_tower, wrapped.ranking_model)))


def layer_sparsity(network: keras.Model) -> Dict[str, float]:
    """Share of exact zeros in the prunable weight of each Dense / Embedding layer."""
    out = {}
    for layer in network.layers:
        weight = prunable_weight(layer)
        if weight is not None:
            values = weight.numpy()
            out[layer.name] = float(np.mean(values == 0.0))
    return out
