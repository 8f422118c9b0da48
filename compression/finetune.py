"""Training data of the compression stage and the fine-tuning of modified networks.

TF-MOT wraps layers of the functional towers; the losses still come from the project's
`tfrs.Model` wrappers (`trainer.model.RetrievalModel` / `RankingModel`), which accept any
functional networks, so a pruned or quantization-aware tower is fine-tuned with exactly the
loss it was trained with.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from core import features as F
from trainer import distribution, export, history, inputs
from trainer import model as models
from trainer.config import TrainerConfig
from trainer.towers import Vocabularies


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """Batches of transformed training examples and what the losses need.

    Attributes:
      train: batches of transformed features with the user histories the query tower reads
        (shuffled each epoch).
      vocab: embedding input sizes.
      item_probabilities: per-item in-batch sampling probability (logQ correction), or None.
      steps_per_epoch: batches in one pass over `train`.
    """

    train: tf.data.Dataset
    vocab: Vocabularies
    item_probabilities: Optional[np.ndarray]
    steps_per_epoch: int


def load_training_data(transform_dir: str, patterns: Sequence[str], cfg: TrainerConfig,
                       seed: int) -> TrainingData:
    """The training batches the Trainer fits on (`trainer.entry.run_fn`), user histories included.

    Args:
      transform_dir: the Transform graph.
      patterns: transformed training examples.
      cfg: the Trainer's batch size.
      seed: shuffle seed.

    Raises:
      ValueError: no training example.
    """
    tft_output = tft.TFTransformOutput(transform_dir)
    vocab = inputs.vocabularies(tft_output)
    arrays = inputs.load_arrays(patterns, tft_output)
    if not len(arrays.get(F.ITEM_ID_XF, ())):
        raise ValueError(f"no transformed training examples in {list(patterns)}: nothing to fine-tune on")
    arrays[F.USER_HISTORY] = history.example_histories(
        arrays[F.USER_ID_XF], arrays[F.ITEM_ID_XF], arrays[F.TIMESTAMP_XF]
    )
    train = inputs.array_dataset(arrays, cfg.batch_size, shuffle=True, seed=seed)
    steps = -(-len(arrays[F.ITEM_ID_XF]) // cfg.batch_size)
    return TrainingData(train, vocab, inputs.item_probabilities(train, vocab.items), steps)


def copy_network(network: tf.keras.Model) -> tf.keras.Model:
    """An independent copy (fresh layers, same weights) of a functional network."""
    clone = tf.keras.models.clone_model(network)
    clone.set_weights(network.get_weights())
    return clone


def copy_networks(networks: export.Networks) -> export.Networks:
    """Independent copies of the three networks."""
    return export.Networks(*(copy_network(n) for n in
                             (networks.query_tower, networks.candidate_tower, networks.ranking_model)))


def retrieval_model(query: tf.keras.Model, candidate: tf.keras.Model, data: TrainingData,
                    cfg: TrainerConfig, learning_rate: float) -> models.RetrievalModel:
    """The project's retrieval model around two towers, compiled like the Trainer's."""
    model = models.RetrievalModel(
        query, candidate,
        item_probabilities=data.item_probabilities if cfg.logq_correction else None,
        temperature=cfg.temperature, remove_accidental_hits=cfg.remove_accidental_hits,
    )
    model.compile(optimizer=tf.keras.optimizers.Adagrad(learning_rate))
    return model


def ranking_model(network: tf.keras.Model, learning_rate: float) -> models.RankingModel:
    """The project's rating model around a ranking network, compiled like the Trainer's."""
    model = models.RankingModel(network)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate))
    return model


def finetune(networks: export.Networks, data: TrainingData, cfg: TrainerConfig, epochs: int,
             learning_rate_scale: float,
             callbacks: Sequence[tf.keras.callbacks.Callback] = ()) -> None:
    """Fine-tunes the three networks in place with the Trainer's losses.

    Args:
      networks: functional networks (possibly holding TF-MOT wrappers).
      data: training batches.
      cfg: the Trainer's hyperparameters (losses, learning rates).
      epochs: passes over the training data, for retrieval and for ranking each.
      learning_rate_scale: share of the Trainer's (batch-size scaled) learning rates used.
      callbacks: Keras callbacks of both fits (e.g. `UpdatePruningStep`).
    """
    retrieval = retrieval_model(networks.query_tower, networks.candidate_tower, data, cfg,
                                distribution.learning_rate(cfg.learning_rate, cfg) * learning_rate_scale)
    retrieval.fit(data.train, epochs=epochs, callbacks=list(callbacks), verbose=2)
    ranking = ranking_model(networks.ranking_model,
                            distribution.learning_rate(cfg.ranking_learning_rate, cfg) * learning_rate_scale)
    ranking.fit(data.train, epochs=epochs, callbacks=list(callbacks), verbose=2)
