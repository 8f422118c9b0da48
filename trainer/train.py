"""Training loops of the retrieval and ranking models (no I/O beyond the datasets given)."""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from trainer import distribution, export, towers
from trainer import model as models
from trainer.bias_model import Biases
from trainer.config import TrainerConfig
from trainer.towers import Vocabularies


@dataclasses.dataclass(frozen=True)
class TrainedModels:
    """The functional networks that the serving model and the compressor use.

    In multitask mode (`TrainerConfig.multitask`) `ranking_model` is built on the two towers and
    both histories are the one multitask fit's (`loss`, `retrieval_loss`, `rating_loss`, ...).
    """

    query_tower: tf.keras.Model
    candidate_tower: tf.keras.Model
    ranking_model: tf.keras.Model
    retrieval_history: dict
    ranking_history: dict


def retrieval_optimizer(cfg: TrainerConfig) -> tf.keras.optimizers.Optimizer:
    """The two-tower fit's optimizer (`cfg.optimizer`) at the (scaled) `cfg.learning_rate`."""
    kind = tf.keras.optimizers.Adam if cfg.optimizer == "adam" else tf.keras.optimizers.Adagrad
    return kind(distribution.learning_rate(cfg.learning_rate, cfg))


def build_towers(vocab: Vocabularies, cfg: TrainerConfig) -> Tuple[tf.keras.Model, tf.keras.Model]:
    """The query and candidate towers of `cfg` (user-id embedding, embedding L2)."""
    query = towers.build_query_tower(vocab, cfg.embedding_dim, cfg.tower_layers,
                                     user_id_embedding=cfg.user_id_embedding, embedding_l2=cfg.embedding_l2)
    candidate = towers.build_candidate_tower(vocab, cfg.embedding_dim, cfg.tower_layers, embedding_l2=cfg.embedding_l2)
    return query, candidate


def build_retrieval(
    vocab: Vocabularies, cfg: TrainerConfig, item_probabilities: Optional[np.ndarray]
) -> models.RetrievalModel:
    """A compiled two-tower retrieval model (build it inside the strategy's scope)."""
    query, candidate = build_towers(vocab, cfg)
    model = models.RetrievalModel(
        query,
        candidate,
        item_probabilities=item_probabilities if cfg.logq_correction else None,
        temperature=cfg.temperature,
        remove_accidental_hits=cfg.remove_accidental_hits,
    )
    model.compile(optimizer=retrieval_optimizer(cfg), **distribution.compile_options(cfg))
    return model


def build_ranking(vocab: Vocabularies, cfg: TrainerConfig, biases: Optional[Biases] = None) -> models.RankingModel:
    """A compiled DCN-v2 rating model (build it inside the strategy's scope); with `biases` it
    predicts the residual over that bias model."""
    network = towers.build_ranking_model(
        vocab, cfg.embedding_dim, cfg.ranking_layers, cfg.ranking_cross_layers, cfg.ranking_low_rank,
        cfg.ranking_embedding_l2, biases=biases,
    )
    model = models.RankingModel(network)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(distribution.learning_rate(cfg.ranking_learning_rate, cfg)),
        **distribution.compile_options(cfg),
    )
    return model


def build_multitask(
    vocab: Vocabularies, cfg: TrainerConfig, item_probabilities: Optional[np.ndarray]
) -> models.MultitaskModel:
    """A compiled multitask model whose ranking network shares the towers (build it in scope)."""
    query, candidate = build_towers(vocab, cfg)
    network = towers.build_shared_ranking_model(
        query, candidate, cfg.ranking_layers, cfg.ranking_cross_layers, cfg.ranking_low_rank
    )
    model = models.MultitaskModel(
        query,
        candidate,
        network,
        rating_weight=cfg.multitask_rating_weight,
        retrieval_weight=cfg.multitask_retrieval_weight,
        item_probabilities=item_probabilities if cfg.logq_correction else None,
        temperature=cfg.temperature,
        remove_accidental_hits=cfg.remove_accidental_hits,
    )
    model.compile(optimizer=retrieval_optimizer(cfg), **distribution.compile_options(cfg))
    return model


def build_models(vocab: Vocabularies, cfg: TrainerConfig, item_probabilities: Optional[np.ndarray] = None,
                 biases: Optional[Biases] = None
                 ) -> Tuple[List[Tuple[str, models.RetrievalModel, int]], Tuple[tf.keras.Model, ...]]:
    """The compiled models of `cfg` (build them inside the strategy's scope).

    Returns:
      The fits, in order, as (stage, model, epochs): ('retrieval', ..., `cfg.epochs`) and
      ('ranking', ..., `cfg.ranking_epochs`), or ('multitask', ..., `cfg.epochs`) alone; and
      the networks (query tower, candidate tower, ranking network) in `export.NETWORKS` order.
    """
    if cfg.multitask:
        multitask = build_multitask(vocab, cfg, item_probabilities)
        return ([("multitask", multitask, cfg.epochs)],
                (multitask.query_tower, multitask.candidate_tower, multitask.network))
    retrieval = build_retrieval(vocab, cfg, item_probabilities)
    ranking = build_ranking(vocab, cfg, biases)
    return ([("retrieval", retrieval, cfg.epochs), ("ranking", ranking, cfg.ranking_epochs)],
            (retrieval.query_tower, retrieval.candidate_tower, ranking.network))


def train(
    train_data: tf.data.Dataset,
    eval_data: Optional[tf.data.Dataset],
    vocab: Vocabularies,
    cfg: TrainerConfig,
    item_probabilities: Optional[np.ndarray] = None,
    strategy: Optional[tf.distribute.Strategy] = None,
    callbacks: Optional[Callable[[str], List[tf.keras.callbacks.Callback]]] = None,
    steps_per_epoch: Optional[int] = None,
    initialize: Optional[Callable[[Dict[str, tf.keras.Model]], None]] = None,
    biases: Optional[Biases] = None,
) -> TrainedModels:
    """Fits the retrieval model, then the ranking model, and returns their networks.

    With `cfg.multitask` it fits one `MultitaskModel` instead (rating + retrieval, the ranking
    network built on the towers) for `cfg.epochs`; `cfg.ranking_epochs` is then unused.

    Args:
      train_data / eval_data: batches of transformed features (eval may be None).
      vocab: embedding input sizes.
      cfg: hyperparameters.
      item_probabilities: per-item sampling probability for logQ correction.
      strategy: tf.distribute strategy (default strategy when None).
      callbacks: makes the Keras callbacks (TensorBoard, progress) of one fit, given its name
        ('retrieval' or 'ranking'; 'multitask' in multitask mode).
      steps_per_epoch: limits each epoch (None: one pass over `train_data`).
      initialize: called once the networks are built, before any fit, with them by name
        (`trainer.export.NETWORKS`); a warm start sets their weights here.
      biases: a fitted bias model; the separate ranking network then predicts the residual over
        it (unused in multitask mode).
    """
    tf.keras.utils.set_random_seed(cfg.seed)
    strategy = strategy or tf.distribute.get_strategy()
    make_callbacks = callbacks or (lambda stage: [])
    policy = distribution.precision_policy(cfg.mixed_precision, strategy)
    with strategy.scope(), distribution.precision_scope(policy):
        fits, networks = build_models(vocab, cfg, item_probabilities, biases)
    if initialize is not None:
        initialize(dict(zip(export.NETWORKS, networks)))
    histories = [
        model.fit(train_data, validation_data=eval_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
                  callbacks=make_callbacks(stage), verbose=2).history
        for stage, model, epochs in fits
    ]
    return TrainedModels(*networks, retrieval_history=histories[0], ranking_history=histories[-1])


def final_losses(trained: TrainedModels) -> Tuple[float, float]:
    """Last training loss of the retrieval and the ranking fit (multitask: the one fit's, twice)."""
    return trained.retrieval_history["loss"][-1], trained.ranking_history["loss"][-1]
