"""Files of the canonical data: span writer (rolled part files), item catalog, and a reader.

Layout under an output folder ``<out>``::

    <out>/interactions/span-<N>/train/part-<k>.tfrecord.gz
    <out>/interactions/span-<N>/eval/part-<k>.tfrecord.gz
    <out>/items/items.tfrecord.gz
    <out>/data_report.json

Every file is a gzipped TFRecord of serialised `tf.train.Example`. A span is written into a
hidden folder beside it and renamed into place when complete, so a reader never sees half a
span; writing a span that exists replaces it. Each split gets at least one (maybe empty) part
file, so a glob over a split always matches.
"""

from __future__ import annotations

import glob
import logging
import os
import pathlib
import shutil
from typing import Dict, Iterable, Iterator, List, Mapping, Optional, Union

import tensorflow as tf

from core import features
from ingest.errors import DataError

logger = logging.getLogger(__name__)

INTERACTIONS_DIR = "interactions"
ITEMS_DIR = "items"
ITEMS_FILE = "items.tfrecord.gz"
SPLITS = (features.TRAIN_SPLIT, features.EVAL_SPLIT)
DEFAULT_ROWS_PER_FILE = 500_000

_OPTIONS = tf.io.TFRecordOptions(compression_type="GZIP")

Value = Union[str, int, float, List[Union[str, int, float]]]


def span_dir(out_dir: str, span: int) -> pathlib.Path:
    """The folder of one span: ``<out>/interactions/span-<span>``."""
    return pathlib.Path(out_dir) / INTERACTIONS_DIR / f"span-{span}"


def split_pattern(out_dir: str, span: int, split: str) -> str:
    """A glob matching every part file of one split of one span."""
    return str(span_dir(out_dir, span) / split / "part-*.tfrecord.gz")


def catalog_path(out_dir: str) -> pathlib.Path:
    """The item catalog file: ``<out>/items/items.tfrecord.gz``."""
    return pathlib.Path(out_dir) / ITEMS_DIR / ITEMS_FILE


class SpanWriter:
    """Writes the train and eval splits of one span, rolling part files every N rows.

    It holds one open file per split and no rows: memory does not grow with the data. Use it
    as a context manager: the span is published when the block ends normally and discarded
    when it raises.

    Args:
      out_dir: the output folder.
      span: the span number (>= 0).
      rows_per_file: rows per part file before a new one is started.
    """

    def __init__(self, out_dir: str, span: int, rows_per_file: int = DEFAULT_ROWS_PER_FILE) -> None:
        if span < 0:
            raise ValueError(f"span must be >= 0, got {span}")
        if rows_per_file < 1:
            raise ValueError(f"rows_per_file must be >= 1, got {rows_per_file}")
        self.final_dir = span_dir(out_dir, span)
        self._partial = self.final_dir.with_name(f".{self.final_dir.name}.partial")
        if self._partial.exists():
            shutil.rmtree(self._partial)
        self._rows_per_file = rows_per_file
        self.rows_written: Dict[str, int] = {split: 0 for split in SPLITS}
        self.files: Dict[str, List[str]] = {split: [] for split in SPLITS}
        self._open: Dict[str, tf.io.TFRecordWriter] = {}
        self._in_file: Dict[str, int] = {split: 0 for split in SPLITS}
        for split in SPLITS:
            (self._partial / split).mkdir(parents=True)

    def __enter__(self) -> "SpanWriter":
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, split: str, example: bytes) -> None:
        """Appends one serialised Example to a split.

        Args:
          split: "train" or "eval".
          example: the serialised `tf.train.Example`.
        """
        if split not in self._in_file:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if split not in self._open or self._in_file[split] >= self._rows_per_file:
            self._roll(split)
        self._open[split].write(example)
        self._in_file[split] += 1
        self.rows_written[split] += 1

    def write_all(self, split: str, examples: Iterable[bytes]) -> int:
        """Appends serialised Examples to a split; returns how many were written."""
        before = self.rows_written[split]
        for example in examples:
            self.write(split, example)
        return self.rows_written[split] - before

    def close(self) -> Dict[str, int]:
        """Closes the files and publishes the span (replacing an older one of that number).

        Returns:
          Rows written per split.
        """
        for split in SPLITS:
            if not self.files[split]:
                self._roll(split)
        self._close_files()
        stale = self.final_dir.with_name(f".{self.final_dir.name}.stale")
        if stale.exists():
            shutil.rmtree(stale)
        if self.final_dir.exists():
            os.replace(self.final_dir, stale)
        os.replace(self._partial, self.final_dir)
        if stale.exists():
            shutil.rmtree(stale)
        self.files = {
            split: [str(self.final_dir / split / pathlib.Path(name).name) for name in names]
            for split, names in self.files.items()
        }
        logger.info("span %s published: %s", self.final_dir, self.rows_written)
        return dict(self.rows_written)

    def abort(self) -> None:
        """Closes the files and deletes the unpublished span."""
        self._close_files()
        shutil.rmtree(self._partial, ignore_errors=True)

    def _roll(self, split: str) -> None:
        if split in self._open:
            self._open.pop(split).close()
            logger.info("wrote %s (%d rows)", self.files[split][-1], self._in_file[split])
        path = self._partial / split / f"part-{len(self.files[split]):05d}.tfrecord.gz"
        self._open[split] = tf.io.TFRecordWriter(str(path), _OPTIONS)
        self.files[split].append(str(path))
        self._in_file[split] = 0

    def _close_files(self) -> None:
        for writer in self._open.values():
            writer.close()
        self._open.clear()


def write_catalog(out_dir: str, examples: Mapping[str, bytes], keep_existing: bool = False) -> int:
    """Writes the item catalog, atomically.

    Args:
      out_dir: the output folder.
      examples: item id -> serialised catalog Example, written in this order.
      keep_existing: also keep the items of an existing catalog that `examples` lacks (used
        when a later span is added); items in both take the new features.

    Returns:
      The number of catalog rows written.
    """
    path = catalog_path(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    kept: List[bytes] = []
    if keep_existing and path.exists():
        for record in _records([str(path)]):
            item_id = _single(tf.train.Example.FromString(record).features.feature[features.ITEM_ID])
            if item_id not in examples:
                kept.append(record)
    # The partial file lies outside items/, so no reader's glob over that folder can see it.
    partial = path.parent.parent / f".{path.name}.partial"
    with tf.io.TFRecordWriter(str(partial), _OPTIONS) as writer:
        for record in kept:
            writer.write(record)
        for record in examples.values():
            writer.write(record)
    os.replace(partial, path)
    logger.info("catalog %s: %d items (%d kept from the previous catalog)", path, len(kept) + len(examples), len(kept))
    return len(kept) + len(examples)


def read_examples(pattern: str) -> Iterator[Dict[str, Value]]:
    """Reads gzipped TFRecord Examples back as plain dicts.

    Args:
      pattern: a file, or a glob such as ``<out>/interactions/span-0/train/*``.

    Returns:
      An iterator of dicts, feature name -> value: str for bytes (UTF-8), int, or float; a
      list when a feature holds other than exactly one value.

    Raises:
      DataError: no file matches the pattern.
    """
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise DataError(f"{pattern}: no file matches")
    for record in _records(paths):
        example = tf.train.Example.FromString(record)
        yield {name: _single(feature) for name, feature in example.features.feature.items()}


def _records(paths: List[str], batch: int = 1024) -> Iterator[bytes]:
    """Raw records of the files in order; batched, since tf.data costs much per element."""
    dataset = tf.data.TFRecordDataset(paths, compression_type="GZIP").batch(batch)
    for records in dataset.as_numpy_iterator():
        yield from records


def _single(feature: tf.train.Feature) -> Optional[Value]:
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list":
        values: List = [value.decode("utf-8") for value in feature.bytes_list.value]
    elif kind == "int64_list":
        values = list(feature.int64_list.value)
    elif kind == "float_list":
        values = list(feature.float_list.value)
    else:
        values = []
    return values[0] if len(values) == 1 else values
