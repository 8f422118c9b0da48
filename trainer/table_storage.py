"""Serving tables kept out of the graph: variables, and key -> row tables read from asset files.

A table baked into a SavedModel as a graph constant lands in `saved_model.pb`, a protobuf
capped at 2 GB, and grows with every user and item. The serving models store such tables here
instead, with stock TensorFlow ops only (the stock TF Serving binary loads them):

* `table_variable`: a non-trainable variable (written to the `variables/` checkpoint), integer
  tables in the narrowest signed type that holds their values (`narrowest_int_dtype`);
* `gather_rows`: rows of a table, whatever stores it (a variable, or an int8 matrix of the
  compression stage);
* `KeyRowTable`: raw string keys -> their row, a `StaticHashTable` initialised by a
  `TextFileInitializer` (one key per line, the value is the line number) over a
  `tf.saved_model.Asset`, so the keys travel in `assets/` and the graph holds only the file name.
"""

from __future__ import annotations

import os
import tempfile
from typing import Optional

import numpy as np
import tensorflow as tf

_INT_TYPES = (np.int8, np.int16, np.int32, np.int64)
_WRITE_CHUNK = 1 << 16  # keys joined per write: the key file is streamed, never built whole


def narrowest_int_dtype(values: np.ndarray) -> np.dtype:
    """The smallest signed integer type holding every value of `values` (int8 when empty)."""
    values = np.asarray(values)
    if values.size == 0:
        return np.dtype(np.int8)
    low, high = int(values.min()), int(values.max())
    for dtype in _INT_TYPES:
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return np.dtype(dtype)
    raise ValueError(f"values in [{low}, {high}] do not fit in int64")


def table_variable(values: np.ndarray, name: str, dtype: Optional[np.dtype] = None) -> tf.Variable:
    """A non-trainable variable holding `values`.

    Args:
      values: the table (numpy; strings as bytes or str, stored as tf.string).
      name: the variable's name.
      dtype: the storage type of a numeric table; None keeps floats and booleans as they are
        and narrows integers with `narrowest_int_dtype`.

    Returns:
      The variable.
    """
    values = np.asarray(values)
    if values.dtype.kind in "SUO":
        if values.dtype.kind != "S":
            values = np.array([_key_bytes(v) for v in values.ravel()], dtype=object).reshape(values.shape)
        return tf.Variable(values, trainable=False, name=name, dtype=tf.string)
    if dtype is None:
        dtype = narrowest_int_dtype(values) if values.dtype.kind in "iu" else values.dtype
    return tf.Variable(values.astype(dtype, copy=False), trainable=False, name=name)


def widened(tensor: tf.Tensor) -> tf.Tensor:
    """`tensor` as int64 when it holds integers (narrow storage), else unchanged."""
    return tf.cast(tensor, tf.int64) if tensor.dtype.is_integer else tensor


def gather_rows(table, rows: tf.Tensor) -> tf.Tensor:
    """Rows `rows` of `table`: a variable or tensor, or a module with its own `gather` (the
    compression stage's int8 matrices, dequantising only the rows read)."""
    gather = getattr(table, "gather", None)
    return gather(rows) if callable(gather) and not isinstance(table, (tf.Variable, tf.Tensor)) else tf.gather(table, rows)


def _key_bytes(key) -> bytes:
    return key if isinstance(key, bytes) else str(key).encode("utf-8")


def write_key_file(keys, path: str) -> int:
    """Writes `keys` one per line to `path`, streamed in chunks; returns how many were written.

    Args:
      keys: a 1-D array (bytes or str) or a sequence of keys.
      path: the file to create.

    Raises:
      ValueError: a key holds a line break (it would split into two keys).
    """
    keys = np.asarray(keys)
    with open(path, "wb") as handle:
        for start in range(0, len(keys), _WRITE_CHUNK):
            chunk = [_key_bytes(key) for key in keys[start:start + _WRITE_CHUNK].tolist()]
            joined = b"\n".join(chunk)
            if joined.count(b"\n") != len(chunk) - 1 or b"\r" in joined:
                row = start + next(i for i, key in enumerate(chunk) if b"\n" in key or b"\r" in key)
                raise ValueError(f"key {keys[row]!r} (row {row}) holds a line break; keys are stored one per line")
            handle.write(joined + b"\n")
    return len(keys)


class KeyRowTable(tf.Module):
    """Raw string key -> row (its position in `keys`); unknown keys map to -1.

    The keys are written to a key file in a temporary directory owned by the module (removed
    with it); saving the module copies that file into the SavedModel's `assets/`.

    Args:
      keys: the keys, a 1-D array or sequence, unique, without line breaks (bytes or str).
      name: the table's name (also the key file's).
    """

    def __init__(self, keys, name: str) -> None:
        super().__init__(name=name)
        self._directory = tempfile.TemporaryDirectory(prefix=f"{name}-")
        path = os.path.join(self._directory.name, f"{name}.txt")
        self.size = write_key_file(keys, path)
        self.key_file = tf.saved_model.Asset(path)
        initializer = tf.lookup.TextFileInitializer(
            self.key_file, key_dtype=tf.string, key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            value_dtype=tf.int64, value_index=tf.lookup.TextFileIndex.LINE_NUMBER, vocab_size=self.size or None,
        )
        self.table = tf.lookup.StaticHashTable(initializer, default_value=-1)

    def lookup(self, keys: tf.Tensor) -> tf.Tensor:
        """Rows (int64, the shape of `keys`) of `keys`; -1 for unknown keys."""
        return self.table.lookup(keys)
