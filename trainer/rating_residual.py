"""The rating network's residual over its bias model: reading the biases back, and shrinking the
residual where held-out ratings say it does not help.

A ranking network built with a bias model (`towers.build_ranking_model(biases=...)`) predicts
``global_mean + user_bias + item_bias + residual``: the bias tables start at the fitted bias
model (`trainer.bias_model`) and train with the rest; the residual is the output of the network's
last Dense layer (`RATING_LAYER`), which is linear. So ``anchor + s * (network - anchor)``, for
the fitted bias model as anchor, is the same architecture with that layer's weights times ``s``
and each bias table moved to ``anchor + s * (trained - anchor)`` (`shrink_towards`): the shrunk
network saves, loads, distils, quantizes and warm-starts like any other.

`calibrate` fits ``s`` by least squares on held-out ratings, clipped to [0, 1]
(`residual_scale`):

    s = <network - anchor, r - anchor> / <network - anchor, network - anchor>

so on those ratings the shrunk network's squared error is at most the bias model's (``s = 0``
is the bias model itself) and at most the unshrunk network's (``s = 1``). The Trainer fits it on
the label slice (`trainer.entry`); a distilled student fits it towards its teacher's ratings.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from core import features as F
from trainer.bias_model import Biases
from trainer.towers import GLOBAL_MEAN_LAYER, RATING_LAYER, bias_layer_name, bias_table

USER_BIAS_LAYER = bias_layer_name(F.USER_ID_XF)
ITEM_BIAS_LAYER = bias_layer_name(F.ITEM_ID_XF)


def _layer(network: tf.keras.Model, name: str) -> Optional[tf.keras.layers.Layer]:
    try:
        return network.get_layer(name)
    except ValueError:
        return None


def has_biases(network: tf.keras.Model) -> bool:
    """Whether `network` predicts a residual over a bias model (built with `biases`)."""
    return all(_layer(network, name) is not None
               for name in (GLOBAL_MEAN_LAYER, USER_BIAS_LAYER, ITEM_BIAS_LAYER, RATING_LAYER))


def network_biases(network: tf.keras.Model) -> Optional[Biases]:
    """The bias model inside `network` (its current bias tables and global mean), or None
    when it has none."""
    if not has_biases(network):
        return None
    user = network.get_layer(USER_BIAS_LAYER).get_weights()[0][:, 0].astype(np.float64)
    item = network.get_layer(ITEM_BIAS_LAYER).get_weights()[0][:, 0].astype(np.float64)
    return Biases(float(network.get_layer(GLOBAL_MEAN_LAYER).offset), user, item)


def residual_scale(predictions: np.ndarray, bias_predictions: np.ndarray, labels: np.ndarray) -> float:
    """The least-squares scale in [0, 1] of the residual ``predictions - bias_predictions``
    against ``labels - bias_predictions`` (module docstring); 0 when the residual is all zero.

    Raises:
      ValueError: the arrays differ in length.
    """
    predictions, bias_predictions, labels = (np.asarray(a, np.float64)
                                             for a in (predictions, bias_predictions, labels))
    if not len(predictions) == len(bias_predictions) == len(labels):
        raise ValueError(f"need equal lengths, got {len(predictions)}, {len(bias_predictions)}, {len(labels)}")
    residual = predictions - bias_predictions
    energy = float(np.dot(residual, residual))
    if energy <= 0.0:
        return 0.0
    return float(np.clip(np.dot(residual, labels - bias_predictions) / energy, 0.0, 1.0))


def shrink_towards(network: tf.keras.Model, biases: Biases, scale: float) -> None:
    """Sets `network` in place to ``biases + scale * (network - biases)``: its residual layer is
    multiplied by `scale` and each bias table moved to ``anchor + scale * (trained - anchor)``
    (the tables are trainable, so training moves them off the fitted bias model). The network's
    global mean must be `biases.global_mean`.

    Raises:
      ValueError: `network` has no bias model, its global mean differs, or `scale` is negative.
    """
    own = network_biases(network)
    if own is None:
        raise ValueError(f"network {network.name} predicts no residual over a bias model")
    if not np.isclose(own.global_mean, biases.global_mean, rtol=0, atol=1e-5):
        raise ValueError(f"network {network.name} adds mean {own.global_mean}, the anchor {biases.global_mean}")
    if scale < 0:
        raise ValueError(f"residual scale must be >= 0, got {scale}")
    layer = network.get_layer(RATING_LAYER)
    layer.set_weights([weight * np.float32(scale) for weight in layer.get_weights()])
    for name, values in ((USER_BIAS_LAYER, biases.user_bias), (ITEM_BIAS_LAYER, biases.item_bias)):
        table_layer = network.get_layer(name)
        trained = table_layer.get_weights()[0]
        anchor = bias_table(values, trained.shape[0])
        table_layer.set_weights([anchor + np.float32(scale) * (trained - anchor)])


def _predictions(network: tf.keras.Model, data: tf.data.Dataset, biases: Biases,
                 target: Optional[tf.keras.Model], max_batches: Optional[int]):
    """(network predictions, bias predictions, targets) over `data`: the targets are the labels,
    or `target`'s predictions when given."""
    model, anchor, targets = [], [], []
    for index, batch in enumerate(data):
        if max_batches is not None and index >= max_batches:
            break
        users, items = batch[F.USER_ID_XF].numpy(), batch[F.ITEM_ID_XF].numpy()
        model.append(network({n: batch[n] for n in network.input_names}, training=False).numpy())
        anchor.append(biases.predict(users, items))
        targets.append(batch[F.RATING_XF].numpy() if target is None else
                       target({n: batch[n] for n in target.input_names}, training=False).numpy())
    if not targets:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    return tuple(np.concatenate(a).astype(np.float64) for a in (model, anchor, targets))


def calibrate(network: tf.keras.Model, data: tf.data.Dataset, biases: Biases,
              target: Optional[tf.keras.Model] = None, max_batches: Optional[int] = None) -> Optional[float]:
    """Fits the residual scale of `network` over the anchor `biases` on `data` and applies it
    (`shrink_towards`).

    Args:
      network: a ranking network with a bias model whose global mean is `biases.global_mean`.
      data: batches with the user and item ids, the rating and the network's inputs: held-out
        ratings (or, with `target`, any batches).
      biases: the fitted bias model the residual is measured against.
      target: fit towards this network's predictions instead of the ratings (a student towards
        its teacher).
      max_batches: read at most this many batches.

    Returns:
      The scale applied, or None when `network` has no bias model or `data` is empty (nothing
      changed).
    """
    if not has_biases(network):
        return None
    predictions, anchor, targets = _predictions(network, data, biases, target, max_batches)
    if not len(targets):
        return None
    scale = residual_scale(predictions, anchor, targets)
    shrink_towards(network, biases, scale)
    return scale
