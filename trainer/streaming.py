"""Training input streamed from the transformed TFRecords, for data too large to hold in memory.

The in-memory input (`trainer.inputs.load_arrays` + `array_dataset`) keeps every transformed
feature of both splits as numpy arrays, plus a copy as tensors: about 1.5 KB per training
example, so its memory grows with the data. The streamed input keeps only a compact timeline
of the training interactions in memory (`Timeline`: 8 bytes per example and small per-user
and per-item tables) and re-reads and parses the files every epoch, shuffling through a
bounded buffer of serialized records.

The users' histories (the query tower's `F.USER_HISTORY` input) need every interaction of a
user, so they cannot be computed from one streamed example. The timeline holds every training
item ordered by (user, timestamp, position in the files) and, for each example in file order,
its position in that order; an example's history is then the items just before its own
position within its user's segment, gathered per batch. It equals
`trainer.history.example_histories` on the same files (tested), and evaluation examples get the
users' latest training items, as with the in-memory input.

`training_inputs` picks the input: `TrainerConfig.input_mode` 'memory' or 'stream', or 'auto'
(streamed above `TrainerConfig.stream_above_examples` training examples).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Sequence, Tuple, Union

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from core import features as F
from trainer import history, inputs
from trainer.config import TrainerConfig
from trainer.towers import Vocabularies

Patterns = Union[str, Sequence[str]]
TIMELINE_FEATURES = (F.USER_ID_XF, F.ITEM_ID_XF, F.TIMESTAMP_XF)
READ_STRETCHES = 4  # stretches of the training files read at once when shuffling

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Timeline:
    """The training interactions, compactly: what streamed batches need to get their histories.

    Attributes:
      sorted_items: [n] int32, item index + 1 of every training example, ordered by user, then
        timestamp, then position in the files.
      position: [n] int32, for each example in file order its index in `sorted_items`.
      user_start: [users + 1] int64, where each user index's segment of `sorted_items` begins.
      latest: [num_users + 1, HISTORY_LENGTH] int64, each user's latest items (the last row is
        the empty history of unknown users): the evaluation examples' histories.
      item_counts: [items] float64, training interactions per item index.
    """

    sorted_items: np.ndarray
    position: np.ndarray
    user_start: np.ndarray
    latest: np.ndarray
    item_counts: np.ndarray

    @property
    def examples(self) -> int:
        return len(self.position)


def _parse(spec):
    return lambda serialized: tf.io.parse_example(serialized, spec)


def read_timeline(train_patterns: Patterns, tf_transform_output: tft.TFTransformOutput,
                  vocab: Vocabularies) -> Timeline:
    """One pass over the training files, parsing only the user, item and timestamp.

    Raises:
      ValueError: the files hold no training examples.
    """
    spec = tf_transform_output.transformed_feature_spec()
    spec = {name: spec[name] for name in TIMELINE_FEATURES}
    batches = inputs.serialized_records(train_patterns).batch(65536).map(
        _parse(spec), num_parallel_calls=inputs.AUTOTUNE
    ).prefetch(inputs.AUTOTUNE)
    parts = {name: [] for name in TIMELINE_FEATURES}
    for batch in batches:
        for name in TIMELINE_FEATURES:
            parts[name].append(batch[name].numpy())
    if not parts[F.USER_ID_XF]:
        raise ValueError(f"no training examples in {train_patterns}")
    users = np.concatenate(parts.pop(F.USER_ID_XF)).astype(np.int32)
    items = np.concatenate(parts.pop(F.ITEM_ID_XF)).astype(np.int32)
    timestamps = np.concatenate(parts.pop(F.TIMESTAMP_XF))
    order = np.lexsort((np.arange(len(users)), timestamps, users))  # as trainer.history orders
    position = np.empty(len(order), np.int32)
    position[order] = np.arange(len(order), dtype=np.int32)
    num_users = vocab.users - F.OOV_BUCKETS
    return Timeline(
        sorted_items=items[order] + 1,
        position=position,
        user_start=np.searchsorted(users[order], np.arange(vocab.users + 1)).astype(np.int64),
        latest=history.latest_histories(users, items, timestamps, num_users),
        item_counts=np.bincount(items, minlength=vocab.items)[: vocab.items].astype(np.float64),
    )


def _stretches(train_patterns: Patterns, examples: int, stretches: int, seed: int) -> tf.data.Dataset:
    """(file-order index, record) of the files, read from `stretches` equal stretches at once.

    The files are in the order they were written (often grouped by user), so a shuffle buffer
    alone would mix only neighbouring users; reading the stretches round-robin puts records from
    the whole file into the buffer. Each stretch is read in order after skipping the records
    before it; the skips are not parsed but still read, about (stretches - 1) / 2 extra raw
    passes per epoch (its cost: `benchmarks/stream_input.py`, BENCHMARKS.md "The Trainer's
    input"). The stretches' round-robin order changes every epoch.
    """
    size = max(1, -(-examples // stretches))
    starts = tf.data.Dataset.range(0, max(examples, 1), size)
    starts = starts.shuffle(stretches, seed=seed, reshuffle_each_iteration=True)
    return starts.interleave(
        lambda start: inputs.serialized_records(train_patterns).enumerate().skip(start).take(size),
        cycle_length=stretches, block_length=1, num_parallel_calls=inputs.AUTOTUNE, deterministic=True,
    )


def train_dataset(train_patterns: Patterns, tf_transform_output: tft.TFTransformOutput, timeline: Timeline,
                  batch_size: int, shuffle: bool = True, seed: int = 0,
                  shuffle_buffer: int = 500_000, stretches: int = READ_STRETCHES) -> tf.data.Dataset:
    """Batches of the training files with each example's history, re-read every epoch.

    Args:
      timeline: `read_timeline` of the same files.
      shuffle: read `stretches` stretches of the files round-robin (`_stretches`) and shuffle
        the records through a `shuffle_buffer`-record buffer, in a new order each epoch (False:
        file order, as `trainer.inputs.load_arrays` reads them).
    """
    if shuffle:
        records = _stretches(train_patterns, timeline.examples, stretches, seed)
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    else:
        records = inputs.serialized_records(train_patterns).enumerate()
    parse = _parse(tf_transform_output.transformed_feature_spec())
    sorted_items = tf.constant(timeline.sorted_items)
    position = tf.constant(timeline.position)
    user_start = tf.constant(timeline.user_start)
    offsets = tf.range(1, F.HISTORY_LENGTH + 1, dtype=tf.int64)[tf.newaxis, :]

    def with_history(index, serialized):
        features = parse(serialized)
        own = tf.cast(tf.gather(position, index), tf.int64)[:, tf.newaxis]
        start = tf.gather(user_start, features[F.USER_ID_XF])[:, tf.newaxis]
        earlier = own - offsets  # the positions of the user's previous items, newest first
        items = tf.cast(tf.gather(sorted_items, tf.maximum(earlier, 0)), tf.int64)
        features[F.USER_HISTORY] = tf.where(earlier >= start, items, tf.zeros_like(items))
        return features

    batches = records.batch(batch_size).map(with_history, num_parallel_calls=inputs.AUTOTUNE)
    return _with_cardinality(batches, timeline.examples, batch_size)


def _with_cardinality(batches: tf.data.Dataset, examples: int, batch_size: int) -> tf.data.Dataset:
    """Prefetched `batches`, declared to hold ceil(examples / batch_size) batches (Keras needs the
    number of steps for `steps_per_execution` > 1; a wrong count fails at the end of an epoch)."""
    count = -(-examples // batch_size)
    return batches.apply(tf.data.experimental.assert_cardinality(count)).prefetch(inputs.AUTOTUNE)


def count_records(patterns: Patterns) -> int:
    """Number of records in the files (one read, nothing parsed)."""
    return int(inputs.serialized_records(patterns).reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


def eval_dataset(eval_patterns: Patterns, tf_transform_output: tft.TFTransformOutput, timeline: Timeline,
                 batch_size: int) -> tf.data.Dataset:
    """Batches of the evaluation files, each example with its user's latest training items.

    Reads the files once first to count them (the dataset declares its number of batches)."""
    parse = _parse(tf_transform_output.transformed_feature_spec())
    latest = tf.constant(timeline.latest)
    last_row = len(timeline.latest) - 1

    def with_history(serialized):
        features = parse(serialized)
        rows = tf.minimum(features[F.USER_ID_XF], last_row)
        features[F.USER_HISTORY] = tf.gather(latest, rows)
        return features

    batches = inputs.serialized_records(eval_patterns).batch(batch_size)
    batches = batches.map(with_history, num_parallel_calls=inputs.AUTOTUNE)
    return _with_cardinality(batches, count_records(eval_patterns), batch_size)


def streams(cfg: TrainerConfig, examples: int) -> bool:
    """Whether `examples` training examples are streamed under `cfg.input_mode`."""
    if cfg.input_mode == "auto":
        return examples > cfg.stream_above_examples
    return cfg.input_mode == "stream"


def training_inputs(train_patterns: Patterns, eval_patterns: Patterns, tf_transform_output: tft.TFTransformOutput,
                    vocab: Vocabularies, cfg: TrainerConfig
                    ) -> Tuple[tf.data.Dataset, tf.data.Dataset, np.ndarray, str]:
    """The training and evaluation datasets, the items' sampling probabilities and the mode used.

    Returns:
      (train batches, shuffled each epoch; eval batches; item probabilities; 'stream' or 'memory').
    """
    timeline = read_timeline(train_patterns, tf_transform_output, vocab)
    probabilities = inputs.probabilities_from_counts(timeline.item_counts)
    if streams(cfg, timeline.examples):
        logger.info("streaming %d training examples from the files", timeline.examples)
        train = train_dataset(train_patterns, tf_transform_output, timeline, cfg.batch_size, shuffle=True,
                              seed=cfg.seed, shuffle_buffer=cfg.shuffle_buffer)
        return train, eval_dataset(eval_patterns, tf_transform_output, timeline, cfg.batch_size), probabilities, "stream"
    logger.info("holding %d training examples in memory", timeline.examples)
    del timeline
    train_arrays = inputs.load_arrays(train_patterns, tf_transform_output)
    eval_arrays = inputs.load_arrays(eval_patterns, tf_transform_output)
    inputs.add_histories(train_arrays, eval_arrays, num_users=vocab.users - F.OOV_BUCKETS)
    train = inputs.array_dataset(train_arrays, cfg.batch_size, shuffle=True, seed=cfg.seed)
    return train, inputs.array_dataset(eval_arrays, cfg.batch_size), probabilities, "memory"
