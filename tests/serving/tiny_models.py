"""Tiny SavedModels that honour the serving contract, built for the server tests.

``serving_default`` maps a user id to three fixed items; its scores are ``version + 0.3, 0.2,
0.1`` so a test can tell which version answered.  ``slow`` sleeps ``max(delay_us)`` (stock
SleepDataset op) before answering the same, for scheduling tests; ``rank`` scores given
candidates (``len(item) * boost + version``) to exercise a generic 2-D string input and a float
input.  Unknown users get the popular-items fallback, never an error.
"""

from __future__ import annotations

import os
import shutil
from typing import Dict, List

from core.features import SERVING_OUTPUT_ITEMS, SERVING_OUTPUT_SCORES, SERVING_SIGNATURE

USER_ITEMS: Dict[str, List[str]] = {
    "u1": ["i11", "i12", "i13"],
    "u2": ["i21", "i22", "i23"],
    "u3": ["i31", "i32", "i33"],
}
POPULAR = ["pop1", "pop2", "pop3"]
OFFSETS = [0.3, 0.2, 0.1]


def expected(user: str, version: int):
    """The (items, scores) the tiny model of ``version`` answers for ``user``."""
    return USER_ITEMS.get(user, POPULAR), [version + o for o in OFFSETS]


def build_tiny_model(path: str, version: int, contract: bool = True, payload_mb: int = 0,
                     warmup: bool = False) -> str:
    """Save a tiny recommender at ``path`` (written to a temp dir, renamed last).

    Args:
        path: the version directory to create.
        version: baked into the scores.
        contract: False builds a model whose default signature takes ``query`` instead of the
            user id (a wrong signature).
        payload_mb: size of an extra float variable (added to the scores as 0), so that a
            version weighs what a real one does in memory tests.
        warmup: also write TF Serving warmup requests into ``assets.extra``.

    Returns:
        ``path``.
    """
    import tensorflow as tf
    from tensorflow.python.data.experimental.ops import testing as data_testing

    users = list(USER_ITEMS)
    items = tf.constant([USER_ITEMS[u] for u in users] + [POPULAR])
    scores = tf.constant([[version + o for o in OFFSETS]] * (len(users) + 1), tf.float32)

    class Tiny(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(users),
                                                    tf.range(len(users), dtype=tf.int64)),
                default_value=len(users))
            self.version = tf.constant(float(version))
            self.payload = tf.Variable(tf.zeros([max(1, payload_mb * 262144)], tf.float32))

        def _recommend(self, user_id):
            index = self.table.lookup(user_id)
            return {SERVING_OUTPUT_ITEMS: tf.gather(items, index),
                    SERVING_OUTPUT_SCORES: tf.gather(scores, index) + self.payload[0]}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, user_id):
            return self._recommend(user_id)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve_wrong(self, query):
            return self._recommend(query)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string),
                                      tf.TensorSpec([None], tf.int64)])
        def slow(self, user_id, delay_us):
            delay = tf.reduce_max(tf.concat([delay_us, tf.zeros([1], tf.int64)], 0))
            dataset = tf.data.Dataset.range(1).apply(data_testing.sleep(delay // 2))
            slept = dataset.reduce(tf.constant(0, tf.int64), lambda a, b: a + b)
            out = self._recommend(user_id)
            out[SERVING_OUTPUT_SCORES] += tf.cast(slept, tf.float32)
            return out

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string),
                                      tf.TensorSpec([None, None], tf.string),
                                      tf.TensorSpec([None], tf.float32)])
        def rank(self, user_id, item_ids, boost):
            del user_id
            length = tf.cast(tf.strings.length(item_ids), tf.float32)
            return {SERVING_OUTPUT_SCORES: length * boost[:, None] + self.version}

    module = Tiny()
    default = module.serve if contract else module.serve_wrong
    signatures = {
        SERVING_SIGNATURE: default.get_concrete_function(),
        "slow": module.slow.get_concrete_function(),
        "rank": module.rank.get_concrete_function(),
    }
    temp = os.path.join(os.path.dirname(path), f".tmp-{os.path.basename(path)}")
    shutil.rmtree(temp, ignore_errors=True)
    tf.saved_model.save(module, temp, signatures=signatures)
    if warmup:
        from trainer.warmup_requests import write_warmup_requests

        write_warmup_requests(temp, "rec", users)
    os.replace(temp, path)
    return path


def install(source: str, base_path: str, version: int) -> str:
    """Copy a built model into ``base_path/<version>`` atomically (copy, then rename)."""
    os.makedirs(base_path, exist_ok=True)
    target = os.path.join(base_path, str(version))
    temp = os.path.join(base_path, f".incoming-{version}")
    shutil.rmtree(temp, ignore_errors=True)
    shutil.copytree(source, temp)
    os.replace(temp, target)
    return target
