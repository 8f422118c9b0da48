"""Quantization-aware training leaves plain networks whose Dense kernels lie on an int8 grid."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from compression import qat
from compression.config import CompressionConfig


def _dense(network):
    return [layer for layer in network.layers if type(layer) is tf.keras.layers.Dense]


def test_qat_networks_are_plain_and_on_the_int8_grid(teacher, training_data, trainer_cfg, tmp_path):
    result = qat.qat_networks(teacher, training_data, trainer_cfg, CompressionConfig(finetune_epochs=1))
    for trained, original in zip((result.query_tower, result.candidate_tower, result.ranking_model),
                                 (teacher.query_tower, teacher.candidate_tower, teacher.ranking_model)):
        assert [type(layer) for layer in trained.layers] == [type(layer) for layer in original.layers]
        assert _dense(trained)
        for layer, before in zip(_dense(trained), _dense(original)):
            kernel = layer.kernel.numpy()
            assert len(np.unique(kernel)) <= 256, f"{layer.name} is not on an 8-bit grid"
            if kernel.size > 512:  # the float kernel had more distinct values than 8 bits hold
                assert len(np.unique(before.kernel.numpy())) > 256
            steps = np.diff(np.unique(kernel))
            np.testing.assert_allclose(steps / steps.min(), np.round(steps / steps.min()), atol=1e-3)
    # Plain Keras: saves and loads with no TF-MOT scope.
    path = str(tmp_path / "query")
    result.query_tower.save(path)
    reloaded = tf.keras.models.load_model(path, compile=False)
    np.testing.assert_array_equal(reloaded.get_layer("query_output").kernel.numpy(),
                                  result.query_tower.get_layer("query_output").kernel.numpy())
