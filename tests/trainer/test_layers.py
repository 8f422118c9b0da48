"""MaskedMean by hand."""

import numpy as np


def test_masked_mean_ignores_padding_and_gives_zero_for_empty_rows():
    import tensorflow as tf

    from trainer.layers import MaskedMean

    embedding = tf.keras.layers.Embedding(4, 2, mask_zero=True, embeddings_initializer="zeros")
    embedding.build((None,))
    embedding.set_weights([np.array([[9.0, 9.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])])
    ids = tf.constant([[1, 2, 0], [3, 0, 0], [0, 0, 0]])
    out = MaskedMean()(embedding(ids)).numpy()
    np.testing.assert_allclose(out, [[2.0, 3.0], [5.0, 6.0], [0.0, 0.0]])
