"""The rating network's residual over its bias model: read back, shrunk, calibrated."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from core import features as F
from tests.trainer.tower_inputs import tiny_inputs, tiny_vocab
from trainer import bias_model, rating_residual, towers

ANCHOR = bias_model.Biases(3.5, np.array([0.5, -0.5, 0.0]), np.array([0.25, 0.0, -0.25, 0.0]))
USERS = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
ITEMS = np.array([0, 1, 2, 3, 0, 1, 2, 3, 1, 2, 3, 0])


def _trained_network(seed: int = 3) -> tf.keras.Model:
    """A residual network whose residual layer and bias tables moved off the anchor."""
    tf.keras.utils.set_random_seed(seed)
    network = towers.build_ranking_model(tiny_vocab(), 8, (8,), 1, biases=ANCHOR)
    rng = np.random.default_rng(seed)
    rating = network.get_layer(rating_residual.RATING_LAYER)
    rating.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in rating.get_weights()])
    for name in (rating_residual.USER_BIAS_LAYER, rating_residual.ITEM_BIAS_LAYER):
        layer = network.get_layer(name)
        layer.set_weights([w + rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])
    return network


def _predict(network):
    return network(tiny_inputs(USERS, ITEMS), training=False).numpy().astype(np.float64)


def test_residual_scale_by_hand():
    # residual (1, -1, 2), target residual (0.5, -0.5, 1): exactly half
    assert rating_residual.residual_scale([4, 2, 5], [3, 3, 3], [3.5, 2.5, 4]) == pytest.approx(0.5)
    # a residual pointing away from the labels is dropped, a larger one capped at 1
    assert rating_residual.residual_scale([4, 2], [3, 3], [2, 4]) == 0.0
    assert rating_residual.residual_scale([4, 2], [3, 3], [6, 0]) == 1.0
    assert rating_residual.residual_scale([3, 3], [3, 3], [1, 5]) == 0.0  # no residual at all
    with pytest.raises(ValueError, match="equal lengths"):
        rating_residual.residual_scale([1, 2], [1], [1, 2])


def test_network_biases_reads_the_tables_and_mean():
    network = towers.build_ranking_model(tiny_vocab(), 8, (8,), 1, biases=ANCHOR)
    read = rating_residual.network_biases(network)
    assert read.global_mean == pytest.approx(3.5)
    np.testing.assert_allclose(read.user_bias, ANCHOR.user_bias, atol=1e-7)
    np.testing.assert_allclose(read.item_bias, ANCHOR.item_bias, atol=1e-7)
    plain = towers.build_ranking_model(tiny_vocab(), 8, (8,), 1)
    assert rating_residual.network_biases(plain) is None
    with pytest.raises(ValueError, match="no residual"):
        rating_residual.shrink_towards(plain, ANCHOR, 0.5)


@pytest.mark.parametrize("scale", [0.0, 0.3, 1.0])
def test_shrink_towards_interpolates_between_anchor_and_network(scale):
    network = _trained_network()
    before = _predict(network)
    anchor = ANCHOR.predict(USERS, ITEMS)
    assert np.abs(before - anchor).max() > 0.1  # the network really moved off the anchor
    rating_residual.shrink_towards(network, ANCHOR, scale)
    np.testing.assert_allclose(_predict(network), anchor + scale * (before - anchor), atol=1e-5)


def test_calibrate_keeps_the_useful_part_of_the_residual():
    network = _trained_network()
    anchor = ANCHOR.predict(USERS, ITEMS)
    residual = _predict(network) - anchor
    labels = anchor + 0.4 * residual  # the ratings follow 40 % of the residual
    batch = {**tiny_inputs(USERS, ITEMS), F.RATING_XF: labels.astype(np.float32)}
    data = tf.data.Dataset.from_tensor_slices(batch).batch(5)
    scale = rating_residual.calibrate(network, data, ANCHOR)
    assert scale == pytest.approx(0.4, abs=1e-4)
    np.testing.assert_allclose(_predict(network), labels, atol=1e-4)


def test_calibrated_network_is_never_worse_than_the_bias_model_on_its_ratings():
    network = _trained_network(seed=5)
    rng = np.random.default_rng(0)
    labels = ANCHOR.predict(USERS, ITEMS) + rng.normal(0, 1, len(USERS))  # noise: the residual is useless
    data = tf.data.Dataset.from_tensor_slices(
        {**tiny_inputs(USERS, ITEMS), F.RATING_XF: labels.astype(np.float32)}).batch(4)
    unshrunk = bias_model.rmse(_predict(network), labels)
    rating_residual.calibrate(network, data, ANCHOR)
    calibrated = bias_model.rmse(_predict(network), labels)
    assert calibrated <= bias_model.rmse(ANCHOR.predict(USERS, ITEMS), labels) + 1e-6
    assert calibrated <= unshrunk + 1e-6


def test_calibrate_towards_a_target_network():
    student, teacher = _trained_network(seed=1), _trained_network(seed=2)
    rating_residual.shrink_towards(teacher, ANCHOR, 0.0)  # a teacher that kept no residual
    data = tf.data.Dataset.from_tensor_slices(
        {**tiny_inputs(USERS, ITEMS), F.RATING_XF: np.zeros(len(USERS), np.float32)}).batch(4)
    scale = rating_residual.calibrate(student, data, ANCHOR, target=teacher)
    assert scale == 0.0
    np.testing.assert_allclose(_predict(student), ANCHOR.predict(USERS, ITEMS), atol=1e-5)
