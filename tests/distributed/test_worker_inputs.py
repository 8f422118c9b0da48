"""Each worker's input pipeline gets its share of every global batch, in both input modes.

Step s of P pipelines together holds exactly the examples of step s of one pipeline at the same
global batch and seed (`trainer.multi_worker`), and one pipeline's batches are those of the
single-process input (`inputs.array_dataset`, `streaming.train_dataset`).
"""

from __future__ import annotations

import numpy as np
import pytest

from core import features as F
from tests.trainer.conftest import transformed_tiny  # noqa: F401  (the session fixture)

GLOBAL_BATCH = 8


def _context(pipelines: int, index: int):
    import tensorflow as tf

    return tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=index,
                                      num_replicas_in_sync=pipelines)


def _batches(dataset, count: int):
    return [{name: value.numpy() for name, value in batch.items()} for batch in dataset.take(count)]


def _rows(batch):
    """The examples of a batch as a sorted list of tuples of every feature value."""
    names = sorted(batch)
    n = len(batch[names[0]])
    return sorted(tuple(np.ravel(batch[name][i]).tolist() for name in names) for i in range(n))


def _merged(shards, step: int):
    return sorted(row for shard in shards for row in _rows(shard[step]))


def _check_shards(make, single_batches, steps: int) -> None:
    """Pipelines 0 and 1 of `make(context)` split each of the first 2 epochs' steps of one pipeline,
    whose first epoch is `single_batches`."""
    one = _batches(make(_context(1, 0)), 2 * steps)
    for step, expected in enumerate(single_batches):
        for name in expected:
            np.testing.assert_array_equal(one[step][name], expected[name], err_msg=f"{name}, step {step}")
    shards = [_batches(make(_context(2, i)), 2 * steps) for i in range(2)]
    for step in range(2 * steps):  # two epochs: the second is a new order
        assert all(len(shard[step][F.ITEM_ID_XF]) == GLOBAL_BATCH // 2 for shard in shards)
        assert _merged(shards, step) == _rows(one[step]), f"step {step}"
    assert _rows(one[0]) != _rows(one[steps])  # the epochs' orders differ


def test_array_shards_split_each_global_batch_of_the_in_memory_input():
    from tests.distributed.replica_check import sample_features
    from trainer import inputs, multi_worker
    from trainer.towers import Vocabularies

    vocab = Vocabularies(users=20, items=6, genders=3, occupations=4, genres=7, title_tokens=11,
                         age_buckets=7, year_buckets=5)
    arrays = sample_features(37, vocab, seed=3)
    arrays[F.ITEM_ID_XF] = np.arange(37)  # every example distinct
    steps = multi_worker.steps_per_epoch(37, GLOBAL_BATCH)
    assert steps == 4  # the 5 examples past the last whole batch are left out of the epoch
    single = _batches(inputs.array_dataset(arrays, GLOBAL_BATCH, shuffle=True, seed=9), steps)
    _check_shards(lambda context: multi_worker.array_shard(arrays, GLOBAL_BATCH, 9, context), single, steps)


def test_stream_shards_split_each_global_batch_of_the_streamed_fit_part(transformed_tiny):  # noqa: F811
    import tensorflow_transform as tft

    from trainer import holdout_inputs, inputs, multi_worker, streaming
    from trainer.config import TrainerConfig

    tft_output = tft.TFTransformOutput(transformed_tiny.transform_dir)
    pattern = transformed_tiny.train_pattern
    cfg = TrainerConfig(batch_size=GLOBAL_BATCH, input_mode="stream", shuffle_buffer=32, seed=4)
    data = holdout_inputs.training_inputs(pattern, pattern, tft_output, inputs.vocabularies(tft_output), cfg)
    source = data.fit_source
    assert data.mode == "stream" and source.examples == data.counts["fit_part"] < data.counts["train"]
    steps = 3  # of the epoch's many, enough to compare
    single = _batches(streaming.train_dataset(pattern, tft_output, source.timeline, GLOBAL_BATCH, shuffle=True,
                                              seed=4, shuffle_buffer=32), steps)
    assert np.mean(single[0][F.USER_HISTORY][:, 0] > 0) > 0.5  # the histories are there
    for fitted, expected in zip(_batches(data.fit, steps), single):  # the single-process fit batches of run_fn
        np.testing.assert_array_equal(fitted[F.ITEM_ID_XF], expected[F.ITEM_ID_XF])

    def make(context):
        return multi_worker.sharded_batches(source, tft_output, cfg, context)

    epoch = multi_worker.steps_per_epoch(source.examples, GLOBAL_BATCH)
    one = _batches(make(_context(1, 0)), epoch + 1)
    shards = [_batches(make(_context(2, i)), steps) for i in range(2)]
    for step in range(steps):
        for name in single[step]:
            np.testing.assert_array_equal(one[step][name], single[step][name], err_msg=f"{name}, step {step}")
        assert _merged(shards, step) == _rows(one[step]), f"step {step}"
    assert len(one[-1][F.ITEM_ID_XF]) == GLOBAL_BATCH  # the next epoch starts with a whole batch too


def test_the_cluster_input_replaces_only_the_training_batches_on_a_cluster(transformed_tiny):  # noqa: F811
    import tensorflow as tf
    import tensorflow_transform as tft

    from trainer import holdout_inputs, inputs, multi_worker
    from trainer.config import TrainerConfig

    tft_output = tft.TFTransformOutput(transformed_tiny.transform_dir)
    pattern = transformed_tiny.train_pattern
    cfg = TrainerConfig(batch_size=GLOBAL_BATCH, input_mode="memory", seed=4)
    data = holdout_inputs.training_inputs(pattern, pattern, tft_output, inputs.vocabularies(tft_output), cfg)
    same, steps = multi_worker.trainer_inputs(data, tf.distribute.get_strategy(), tft_output, cfg)
    assert same is data and (steps.fit, steps.train) == (None, None)  # one process: unchanged
    assert data.fit_source.arrays[F.ITEM_ID_XF].shape == (data.counts["fit_part"],)
    assert data.train_source.arrays[F.ITEM_ID_XF].shape == (data.counts["train"],)


def test_uneven_global_batches_are_refused_with_the_config_key():
    from trainer import multi_worker

    with pytest.raises(ValueError, match="trainer.batch_size=7 must be a multiple of the 2 replicas"):
        multi_worker.per_replica_batch(7, 2)
    with pytest.raises(ValueError, match="3 training examples do not fill one global batch of trainer.batch_size=8"):
        multi_worker.steps_per_epoch(3, 8)
