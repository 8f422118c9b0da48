"""Small Keras layers the towers need that Keras does not have."""

from __future__ import annotations

import tensorflow as tf


@tf.keras.utils.register_keras_serializable(package="recsys")
class MaskedMean(tf.keras.layers.Layer):
    """Mean over the unmasked steps of [B, T, D] embeddings; all-masked rows give zeros.

    Keras' GlobalAveragePooling1D divides by the number of unmasked steps and returns NaN for a
    row with none (an empty history); this layer divides by max(count, 1) instead.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs: tf.Tensor, mask=None) -> tf.Tensor:
        if mask is None:
            return tf.reduce_mean(inputs, axis=1)
        weights = tf.cast(mask, inputs.dtype)[:, :, None]
        total = tf.reduce_sum(inputs * weights, axis=1)
        count = tf.reduce_sum(weights, axis=1)
        return total / tf.maximum(count, tf.ones_like(count))

    def compute_mask(self, inputs, mask=None):
        return None
