"""Small optimiser steps on the two towers, with a replay of recent interactions.

Each round of new events runs a few Adagrad steps of the retrieval loss of the Trainer (the
in-batch softmax of `trainer.model.RetrievalModel`: temperature, logQ correction with the
current item frequencies, removal of accidental hits) on a batch made of the new events plus a
sample of the replay buffer, so the towers follow new behaviour without forgetting the rest.
The learner sizes the replayed part in proportion to the new events (`replay_ratio`): the loss
is a sum over the batch, so the training an event brings does not depend on how many events
arrived together.
The step function is traced once for any batch size. `snapshot`/`restore` undo an update the
guard rejects.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from core import features as F
from trainer.config import TrainerConfig


class ReplayBuffer:
    """The most recent `capacity` training rows (a ring), sampled uniformly.

    Args:
      rows: initial rows (the base training data), kept newest by `F.TIMESTAMP_XF`.
      capacity: most rows kept.
      seed: sampling seed.
    """

    def __init__(self, rows: Dict[str, np.ndarray], capacity: int, seed: int) -> None:
        order = np.argsort(rows[F.TIMESTAMP_XF], kind="stable")[-capacity:]
        self._data = {k: np.zeros((capacity,) + v.shape[1:], v.dtype) for k, v in rows.items()}
        for k, v in rows.items():
            self._data[k][: len(order)] = v[order]
        self.size = len(order)
        self._next = self.size % capacity
        self._capacity = capacity
        self._rng = np.random.default_rng(seed)

    def add(self, rows: Dict[str, np.ndarray]) -> None:
        """Adds rows (the oldest are overwritten once full)."""
        n = len(next(iter(rows.values())))
        positions = (self._next + np.arange(n)) % self._capacity
        for k in self._data:
            self._data[k][positions] = rows[k]
        self._next = int((self._next + n) % self._capacity)
        self.size = min(self._capacity, self.size + n)

    def sample(self, n: int) -> Dict[str, np.ndarray]:
        """`n` rows drawn uniformly with replacement (none when empty)."""
        picks = self._rng.integers(self.size, size=n if self.size else 0)
        return {k: v[picks] for k, v in self._data.items()}


def _input_specs(*models: tf.keras.Model) -> Dict[str, tf.TensorSpec]:
    specs = {}
    for model in models:
        for tensor in model.inputs:
            name = tensor.name.split(":")[0]
            specs[name] = tf.TensorSpec([None] + list(tensor.shape[1:]), tensor.dtype, name=name)
    return specs


class OnlineOptimizer:
    """Adagrad steps of the retrieval loss on the query and candidate towers.

    Args:
      query_tower / candidate_tower: the (reserve-grown) towers, trained in place.
      trainer: the Trainer's hyperparameters (loss options).
      learning_rate: the online learning rate.
      num_item_indices: size of the item index space (vocabulary + OOV + reserve).
    """

    def __init__(self, query_tower: tf.keras.Model, candidate_tower: tf.keras.Model,
                 trainer: TrainerConfig, learning_rate: float, num_item_indices: int) -> None:
        self.query_tower, self.candidate_tower = query_tower, candidate_tower
        self.task = tfrs.tasks.Retrieval(temperature=trainer.temperature,
                                         remove_accidental_hits=trainer.remove_accidental_hits)
        self._logq = trainer.logq_correction
        self._remove_hits = trainer.remove_accidental_hits
        self.probabilities = tf.Variable(tf.fill([num_item_indices], 1.0 / num_item_indices), trainable=False)
        seen, self.variables = set(), []
        for variable in query_tower.trainable_variables + candidate_tower.trainable_variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                self.variables.append(variable)
        self.optimizer = tf.keras.optimizers.Adagrad(learning_rate)
        self.optimizer.build(self.variables)
        self.specs = _input_specs(query_tower, candidate_tower)
        self._step = tf.function(self._train_step, input_signature=[self.specs])

    def _loss(self, batch: Dict[str, tf.Tensor]) -> tf.Tensor:
        query = self.query_tower({n: batch[n] for n in self.query_tower.input_names}, training=True)
        candidate = self.candidate_tower({n: batch[n] for n in self.candidate_tower.input_names}, training=True)
        ids = batch[F.ITEM_ID_XF]
        probabilities = tf.gather(self.probabilities, ids) if self._logq else None
        return self.task(query, candidate, candidate_sampling_probability=probabilities,
                         candidate_ids=ids if self._remove_hits else None, compute_metrics=False)

    def _train_step(self, batch: Dict[str, tf.Tensor]) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = self._loss(batch)
        gradients = tape.gradient(loss, self.variables)
        self.optimizer.apply_gradients(zip(gradients, self.variables))
        return loss

    def fit(self, new_rows: Dict[str, np.ndarray], replay: Optional[ReplayBuffer], steps: int,
            replay_rows: int, probabilities: np.ndarray) -> List[float]:
        """Runs `steps` steps on the new rows plus `replay_rows` replayed rows each.

        Returns:
          The loss of each step.
        """
        self.probabilities.assign(probabilities)
        losses = []
        for _ in range(steps):
            batch = {name: new_rows[name] for name in self.specs}
            if replay is not None and replay_rows:
                extra = replay.sample(replay_rows)
                batch = {name: np.concatenate([batch[name], extra[name].astype(batch[name].dtype)]) for name in batch}
            losses.append(float(self._step({n: tf.constant(v, self.specs[n].dtype) for n, v in batch.items()})))
        return losses

    def snapshot(self) -> List[np.ndarray]:
        """Values of the tower weights and the optimiser state."""
        return [v.numpy() for v in self.variables + list(self.optimizer.variables)]

    def restore(self, values: List[np.ndarray]) -> None:
        """Puts back a `snapshot`."""
        for variable, value in zip(self.variables + list(self.optimizer.variables), values):
            variable.assign(value)
