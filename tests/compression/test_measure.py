"""Sizes, gzip sizes and parameter counts of exports, on files whose figures are known."""

from __future__ import annotations

import os

import numpy as np

from compression import measure


def test_disk_and_gzip_bytes(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"\0" * 1000)
    (tmp_path / "sub" / "b.bin").write_bytes(os.urandom(3000))
    assert measure.disk_bytes(str(tmp_path)) == 4000
    assert measure.disk_bytes(str(tmp_path / "a.bin")) == 1000
    size = measure.gzip_bytes(str(tmp_path))
    assert size == measure.gzip_bytes(str(tmp_path)), "gzip size must be deterministic"
    # Random bytes do not compress; 1000 zeros nearly vanish; tar headers add a little.
    assert 3000 < size < 3000 + 1000
    assert measure.gzip_bytes(str(tmp_path / "a.bin")) < 200


def test_parameter_stats_of_a_saved_model(tmp_path):
    import tensorflow as tf

    class Tiny(tf.Module):
        def __init__(self):
            super().__init__()
            self.dense = tf.Variable([[0.0, 1.0], [2.0, 0.0]])
            self.table = tf.Variable(np.array([1, 0, 3], np.int8))

        @tf.function(input_signature=[tf.TensorSpec([2], tf.float32)])
        def apply(self, x):
            return tf.linalg.matvec(self.dense, x) + tf.reduce_sum(tf.cast(self.table, tf.float32))

    path = str(tmp_path / "sm")
    module = Tiny()
    tf.saved_model.save(module, path, signatures=module.apply.get_concrete_function())
    stats = measure.parameter_stats(path)
    assert stats.parameters == 4 + 3
    assert stats.nonzeros == 2 + 2
    graph = os.path.getsize(os.path.join(path, "saved_model.pb"))
    assert stats.bytes_by_group == {"dense": 16, "table": 3, "graph (saved_model.pb)": graph}
    assert stats.dominant() == "graph (saved_model.pb)"


def test_median_latency_counts_each_call():
    calls = []
    ms = measure.median_latency_ms(lambda: calls.append(1), repeats=5, warmup=2)
    assert len(calls) == 7 and ms >= 0.0
