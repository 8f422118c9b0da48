"""Early stopping restores the best epoch; the validation Recall@K; the bias model."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from trainer import bias_model
from trainer.early_stopping import BestEpoch, recall_at_k


class _Weights(tf.keras.callbacks.Callback):
    """Records the model's weights after every epoch (after the early stopping saw it)."""

    def __init__(self) -> None:
        super().__init__()
        self.after = []

    def on_epoch_end(self, epoch, logs=None):
        self.after.append([w.copy() for w in self.model.get_weights()])


def _tiny_fit(curve, patience, mode="max", epochs=10):
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
    planted = iter(curve)
    stopper = BestEpoch("val_planted", mode, patience, compute=lambda m: next(planted))
    weights = _Weights()
    x = np.random.default_rng(0).normal(size=(32, 2)).astype(np.float32)
    history = model.fit(x, x.sum(axis=1), epochs=epochs, verbose=0, callbacks=[stopper, weights])
    return model, stopper, weights, history


def test_stops_after_patience_and_restores_the_best_epoch():
    model, stopper, weights, history = _tiny_fit([0.1, 0.5, 0.3, 0.2, 0.9, 1.0], patience=2)
    assert stopper.curve == [0.1, 0.5, 0.3, 0.2]  # two epochs without a gain after epoch 2
    assert stopper.best_epoch == 2 and stopper.best == 0.5
    assert history.history["val_planted"] == [0.1, 0.5, 0.3, 0.2]  # the metric reaches the logs
    for restored, kept in zip(model.get_weights(), weights.after[1]):
        np.testing.assert_array_equal(restored, kept)
    assert not np.array_equal(model.get_weights()[0], weights.after[-1][0])


def test_ceiling_reached_still_restores_the_best_epoch_and_min_mode():
    model, stopper, weights, _ = _tiny_fit([3.0, 1.0, 2.0, 2.5], patience=5, mode="min", epochs=4)
    assert stopper.best_epoch == 2 and len(stopper.curve) == 4
    np.testing.assert_array_equal(model.get_weights()[0], weights.after[1][0])


def test_epoch_zero_wins_when_no_epoch_beats_the_start():
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
    start = [w.copy() for w in model.get_weights()]
    stopper = BestEpoch("val_loss", "min", 1, evaluate_before=lambda m: 0.5)
    x = np.ones((8, 2), np.float32)
    model.fit(x, np.ones(8), epochs=3, verbose=0, validation_data=(x, np.full(8, 100.0)), callbacks=[stopper])
    assert stopper.best_epoch == 0 and stopper.initial == 0.5 and len(stopper.curve) == 1
    np.testing.assert_array_equal(model.get_weights()[0], start[0])


def test_monitor_missing_from_the_logs_is_named():
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(KeyError, match="val_rmse"):
        model.fit(np.ones((4, 2)), np.ones(4), epochs=1, verbose=0, callbacks=[BestEpoch("val_rmse", "min", 1)])


def test_recall_at_k_hand_example():
    scores = np.array([[0.9, 0.8, 0.7, 0.1],
                       [0.1, 0.2, 0.3, 0.4],
                       [0.5, 0.5, 0.5, 0.5]], np.float32)
    excluded = (np.array([0, 1, 1, 1]), np.array([0]))  # user 0 has seen item 0
    relevant = (np.array([0, 2, 3, 3]), np.array([2, 3, 0]))  # user 2 has nothing held out
    per_user = recall_at_k(scores, excluded, relevant, k=2)
    # user 0: top-2 of items 1..3 = {1, 2}; relevant {2, 3}: 1 hit / min(2, 2)
    # user 1: top-2 = {3, 2}; relevant {0}: 0 hits / 1
    np.testing.assert_allclose(per_user[:2], [0.5, 0.0])
    assert np.isnan(per_user[2])


def test_bias_model_hand_computed():
    # ratings: (u0, i0) 5, (u0, i1) 3, (u1, i0) 4; mu = 4, one pass, l2_user = l2_item = 1
    users, items, ratings = np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([5.0, 3.0, 4.0])
    biases = bias_model.fit_biases(users, items, ratings, 2, 3, l2_user=1.0, l2_item=1.0, n_iters=1)
    # items first: b_i0 = (1 + 0) / (1 + 2) = 1/3, b_i1 = -1 / (1 + 1) = -1/2, b_i2 = 0
    np.testing.assert_allclose(biases.item_bias, [1 / 3, -1 / 2, 0.0])
    # users: b_u0 = ((1 - 1/3) + (-1 + 1/2)) / (1 + 2) = 1/18, b_u1 = (0 - 1/3) / (1 + 1) = -1/6
    np.testing.assert_allclose(biases.user_bias, [1 / 18, -1 / 6])
    predictions = biases.predict(users, items)
    np.testing.assert_allclose(predictions, [4 + 1 / 18 + 1 / 3, 4 + 1 / 18 - 1 / 2, 4 - 1 / 6 + 1 / 3])
    expected = np.sqrt(np.mean((predictions - ratings) ** 2))
    assert bias_model.rmse(predictions, ratings) == pytest.approx(expected)
    assert bias_model.rmse(np.full(3, 4.0), ratings) == pytest.approx(np.sqrt(2 / 3))

