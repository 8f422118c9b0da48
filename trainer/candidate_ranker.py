"""The learned ranker over merged candidates: a bag of small DCN-v2 networks, listwise softmax.

Training data are candidate lists (`trainer.candidate_features`: [L, W, F] features, a validity
mask) and labels (True where the candidate is one of the user's held-out label-slice items).
Lists without a positive are dropped. Each list is one softmax over its valid candidates; the
target spreads evenly over its positives (cross-entropy). The lists are cut into `bags` folds of
users: network k trains on the other folds and keeps the epoch with the best Recall@20 of fold
k (early stopping). The served ranker standardises the features with the training candidates'
mean and standard deviation and averages the networks' logits.

Saved as `ranker.json` (architecture, sources, training report) + TensorFlow checkpoint weights
in a directory of its own, so the serving model and the online learner rebuild the same network.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from trainer.candidate_features import feature_names
from trainer.candidate_ranker_config import CandidateRankerConfig

keras = tf.keras
SPEC_FILE = "ranker.json"
WEIGHTS_PREFIX = "weights"
RECALL_CUTOFF = 20


@dataclasses.dataclass(frozen=True)
class TrainedRanker:
    """A ranker and what it was trained on.

    Attributes:
      model: Keras model, features [B, W, F] -> logits [B, W].
      sources: the candidate sources, in feature order.
      per_source: candidates each source lists.
      half_life: recent popularity's half-life the ranker was trained with.
      report: training report (lists, epochs and validation recall per bag, feature names).
      ease_items / ease_l2: the EASE source's block size and regularisation (when a source).
      feature_mean / feature_std: the standardisation the model applies first (saved with it: the
        Normalization layer holds them as constants, not as checkpointed variables).
      genre_affinity: whether the features end with the genre affinity pair
        (`trainer.candidate_features.feature_names`).
      cold_start_half_life: what unknown users are served: recent popularity at this half-life,
        or all-time popularity when None (`trainer.ranker_training` chooses it on the label slice).
    """

    model: keras.Model
    sources: Tuple[str, ...]
    per_source: int
    half_life: float
    report: Dict
    ease_items: int = 0
    ease_l2: float = 0.0
    feature_mean: Tuple[float, ...] = ()
    feature_std: Tuple[float, ...] = ()
    cold_start_half_life: Optional[float] = None
    genre_affinity: bool = False


def _network(n_features: int, layers: Sequence[int], name: str) -> keras.Model:
    inputs = keras.Input(shape=(None, n_features), name=f"{name}_features")
    x = tfrs.layers.dcn.Cross(name=f"{name}_cross")(inputs, inputs)
    for i, units in enumerate(layers):
        x = keras.layers.Dense(units, activation="relu", name=f"{name}_dense_{i}")(x)
    logits = keras.layers.Dense(1, name=f"{name}_logit")(x)
    return keras.Model(inputs, keras.layers.Reshape((-1,), name=f"{name}_logits")(logits), name=name)


def build_ranker(n_features: int, layers: Sequence[int], bags: int,
                 mean: Optional[np.ndarray] = None, std: Optional[np.ndarray] = None) -> Tuple[keras.Model, List[keras.Model]]:
    """The served ranker (standardisation, then the mean logit of `bags` networks) and its bags."""
    inputs = keras.Input(shape=(None, n_features), name="candidate_features")
    mean = np.zeros(n_features, np.float32) if mean is None else np.asarray(mean, np.float32)
    std = np.ones(n_features, np.float32) if std is None else np.asarray(std, np.float32)
    scaled = keras.layers.Normalization(axis=-1, mean=mean, variance=np.square(std), name="standardise")(inputs)
    nets = [_network(n_features, layers, f"bag_{k}") for k in range(bags)]
    outputs = [net(scaled) for net in nets]
    logits = outputs[0] if bags == 1 else keras.layers.Average(name="mean_logit")(outputs)
    return keras.Model(inputs, logits, name="candidate_ranker"), nets


def _recall(logits: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> float:
    scores = np.where(valid, logits, -np.inf)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :RECALL_CUTOFF]
    hits = np.take_along_axis(labels & valid, top, axis=1).sum(axis=1)
    return float(np.mean(hits / np.minimum(RECALL_CUTOFF, labels.sum(axis=1))))


def _fit_bag(net: keras.Model, x: np.ndarray, target: np.ndarray, valid: np.ndarray, labels: np.ndarray,
             train_lists: np.ndarray, check_lists: np.ndarray, cfg: CandidateRankerConfig, seed: int
             ) -> Tuple[int, List[float]]:
    optimizer = keras.optimizers.Adam(cfg.learning_rate)

    @tf.function(reduce_retracing=True)
    def step(xb, yb, mb):
        with tf.GradientTape() as tape:
            logits = tf.where(mb, net(xb, training=True), -1e9)
            loss = -tf.reduce_mean(tf.reduce_sum(yb * tf.nn.log_softmax(logits, axis=1), axis=1))
        optimizer.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))
        return loss

    rng = np.random.default_rng(seed)
    best, best_epoch, best_weights, curve = -1.0, 0, net.get_weights(), []
    for epoch in range(1, cfg.max_epochs + 1):
        order = rng.permutation(train_lists)
        for start in range(0, len(order), cfg.users_per_batch):
            batch = order[start:start + cfg.users_per_batch]
            step(tf.constant(x[batch]), tf.constant(target[batch]), tf.constant(valid[batch]))
        value = _recall(net(x[check_lists], training=False).numpy(), labels[check_lists], valid[check_lists])
        curve.append(round(value, 4))
        if value > best:
            best, best_epoch, best_weights = value, epoch, net.get_weights()
        elif epoch - best_epoch >= cfg.patience:
            break
    net.set_weights(best_weights)
    return best_epoch, curve


def train_ranker(features: np.ndarray, valid: np.ndarray, labels: np.ndarray, sources: Sequence[str],
                 half_life: float, cfg: CandidateRankerConfig,
                 log: Callable[[str], None] = logging.info, genre_affinity: bool = False) -> TrainedRanker:
    """Fits the ranker on candidate lists.

    Args:
      features: float32 [L, W, F] candidate features (`trainer.candidate_features`).
      valid: bool [L, W], real candidates.
      labels: bool [L, W], candidates among the user's label-slice items.
      sources: the sources the features come from, in order.
      half_life: recent popularity's half-life used for the features.
      cfg: the ranker's settings.
      log: progress lines.
      genre_affinity: the features end with the genre affinity pair.

    Raises:
      ValueError: no list holds a positive, or fewer lists than bags.
    """
    labels = labels & valid
    keep = labels.sum(axis=1) > 0
    x, valid, labels = features[keep].astype(np.float32), valid[keep], labels[keep]
    if len(x) < max(2, cfg.bags):
        raise ValueError(f"only {len(x)} users have a label-slice item among their candidates; the ranker needs "
                         f"at least {max(2, cfg.bags)} (candidate_ranker.bags)")
    mean = x[valid].mean(axis=0)
    std = x[valid].std(axis=0) + 1e-6
    scaled = np.where(valid[:, :, None], (x - mean) / std, 0.0).astype(np.float32)
    target = (labels / labels.sum(axis=1, keepdims=True)).astype(np.float32)
    tf.keras.utils.set_random_seed(cfg.seed)
    model, nets = build_ranker(x.shape[-1], cfg.layers, cfg.bags, mean, std)
    lists = np.random.default_rng(cfg.seed).permutation(len(x))
    epochs, best = [], []
    for k, net in enumerate(nets):
        check_lists = lists[k::cfg.bags] if cfg.bags > 1 else lists[::5]
        train_lists = np.setdiff1d(lists, check_lists)
        epoch, curve = _fit_bag(net, scaled, target, valid, labels, train_lists, check_lists, cfg, cfg.seed + k)
        epochs.append(epoch)
        best.append(max(curve))
        log(f"ranker bag {k + 1}/{cfg.bags}: best epoch {epoch}, fold Recall@{RECALL_CUTOFF} {max(curve):.4f}")
    report = {"lists": int(len(x)), "lists_without_positive": int((~keep).sum()), "width": int(x.shape[1]),
              "features": list(feature_names(sources, genre_affinity)), "bag_epochs": epochs, "bag_recall_at_20": best,
              "half_life": float(half_life)}
    return TrainedRanker(model, tuple(sources), cfg.per_source, float(half_life), report,
                         feature_mean=tuple(float(v) for v in mean), feature_std=tuple(float(v) for v in std),
                         genre_affinity=genre_affinity)


def save_ranker(ranker: TrainedRanker, directory: str, layers: Sequence[int], bags: int) -> None:
    """Writes the ranker to `directory` (`ranker.json` + checkpoint weights)."""
    tf.io.gfile.makedirs(directory)
    spec = {"sources": list(ranker.sources), "per_source": ranker.per_source, "half_life": ranker.half_life,
            "layers": list(layers), "bags": bags,
            "n_features": len(feature_names(ranker.sources, ranker.genre_affinity)),
            "genre_affinity": ranker.genre_affinity,
            "report": ranker.report, "ease_items": ranker.ease_items, "ease_l2": ranker.ease_l2,
            "feature_mean": list(ranker.feature_mean), "feature_std": list(ranker.feature_std),
            "cold_start_half_life": ranker.cold_start_half_life}
    with tf.io.gfile.GFile(os.path.join(directory, SPEC_FILE), "w") as handle:
        handle.write(json.dumps(spec, indent=2, sort_keys=True))
    ranker.model.save_weights(os.path.join(directory, WEIGHTS_PREFIX))


def load_ranker(directory: str) -> TrainedRanker:
    """The ranker `save_ranker` wrote to `directory`."""
    with tf.io.gfile.GFile(os.path.join(directory, SPEC_FILE)) as handle:
        spec = json.loads(handle.read())
    mean, std = spec.get("feature_mean") or None, spec.get("feature_std") or None
    model, _ = build_ranker(spec["n_features"], spec["layers"], spec["bags"], mean, std)
    model.load_weights(os.path.join(directory, WEIGHTS_PREFIX)).expect_partial()
    return TrainedRanker(model, tuple(spec["sources"]), int(spec["per_source"]), float(spec["half_life"]),
                         spec["report"], int(spec.get("ease_items", 0)), float(spec.get("ease_l2", 0.0)),
                         tuple(mean or ()), tuple(std or ()), _optional_float(spec.get("cold_start_half_life")),
                         bool(spec.get("genre_affinity", False)))


def _optional_float(value) -> Optional[float]:
    return None if value is None else float(value)
