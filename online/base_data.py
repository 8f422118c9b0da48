"""The learner's base data: the newest spans of the canonical data, raw and transformed.

The learner starts from a model trained by the pipeline on the newest spans; it reads the same
spans (train and eval splits) and the item catalog, and passes them through the same Transform
graph, to rebuild the serving tables, fill its replay buffer and pick its guard slice.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Sequence

import numpy as np
import tensorflow as tf

from core import features as F
from core import tfrecord_columns
from core.utf8 import to_bytes
from trainer import history


@dataclasses.dataclass(frozen=True)
class BaseData:
    """Raw and transformed interactions of the base spans, and the raw catalog.

    Attributes:
      spans: the span numbers read.
      train_raw / eval_raw: raw columns (`F.INTERACTION_FEATURES`, ids as str).
      train: transformed train columns, with `F.USER_HISTORY` of each example.
      catalog: raw catalog columns (`F.CATALOG_FEATURES`, as `trainer.tables.read_catalog`).
    """

    spans: List[int]
    train_raw: Dict[str, np.ndarray]
    eval_raw: Dict[str, np.ndarray]
    train: Dict[str, np.ndarray]
    catalog: Dict[str, np.ndarray]


def read_raw(file_patterns: Sequence[str]) -> Dict[str, np.ndarray]:
    """Raw interaction columns of gzipped TFRecord examples (empty columns when none match)."""
    columns = tfrecord_columns.read_columns(file_patterns, F.INTERACTION_FEATURES, required=False, decode_strings=True)
    return {name: value.astype(object) if value.dtype.kind == "U" else value for name, value in columns.items()}


def transform(raw: Dict[str, np.ndarray], transform_layer, batch_size: int = 8192) -> Dict[str, np.ndarray]:
    """Transformed columns of raw columns, through the Transform layer, in batches."""
    n = len(raw[F.USER_ID])
    parts: Dict[str, list] = {}
    for start in range(0, n, batch_size):
        batch = {}
        for name, column in raw.items():
            value = column[start:start + batch_size]
            batch[name] = tf.constant(to_bytes(value) if value.dtype == object else value)[:, None]
        for name, value in transform_layer(batch).items():
            parts.setdefault(name, []).append(value.numpy())
    return {name: np.concatenate(p) for name, p in parts.items()}


def load(data_root: str, spans: Sequence[int], transform_layer) -> BaseData:
    """Reads and transforms the given spans and the catalog of `data_root`.

    Raises:
      FileNotFoundError: the spans hold no training interaction or there is no catalog.
    """
    from ingest import writer
    from trainer import tables

    spans = list(spans)
    train_raw = read_raw([writer.split_pattern(data_root, s, F.TRAIN_SPLIT) for s in spans])
    eval_raw = read_raw([writer.split_pattern(data_root, s, F.EVAL_SPLIT) for s in spans])
    if not len(train_raw[F.USER_ID]):
        raise FileNotFoundError(f"no training interactions in spans {spans} of {data_root}")
    train = transform(train_raw, transform_layer)
    train[F.USER_HISTORY] = history.example_histories(train[F.USER_ID_XF], train[F.ITEM_ID_XF], train[F.TIMESTAMP_XF])
    catalog = tables.read_catalog([str(writer.catalog_path(data_root))])
    return BaseData(spans, train_raw, eval_raw, train, catalog)
