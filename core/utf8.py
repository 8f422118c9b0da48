"""Text arrays as UTF-8: ids, titles and genres may hold any Unicode character.

numpy's `astype(bytes)` / `astype(str)` encode and decode as ASCII, so a non-ASCII id (a
MovieLens title such as "Amélie", an id from a user's CSV) would stop the run. These two
functions convert element-wise with UTF-8 and keep the array's shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def to_bytes(values: Any) -> np.ndarray:
    """`values` (str, bytes or anything `str()` can print) as a numpy bytes array, UTF-8 encoded."""
    array = np.asarray(values)
    if array.dtype.kind == "S":
        return array
    if array.dtype.kind == "U":
        return np.char.encode(array, "utf-8")
    flat = [v if isinstance(v, bytes) else (v if isinstance(v, str) else str(v)).encode("utf-8")
            for v in array.ravel()]
    return np.array(flat, dtype=bytes).reshape(array.shape) if flat else np.zeros(array.shape, dtype=bytes)


def to_str(values: Any) -> np.ndarray:
    """`values` (bytes, str or anything `str()` can print) as a numpy str array, UTF-8 decoded.

    Raises:
      UnicodeDecodeError: a bytes value is not valid UTF-8.
    """
    array = np.asarray(values)
    if array.dtype.kind == "U":
        return array
    if array.dtype.kind == "S":
        return np.char.decode(array, "utf-8")
    flat = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in array.ravel()]
    return np.array(flat, dtype=str).reshape(array.shape) if flat else np.zeros(array.shape, dtype=str)
