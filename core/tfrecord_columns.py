"""Reads gzipped TFRecord `tf.train.Example` files into numpy columns, one per feature.

The one reader of canonical data into memory: the evaluation, the serving tables and the online
learner all use it. Types come from the feature contract (`core.features.feature_kinds`).
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from core import features as F
from core.utf8 import to_str

_EMPTY_DTYPES = {"bytes": np.bytes_, "int": np.int64, "float": np.float32}


def matching_files(file_patterns: Sequence[str]) -> List[str]:
    """Every file matching any of `file_patterns` (glob, local or remote), sorted per pattern."""
    import tensorflow as tf

    return [f for pattern in file_patterns for f in sorted(tf.io.gfile.glob(pattern))]


def read_columns(file_patterns: Sequence[str], feature_names: Sequence[str], *, required: bool = True,
                 decode_strings: bool = False, batch_size: int = 8192) -> Dict[str, np.ndarray]:
    """Columns `feature_names` (single-valued features) of every example in the matching files.

    Args:
      file_patterns: glob patterns of gzipped TFRecord files.
      feature_names: features of `core.features` to read; each must be present in every example.
      required: raise when no file matches (else return empty columns).
      decode_strings: string features as numpy `str` arrays instead of `bytes`.
      batch_size: records parsed per batch.

    Returns:
      Feature name -> 1-D array, in file order.

    Raises:
      FileNotFoundError: `required` and no file matches.
    """
    import tensorflow as tf

    files = matching_files(file_patterns)
    if not files and required:
        raise FileNotFoundError(f"no examples match {list(file_patterns)}")
    kinds = F.feature_kinds()
    dtypes = {"bytes": tf.string, "int": tf.int64, "float": tf.float32}
    spec = {name: tf.io.FixedLenFeature([], dtypes[kinds[name]]) for name in feature_names}
    parts: Dict[str, list] = {name: [] for name in feature_names}
    if files:
        dataset = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch_size)
        for batch in dataset.map(lambda records: tf.io.parse_example(records, spec)):
            for name in feature_names:
                parts[name].append(batch[name].numpy())
    columns = {}
    for name in feature_names:
        column = np.concatenate(parts[name]) if parts[name] else np.zeros(0, _EMPTY_DTYPES[kinds[name]])
        columns[name] = to_str(column) if decode_strings and kinds[name] == "bytes" else column
    return columns
