"""The streamed training input gives the in-memory input's examples, histories and probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from core import features as F


@pytest.fixture(scope="module")
def sharded(transformed_tiny, tmp_path_factory):
    """The tiny transformed training file dealt round-robin into 3 files (interleaved reads)."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from trainer import inputs

    root = tmp_path_factory.mktemp("shards")
    records = list(tf.data.TFRecordDataset(transformed_tiny.train_pattern, compression_type="GZIP"))
    for shard in range(3):
        with tf.io.TFRecordWriter(str(root / f"part-{shard}.gz"), options="GZIP") as writer:
            for record in records[shard::3]:
                writer.write(record.numpy())
    tft_output = tft.TFTransformOutput(transformed_tiny.transform_dir)
    pattern = str(root / "part-*.gz")
    vocab = inputs.vocabularies(tft_output)
    arrays = inputs.load_arrays(pattern, tft_output)
    eval_arrays = inputs.load_arrays(pattern, tft_output)  # the same files stand in for the eval split
    inputs.add_histories(arrays, eval_arrays, num_users=vocab.users - F.OOV_BUCKETS)
    return pattern, tft_output, vocab, arrays, eval_arrays


def _concat(dataset):
    parts = {}
    for batch in dataset:
        for name, value in batch.items():
            parts.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


def _rows(arrays):
    """Every example as a sortable tuple of all its feature values."""
    names = sorted(arrays)
    n = len(arrays[names[0]])
    return sorted(tuple(np.ravel(arrays[name][i]).tolist() for name in names) for i in range(n))


def test_file_order_stream_equals_the_arrays_with_their_histories(sharded):
    from trainer import streaming

    pattern, tft_output, vocab, arrays, _ = sharded
    timeline = streaming.read_timeline(pattern, tft_output, vocab)
    streamed = _concat(streaming.train_dataset(pattern, tft_output, timeline, batch_size=7, shuffle=False))
    assert timeline.examples == len(arrays[F.ITEM_ID_XF]) > 200
    assert set(streamed) == set(arrays)
    for name in arrays:
        np.testing.assert_array_equal(streamed[name], arrays[name], err_msg=name)
    # the histories are not trivially empty: most examples have earlier items of their user
    assert np.mean(arrays[F.USER_HISTORY][:, 0] > 0) > 0.8


def test_shuffled_stream_is_a_new_permutation_each_epoch(sharded):
    import tensorflow as tf

    from trainer import streaming

    pattern, tft_output, vocab, arrays, _ = sharded
    timeline = streaming.read_timeline(pattern, tft_output, vocab)
    tf.keras.utils.set_random_seed(1)
    dataset = streaming.train_dataset(pattern, tft_output, timeline, batch_size=16, shuffle=True, seed=1,
                                      shuffle_buffer=1000)
    first, second = _concat(dataset), _concat(dataset)
    assert _rows(first) == _rows(arrays) == _rows(second)
    items = arrays[F.ITEM_ID_XF]
    assert not np.array_equal(first[F.ITEM_ID_XF], items)
    assert not np.array_equal(first[F.ITEM_ID_XF], second[F.ITEM_ID_XF])


def test_shuffled_stream_draws_from_the_whole_file_even_with_a_tiny_buffer(sharded):
    from trainer import streaming

    pattern, tft_output, vocab, arrays, _ = sharded
    timeline = streaming.read_timeline(pattern, tft_output, vocab)
    n = timeline.examples
    records = list(streaming._stretches(pattern, n, stretches=4, seed=3).as_numpy_iterator())
    indices = np.array([index for index, _ in records])
    np.testing.assert_array_equal(np.sort(indices), np.arange(n))  # every record once
    # The first round-robin turn takes one record of each quarter of the file.
    quarter = -(-n // 4)
    assert sorted(indices[:4] // quarter) == [0, 1, 2, 3]
    # With a one-record shuffle buffer the batches keep that spread: the first batch of 8
    # holds examples from every quarter of the file, not 8 neighbours.
    batch = next(iter(streaming.train_dataset(pattern, tft_output, timeline, batch_size=8, shuffle=True,
                                              seed=3, shuffle_buffer=1, stretches=4)))
    pairs = list(zip(arrays[F.USER_ID_XF].tolist(), arrays[F.ITEM_ID_XF].tolist()))
    index_of = {pair: index for index, pair in enumerate(pairs)}
    assert len(index_of) == n  # (user, item) names an example of the tiny data
    in_batch = [index_of[pair] for pair in zip(batch[F.USER_ID_XF].numpy().tolist(), batch[F.ITEM_ID_XF].numpy().tolist())]
    assert len({index // quarter for index in in_batch}) == 4


def test_eval_stream_carries_each_users_latest_items(sharded):
    from trainer import streaming

    pattern, tft_output, vocab, _, eval_arrays = sharded
    timeline = streaming.read_timeline(pattern, tft_output, vocab)
    streamed = _concat(streaming.eval_dataset(pattern, tft_output, timeline, batch_size=5))
    for name in eval_arrays:
        np.testing.assert_array_equal(streamed[name], eval_arrays[name], err_msg=name)


def test_item_probabilities_match_the_in_memory_count(sharded):
    from trainer import inputs, streaming

    pattern, tft_output, vocab, arrays, _ = sharded
    timeline = streaming.read_timeline(pattern, tft_output, vocab)
    expected = inputs.item_probabilities(inputs.array_dataset(arrays, 64), vocab.items)
    np.testing.assert_allclose(inputs.probabilities_from_counts(timeline.item_counts), expected)


def test_auto_mode_streams_above_the_threshold_and_both_inputs_hold_the_same_examples(sharded):
    from trainer import streaming
    from trainer.config import TrainerConfig

    pattern, tft_output, vocab, arrays, _ = sharded
    n = len(arrays[F.ITEM_ID_XF])
    results = {}
    for threshold in (n - 1, n):
        cfg = TrainerConfig(batch_size=32, input_mode="auto", stream_above_examples=threshold)
        train, evaluation, probabilities, mode = streaming.training_inputs(pattern, pattern, tft_output, vocab, cfg)
        results[mode] = (_rows(_concat(train)), _rows(_concat(evaluation)), probabilities)
    assert set(results) == {"stream", "memory"}  # n - 1: streamed, n: held in memory
    (stream_train, stream_eval, stream_p), (memory_train, memory_eval, memory_p) = results["stream"], results["memory"]
    assert stream_train == memory_train and stream_eval == memory_eval
    np.testing.assert_array_equal(stream_p, memory_p)
    assert streaming.streams(TrainerConfig(input_mode="stream"), 1)
    assert not streaming.streams(TrainerConfig(input_mode="memory"), 10 ** 9)


def test_streamed_training_lowers_the_retrieval_loss(sharded):
    import tensorflow as tf

    from trainer import streaming, train
    from trainer.config import TrainerConfig

    pattern, tft_output, vocab, _, _ = sharded
    # steps_per_execution > 1: Keras needs the datasets to declare their number of batches
    cfg = TrainerConfig(embedding_dim=16, tower_layers=(), epochs=6, ranking_epochs=1, batch_size=64,
                        learning_rate=0.2, input_mode="stream", seed=3, steps_per_execution=2)
    tf.keras.utils.set_random_seed(cfg.seed)
    data, evaluation, probabilities, mode = streaming.training_inputs(pattern, pattern, tft_output, vocab, cfg)
    n = len(sharded[3][F.ITEM_ID_XF])
    assert int(data.cardinality()) == int(evaluation.cardinality()) == -(-n // cfg.batch_size)
    models = train.train(data, None, vocab, cfg, item_probabilities=probabilities)
    losses = models.retrieval_history["loss"]
    assert mode == "stream"
    assert losses[-1] < 0.8 * losses[0], losses


def test_unknown_input_mode_is_refused():
    from core.config_loader import ConfigError
    from trainer.config import TrainerConfig
    with pytest.raises(ConfigError, match="input_mode"):
        TrainerConfig(input_mode="disk")
    with pytest.raises(ConfigError, match="shuffle_buffer"):
        TrainerConfig(shuffle_buffer=0)


def test_run_fn_trains_and_exports_from_the_streamed_files(sharded, transformed_tiny, tmp_path, caplog):
    import json
    import logging

    from tfx.components.trainer.fn_args_utils import FnArgs

    from trainer import entry as run_module
    from trainer import export

    pattern, _, vocab, _, _ = sharded
    custom = {run_module.HPARAMS_KEY: {"embedding_dim": 8, "tower_layers": [], "epochs": 1, "ranking_epochs": 1,
                                       "batch_size": 64, "steps_per_execution": 4, "input_mode": "stream",
                                       "user_id_embedding": True, "max_epochs": 2, "ranking_max_epochs": 1}}
    fn_args = FnArgs(train_files=[pattern], eval_files=[pattern], transform_output=transformed_tiny.transform_dir,
                     serving_model_dir=str(tmp_path / "model"), model_run_dir=str(tmp_path / "logs"),
                     custom_config=custom, train_steps=None)
    with caplog.at_level(logging.INFO):
        run_module.run_fn(fn_args)
    assert "files (streamed)" in caplog.text
    networks = export.load_trained(str(tmp_path / "model"))
    assert networks.query_tower.get_layer(f"{F.USER_ID}_embedding").input_dim == vocab.users
    export.load_trained(str(tmp_path / "model" / run_module.FIT_PART_SUBDIR))
    summary = json.loads((tmp_path / "model" / run_module.SUMMARY_FILE).read_text())
    counts = summary["examples"]
    assert summary["input"] == "stream" and counts["fit_part"] + counts["label_slice"] == counts["train"]
    assert counts["label_slice"] > 0 and 1 <= len(summary["early_stopping"]["retrieval"]["curve"]) <= 2


def test_streamed_fit_part_and_label_slice_equal_the_in_memory_ones(sharded, transformed_tiny):
    import collections

    import tensorflow_transform as tft

    from trainer import holdout_inputs
    from trainer.config import TrainerConfig

    pattern, _, vocab, _, _ = sharded
    tft_output = tft.TFTransformOutput(transformed_tiny.transform_dir)

    def examples(dataset):
        rows = collections.Counter()
        for batch in dataset:
            rows.update(zip(batch[F.USER_ID_XF].numpy().tolist(), batch[F.ITEM_ID_XF].numpy().tolist(),
                            map(tuple, batch[F.USER_HISTORY].numpy().tolist())))
        return rows

    built = {mode: holdout_inputs.training_inputs(pattern, pattern, tft_output, vocab,
                                                  TrainerConfig(input_mode=mode, split="random", batch_size=16))
             for mode in ("memory", "stream")}
    assert built["stream"].mode == "stream" and built["memory"].mode == "memory"
    assert built["stream"].counts == built["memory"].counts
    for part in ("fit", "label", "train", "eval"):
        assert examples(getattr(built["stream"], part)) == examples(getattr(built["memory"], part)), part
    for side in ("excluded", "relevant"):
        for a, b in zip(getattr(built["stream"].validation, side), getattr(built["memory"].validation, side)):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(built["stream"].fit_probabilities, built["memory"].fit_probabilities)
