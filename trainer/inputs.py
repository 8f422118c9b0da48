"""Input pipelines over transformed examples and the sizes the towers need."""

from __future__ import annotations

from typing import Dict, Iterator, List, Sequence, Union

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from core import features as F
from trainer import history, preprocessing
from trainer.towers import Vocabularies

AUTOTUNE = tf.data.AUTOTUNE


def vocabularies(tf_transform_output: tft.TFTransformOutput) -> Vocabularies:
    """Embedding input sizes: vocabulary + OOV buckets (+1 pad slot for token lists)."""

    def size(name: str) -> int:
        return tf_transform_output.vocabulary_size_by_name(name) + F.OOV_BUCKETS

    buckets = preprocessing.bucket_counts()
    return Vocabularies(
        users=size(F.USER_ID_VOCAB),
        items=size(F.ITEM_ID_VOCAB),
        genders=size(F.GENDER_VOCAB),
        occupations=size(F.OCCUPATION_VOCAB),
        genres=size(F.GENRE_VOCAB) + 1,
        title_tokens=size(F.TITLE_TOKEN_VOCAB) + 1,
        age_buckets=buckets[F.USER_AGE_XF],
        year_buckets=buckets[F.ITEM_YEAR_XF],
    )


def _expand(patterns: Union[str, Sequence[str]]) -> List[str]:
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    files: List[str] = []
    for pattern in patterns:
        files.extend(sorted(tf.io.gfile.glob(pattern)))
    if not files:
        raise FileNotFoundError(f"no transformed examples match {patterns}")
    return files


def serialized_records(file_patterns: Union[str, Sequence[str]]) -> tf.data.Dataset:
    """The serialized examples of the gzipped TFRecord files, read in parallel.

    The order is deterministic (sorted files, a fixed interleave): every iteration, and every
    dataset made by this function over the same files, yields the records in the same order.
    """
    files = _expand(file_patterns)
    return tf.data.Dataset.from_tensor_slices(files).interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type="GZIP"),
        cycle_length=min(4, len(files)),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )


def transformed_dataset(
    file_patterns: Union[str, Sequence[str]],
    tf_transform_output: tft.TFTransformOutput,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    cache: bool = True,
) -> tf.data.Dataset:
    """Batches of transformed features from gzipped TFRecord files.

    Parallel interleaved reads, a vectorised parse per batch, an in-memory cache of the parsed
    batches (the transformed data of one span fits in memory at these sizes) and prefetching.
    """
    spec = tf_transform_output.transformed_feature_spec()
    records = serialized_records(file_patterns)
    if cache:
        records = records.cache()
    if shuffle:
        records = records.shuffle(50_000, seed=seed, reshuffle_each_iteration=True)
    batches = records.batch(batch_size).map(
        lambda serialized: tf.io.parse_example(serialized, spec), num_parallel_calls=AUTOTUNE
    )
    return batches.prefetch(AUTOTUNE)


def iterate_numpy(dataset: tf.data.Dataset, names: Sequence[str]) -> Iterator[Dict[str, np.ndarray]]:
    """The batches of `dataset` as numpy arrays restricted to `names`."""
    for batch in dataset:
        yield {name: batch[name].numpy() for name in names}


def item_probabilities(dataset: tf.data.Dataset, num_items: int) -> np.ndarray:
    """Share of training interactions of each item index (the in-batch sampling probability)."""
    counts = np.zeros(num_items, np.float64)
    for batch in iterate_numpy(dataset, [F.ITEM_ID_XF]):
        counts += np.bincount(batch[F.ITEM_ID_XF], minlength=num_items)[:num_items]
    return probabilities_from_counts(counts)


def probabilities_from_counts(counts: np.ndarray) -> np.ndarray:
    """Each item's share of `counts` (training interactions per item index), floored above 0."""
    total = counts.sum()
    if total == 0:
        raise ValueError("no training interactions: cannot estimate item probabilities")
    # Items never seen in training keep a small floor so that log(p) stays finite.
    return np.maximum(counts / total, 1.0 / (10.0 * total)).astype(np.float32)


def load_arrays(
    file_patterns: Union[str, Sequence[str]], tf_transform_output: tft.TFTransformOutput
) -> Dict[str, np.ndarray]:
    """Every transformed feature of the given files as one numpy array per feature."""
    parts: Dict[str, List[np.ndarray]] = {}
    dataset = transformed_dataset(file_patterns, tf_transform_output, batch_size=16384, cache=False)
    for batch in dataset:
        for name, value in batch.items():
            parts.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


def add_histories(train: Dict[str, np.ndarray], eval_: Dict[str, np.ndarray], num_users: int) -> None:
    """Adds `F.USER_HISTORY` to both splits, in place.

    Training examples see the user's earlier training items; evaluation examples see the user's
    latest training items (what the serving model knows).
    """
    train[F.USER_HISTORY] = history.example_histories(
        train[F.USER_ID_XF], train[F.ITEM_ID_XF], train[F.TIMESTAMP_XF]
    )
    latest = history.latest_histories(
        train[F.USER_ID_XF], train[F.ITEM_ID_XF], train[F.TIMESTAMP_XF], num_users
    )
    eval_[F.USER_HISTORY] = latest[np.minimum(eval_[F.USER_ID_XF], num_users)]


def array_dataset(
    arrays: Dict[str, np.ndarray],
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Batches of in-memory feature arrays (shuffled each epoch when asked), prefetched.

    Vectorised: tf.data shuffles and batches only the example indices, and one `tf.gather` per
    feature builds each whole batch, instead of slicing every example of every feature and
    batching them again. Each element is a dict of the same names, dtypes and trailing shapes as
    `arrays`, with a leading batch dimension.

    Args:
      arrays: one numpy array per feature, all of the same length (the number of examples).
      batch_size: examples per batch; the last batch is smaller unless `drop_remainder`.
      shuffle: visit the examples in a random order, a different one each epoch (iteration);
        the whole dataset is permuted (a full-size shuffle buffer of indices).
      seed: the shuffle seed: the same seed gives the same sequence of epoch orders.
      drop_remainder: drop the last batch when it is smaller than `batch_size`.

    Returns:
      A dataset of known cardinality (the number of batches of one epoch).

    Raises:
      ValueError: no arrays, arrays of different lengths, or a batch size below 1.
    """
    if not arrays:
        raise ValueError("array_dataset needs at least one feature array")
    lengths = {name: len(value) for name, value in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"feature arrays must have the same length, got {lengths}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    examples = next(iter(lengths.values()))
    indices = tf.data.Dataset.range(examples)
    if shuffle:
        indices = indices.shuffle(max(examples, 1), seed=seed, reshuffle_each_iteration=True)
    return gathered_batches(indices.batch(batch_size, drop_remainder=drop_remainder), arrays)


def gathered_batches(index_batches: tf.data.Dataset, arrays: Dict[str, np.ndarray]) -> tf.data.Dataset:
    """Batches of `arrays` (one `tf.gather` per feature) at each batch of example indices, prefetched."""
    tensors = {name: tf.convert_to_tensor(value) for name, value in arrays.items()}
    batches = index_batches.map(
        lambda index: {name: tf.gather(value, index) for name, value in tensors.items()},
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    return batches.prefetch(AUTOTUNE)
