"""Serialisation of canonical rows into `tf.train.Example` bytes, fast enough for 10M rows.

A user's (and an item's) side features are the same on every row, so each is serialised once
as a block of `tf.train.Features` map entries (`user_block`, `item_block`). A row is the
Features message made of its user block, its item block, a cached rating entry and a timestamp
entry, wrapped as field 1 of `tf.train.Example`. Protocol buffers encode a map as repeated
entries, so concatenated entry blocks are one valid Features message; the result is
byte-for-byte what `tf.train.Example(...).SerializeToString()` gives for the same features
(a test checks this).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Union

import tensorflow as tf

from core import features

Value = Union[str, int, float]

_EXAMPLE_FEATURES_TAG = b"\x0a"  # tf.train.Example field 1 (features), length-delimited
_MAX_VARINT_BYTES = 10
_MAX_CACHED_RATINGS = 4096
_KINDS = features.feature_kinds()


def _varint(value: int) -> bytes:
    """Protocol-buffer varint of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _feature(name: str, value: Value) -> tf.train.Feature:
    kind = _KINDS[name]
    if kind == "bytes":
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode("utf-8")]))
    if kind == "int":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))


def features_block(values: Mapping[str, Value]) -> bytes:
    """Serialised `tf.train.Features` holding `values`, each as one value of its kind.

    Args:
      values: feature name (from `core.features`) -> value; the kind of each feature comes
        from `features.feature_kinds()`.

    Returns:
      The bytes of the Features message (a concatenation of its map entries).
    """
    feature_map = {name: _feature(name, value) for name, value in values.items()}
    return tf.train.Features(feature=feature_map).SerializeToString(deterministic=True)


def user_block(user_id: str, age: int, gender: str, occupation: str) -> bytes:
    """The serialised user features of one user (see `features_block`)."""
    return features_block({
        features.USER_ID: user_id,
        features.USER_AGE: age,
        features.USER_GENDER: gender,
        features.USER_OCCUPATION: occupation,
    })


def item_block(item_id: str, title: str, genres: str, year: int) -> bytes:
    """The serialised item features of one item (see `features_block`)."""
    return features_block({
        features.ITEM_ID: item_id,
        features.ITEM_TITLE: title,
        features.ITEM_GENRES: genres,
        features.ITEM_YEAR: year,
    })


def wrap_example(block: bytes) -> bytes:
    """A serialised `tf.train.Example` whose features are the entries in `block`."""
    return _EXAMPLE_FEATURES_TAG + _varint(len(block)) + block


class InteractionEncoder:
    """Serialises interaction rows from pre-serialised user and item blocks."""

    def __init__(self) -> None:
        self._ratings: Dict[float, bytes] = {}
        # The timestamp entry up to its varint, for each varint length: made by the stock
        # serialiser from a value of that length, minus the value's bytes.
        self._timestamp_prefix: List[bytes] = [b""]
        for length in range(1, _MAX_VARINT_BYTES):
            sample = 1 << (7 * (length - 1))
            encoded = features_block({features.TIMESTAMP: sample})
            self._timestamp_prefix.append(encoded[: len(encoded) - length])

    def encode(self, user: bytes, item: bytes, rating: float, timestamp: int) -> bytes:
        """One serialised interaction Example.

        Args:
          user: the user's `user_block`.
          item: the item's `item_block`.
          rating: the label (stored as float32).
          timestamp: Unix seconds, >= 0.

        Returns:
          The Example's bytes.
        """
        rating_entry = self._ratings.get(rating)
        if rating_entry is None:
            rating_entry = features_block({features.RATING: rating})
            if len(self._ratings) < _MAX_CACHED_RATINGS:
                self._ratings[rating] = rating_entry
        if timestamp < 0:
            raise ValueError(f"timestamp must be >= 0, got {timestamp}")
        value = _varint(timestamp)
        body = b"".join((user, item, rating_entry, self._timestamp_prefix[len(value)], value))
        return _EXAMPLE_FEATURES_TAG + _varint(len(body)) + body
