"""Reading canonical TFRecord examples into numpy columns."""

from __future__ import annotations


import numpy as np
import pytest
import tensorflow as tf

from core import features as F
from core.tfrecord_columns import read_columns


def _write(path, rows):
    with tf.io.TFRecordWriter(str(path), tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        for user, item, rating in rows:
            example = tf.train.Example(features=tf.train.Features(feature={
                F.USER_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[user.encode()])),
                F.ITEM_ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[item.encode()])),
                F.RATING: tf.train.Feature(float_list=tf.train.FloatList(value=[rating])),
            }))
            writer.write(example.SerializeToString())


def test_columns_of_every_matching_file_in_order(tmp_path):
    _write(tmp_path / "a.gz", [("u1", "i1", 4.0), ("u2", "i2", 3.5)])
    _write(tmp_path / "b.gz", [("u3", "i1", 1.0)])
    columns = read_columns([str(tmp_path / "*.gz")], (F.USER_ID, F.RATING), decode_strings=True)
    assert columns[F.USER_ID].tolist() == ["u1", "u2", "u3"]
    np.testing.assert_allclose(columns[F.RATING], [4.0, 3.5, 1.0])
    raw = read_columns([str(tmp_path / "a.gz")], (F.ITEM_ID,))
    assert raw[F.ITEM_ID].tolist() == [b"i1", b"i2"]


def test_no_matching_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no examples match"):
        read_columns([str(tmp_path / "*.gz")], (F.USER_ID,))
    empty = read_columns([str(tmp_path / "*.gz")], (F.USER_ID, F.RATING), required=False)
    assert len(empty[F.USER_ID]) == 0 and empty[F.RATING].dtype == np.float32


def test_non_ascii_strings_decode_as_utf8(tmp_path):
    _write(tmp_path / "a.gz", [("Zoë", "Amélie (2001)", 4.0), ("u2", "東京物語", 3.5)])
    columns = read_columns([str(tmp_path / "a.gz")], (F.USER_ID, F.ITEM_ID), decode_strings=True)
    assert columns[F.USER_ID].tolist() == ["Zoë", "u2"]
    assert columns[F.ITEM_ID].tolist() == ["Amélie (2001)", "東京物語"]
