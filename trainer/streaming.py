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
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from core import features as F
from trainer import history, holdout, inputs
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
      sorted_items: [n] int32, item index + 1 of every (kept) training example, ordered by user,
        then timestamp, then position in the files.
      position: [records] int32, for each record in file order its index in `sorted_items`
        (0 for records not kept).
      user_start: [users + 1] int64, where each user index's segment of `sorted_items` begins.
      latest: [num_users + 1, HISTORY_LENGTH] int64, each user's latest items (the last row is
        the empty history of unknown users): the evaluation examples' histories.
      item_counts: [items] float64, training interactions per item index.
      keep: [records] bool, the records of the files that this timeline holds (the fit part of
        the train split), or None for all of them.
    """

    sorted_items: np.ndarray
    position: np.ndarray
    user_start: np.ndarray
    latest: np.ndarray
    item_counts: np.ndarray
    keep: Optional[np.ndarray] = None

    @property
    def examples(self) -> int:
        return len(self.position) if self.keep is None else int(self.keep.sum())

    @property
    def records(self) -> int:
        return len(self.position)


def _parse(spec):
    return lambda serialized: tf.io.parse_example(serialized, spec)


def read_columns(train_patterns: Patterns, tf_transform_output: tft.TFTransformOutput,
                 tables: Optional[holdout.EntityTables] = None) -> Dict[str, np.ndarray]:
    """One pass over the training files: user, item, timestamp and rating of every record, in
    file order; `tables`, when given, is fed each batch's user and item features.

    Raises:
      ValueError: the files hold no training examples.
    """
    spec = tf_transform_output.transformed_feature_spec()
    names = TIMELINE_FEATURES + (F.RATING_XF,)
    if tables is not None:
        names += holdout.USER_COLUMNS + holdout.ITEM_COLUMNS
    spec = {name: spec[name] for name in names}
    batches = inputs.serialized_records(train_patterns).batch(65536).map(
        _parse(spec), num_parallel_calls=inputs.AUTOTUNE
    ).prefetch(inputs.AUTOTUNE)
    parts: Dict[str, List[np.ndarray]] = {name: [] for name in TIMELINE_FEATURES + (F.RATING_XF,)}
    for batch in batches:
        batch = {name: value.numpy() for name, value in batch.items()}
        for name in parts:
            parts[name].append(batch[name])
        if tables is not None:
            tables.update(batch)
    if not parts[F.USER_ID_XF]:
        raise ValueError(f"no training examples in {train_patterns}")
    columns = {name: np.concatenate(values) for name, values in parts.items()}
    columns[F.USER_ID_XF] = columns[F.USER_ID_XF].astype(np.int32)
    columns[F.ITEM_ID_XF] = columns[F.ITEM_ID_XF].astype(np.int32)
    return columns


def timeline_of(columns: Dict[str, np.ndarray], vocab: Vocabularies, keep: Optional[np.ndarray] = None) -> Timeline:
    """The `Timeline` of the records of `columns` (`read_columns`) where `keep` holds (all: None)."""
    users, items, timestamps = columns[F.USER_ID_XF], columns[F.ITEM_ID_XF], columns[F.TIMESTAMP_XF]
    indices = np.arange(len(users)) if keep is None else np.flatnonzero(keep)
    users, items, timestamps = users[indices], items[indices], timestamps[indices]
    order = np.lexsort((np.arange(len(users)), timestamps, users))  # as trainer.history orders
    position = np.zeros(len(columns[F.USER_ID_XF]), np.int32)
    position[indices[order]] = np.arange(len(order), dtype=np.int32)
    num_users = vocab.users - F.OOV_BUCKETS
    return Timeline(
        sorted_items=items[order] + 1,
        position=position,
        user_start=np.searchsorted(users[order], np.arange(vocab.users + 1)).astype(np.int64),
        latest=history.latest_histories(users, items, timestamps, num_users),
        item_counts=np.bincount(items, minlength=vocab.items)[: vocab.items].astype(np.float64),
        keep=keep,
    )


def read_timeline(train_patterns: Patterns, tf_transform_output: tft.TFTransformOutput,
                  vocab: Vocabularies) -> Timeline:
    """The `Timeline` of every record of the training files (one pass, nothing else parsed).

    Raises:
      ValueError: the files hold no training examples.
    """
    return timeline_of(read_columns(train_patterns, tf_transform_output), vocab)


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


def train_records(train_patterns: Patterns, timeline: Timeline, shuffle: bool = True, seed: int = 0,
                  shuffle_buffer: int = 500_000, stretches: int = READ_STRETCHES) -> tf.data.Dataset:
    """(file-order index, serialized record) of the records the timeline keeps, in one epoch's order.

    Args:
      timeline: `read_timeline` (or `timeline_of`) of the same files; only the records it keeps
        are read out (`Timeline.keep`).
      shuffle: read `stretches` stretches of the files round-robin (`_stretches`) and shuffle
        the records through a `shuffle_buffer`-record buffer, in a new order each epoch (False:
        file order, as `trainer.inputs.load_arrays` reads them).
    """
    records = (_stretches(train_patterns, timeline.records, stretches, seed) if shuffle
               else inputs.serialized_records(train_patterns).enumerate())
    if timeline.keep is not None:
        records = records.filter(_selected(timeline.keep))
    if shuffle:
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return records


def history_parser(tf_transform_output: tft.TFTransformOutput, timeline: Timeline
                   ) -> Callable[[tf.Tensor, tf.Tensor], Dict[str, tf.Tensor]]:
    """Parses a batch of (file-order index, serialized record) into features with their histories."""
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

    return with_history


def train_dataset(train_patterns: Patterns, tf_transform_output: tft.TFTransformOutput, timeline: Timeline,
                  batch_size: int, shuffle: bool = True, seed: int = 0,
                  shuffle_buffer: int = 500_000, stretches: int = READ_STRETCHES) -> tf.data.Dataset:
    """Batches of the training files with each example's history, re-read every epoch.

    Args:
      timeline: `read_timeline` of the same files (only the records it keeps are read out).
      shuffle / seed / shuffle_buffer / stretches: the records' order (`train_records`).
    """
    records = train_records(train_patterns, timeline, shuffle, seed, shuffle_buffer, stretches)
    batches = records.batch(batch_size).map(history_parser(tf_transform_output, timeline),
                                            num_parallel_calls=inputs.AUTOTUNE)
    return _with_cardinality(batches, timeline.examples, batch_size)


def _selected(mask: np.ndarray):
    """A `Dataset.filter` predicate on (file-order index, record): True where `mask` holds."""
    table = tf.constant(mask)
    return lambda index, serialized: tf.gather(table, index)


def _with_cardinality(batches: tf.data.Dataset, examples: int, batch_size: int) -> tf.data.Dataset:
    """Prefetched `batches`, declared to hold ceil(examples / batch_size) batches (Keras needs the
    number of steps for `steps_per_execution` > 1; a wrong count fails at the end of an epoch)."""
    count = -(-examples // batch_size)
    return batches.apply(tf.data.experimental.assert_cardinality(count)).prefetch(inputs.AUTOTUNE)


def count_records(patterns: Patterns) -> int:
    """Number of records in the files (one read, nothing parsed)."""
    return int(inputs.serialized_records(patterns).reduce(tf.constant(0, tf.int64), lambda count, _: count + 1))


def eval_dataset(eval_patterns: Patterns, tf_transform_output: tft.TFTransformOutput, timeline: Timeline,
                 batch_size: int, select: Optional[np.ndarray] = None) -> tf.data.Dataset:
    """Batches of the evaluation files, each example with its user's latest training items.

    Reads the files once first to count them (the dataset declares its number of batches).
    `select` (bool per record, file order) keeps only those records (the label slice of the
    training files, with the fit part's timeline)."""
    parse = _parse(tf_transform_output.transformed_feature_spec())
    latest = tf.constant(timeline.latest)
    last_row = len(timeline.latest) - 1

    def with_history(serialized):
        features = parse(serialized)
        rows = tf.minimum(features[F.USER_ID_XF], last_row)
        features[F.USER_HISTORY] = tf.gather(latest, rows)
        return features

    records = inputs.serialized_records(eval_patterns)
    count = count_records(eval_patterns) if select is None else int(select.sum())
    if select is not None:
        records = records.enumerate().filter(_selected(select)).map(lambda index, serialized: serialized)
    batches = records.batch(batch_size).map(with_history, num_parallel_calls=inputs.AUTOTUNE)
    return _with_cardinality(batches, count, batch_size)


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


def holdout_inputs(train_patterns: Patterns, eval_patterns: Patterns, tf_transform_output: tft.TFTransformOutput,
                   vocab: Vocabularies, cfg: TrainerConfig) -> holdout.HoldoutInputs:
    """The streamed `holdout.HoldoutInputs`: the fit part and the label slice are the training
    files filtered record by record (`trainer.label_slice` on the columns of one pass), each with
    the histories of its own timeline; memory holds the columns, two timelines and the tables."""
    tables = holdout.EntityTables(vocab)
    columns = read_columns(train_patterns, tf_transform_output, tables)
    mask = holdout.slice_mask(columns, cfg.split, cfg.validation_fraction)
    holdout.check_cut(int((~mask).sum()), int(mask.sum()))
    logger.info("streaming %d training examples from the files (%d in the label slice)", len(mask), int(mask.sum()))
    fit_timeline, train_timeline = timeline_of(columns, vocab, keep=~mask), timeline_of(columns, vocab)
    users, items = columns[F.USER_ID_XF], columns[F.ITEM_ID_XF]
    validation = holdout.retrieval_validation(
        (users[~mask], items[~mask]), (users[mask], items[mask]), fit_timeline.latest, tables,
        timestamp=float(columns[F.TIMESTAMP_XF][~mask].max()), max_users=cfg.validation_max_users, seed=cfg.seed)

    def stream(timeline: Timeline) -> tf.data.Dataset:
        return train_dataset(train_patterns, tf_transform_output, timeline, cfg.batch_size, shuffle=True,
                             seed=cfg.seed, shuffle_buffer=cfg.shuffle_buffer)

    ratings = columns[F.RATING_XF].astype(np.float64)
    return holdout.HoldoutInputs(
        fit=stream(fit_timeline),
        label=eval_dataset(train_patterns, tf_transform_output, fit_timeline, cfg.batch_size, select=mask),
        train=stream(train_timeline),
        eval=eval_dataset(eval_patterns, tf_transform_output, train_timeline, cfg.batch_size),
        fit_probabilities=inputs.probabilities_from_counts(fit_timeline.item_counts),
        train_probabilities=inputs.probabilities_from_counts(train_timeline.item_counts),
        validation=validation,
        fit_ratings=(users[~mask], items[~mask], ratings[~mask]),
        train_ratings=(users, items, ratings),
        mode="stream",
        counts={"fit_part": int((~mask).sum()), "label_slice": int(mask.sum()), "train": len(mask),
                "eval": count_records(eval_patterns)},
        fit_source=holdout.ExampleSource(patterns=train_patterns, timeline=fit_timeline, examples=fit_timeline.examples),
        train_source=holdout.ExampleSource(patterns=train_patterns, timeline=train_timeline,
                                           examples=train_timeline.examples),
    )
