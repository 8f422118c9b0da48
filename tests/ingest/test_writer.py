"""Example encoding, the span writer (rolled part files, atomic publish), catalog and reader."""

import pathlib

import pytest
import tensorflow as tf

from core import features
from ingest import encoding, writer
from ingest.errors import DataError
from tests.ingest import helpers


def _stock_example(values):
    feature = {}
    for name, value in values.items():
        kind = features.feature_kinds()[name]
        if kind == "bytes":
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))
        elif kind == "int":
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
    return tf.train.Example(features=tf.train.Features(feature=feature))


@pytest.mark.parametrize("timestamp", [0, 127, 128, 964982703, 2**40 + 5])
def test_encoded_interaction_equals_the_stock_example(timestamp):
    row = helpers.interaction(
        "u1", 24, "M", "student", "i9", "Crème Brûlée, Part 2", "Drama|Comedy", 2001, 3.5, timestamp)
    user = encoding.user_block("u1", 24, "M", "student")
    item = encoding.item_block("i9", "Crème Brûlée, Part 2", "Drama|Comedy", 2001)
    encoder = encoding.InteractionEncoder()
    encoded = encoder.encode(user, item, 3.5, timestamp)
    assert encoder.encode(user, item, 3.5, timestamp) == encoded  # the cached rating entry gives the same bytes
    assert tf.train.Example.FromString(encoded) == _stock_example(row)
    parsed = tf.io.parse_single_example(encoded, {
        features.TIMESTAMP: tf.io.FixedLenFeature([], tf.int64),
        features.ITEM_TITLE: tf.io.FixedLenFeature([], tf.string),
        features.RATING: tf.io.FixedLenFeature([], tf.float32),
    })
    assert int(parsed[features.TIMESTAMP]) == timestamp
    assert parsed[features.ITEM_TITLE].numpy().decode("utf-8") == "Crème Brûlée, Part 2"
    assert float(parsed[features.RATING]) == 3.5


def test_negative_timestamp_is_refused():
    with pytest.raises(ValueError, match="timestamp"):
        encoding.InteractionEncoder().encode(b"", b"", 1.0, -1)


def _example(i):
    return encoding.wrap_example(encoding.features_block({features.ITEM_ID: f"i{i}", features.ITEM_YEAR: i}))


def test_span_writer_rolls_files_and_always_writes_each_split(tmp_path):
    with writer.SpanWriter(str(tmp_path), span=3, rows_per_file=3) as span_writer:
        span_writer.write_all(features.TRAIN_SPLIT, (_example(i) for i in range(7)))
    train = sorted((tmp_path / "interactions" / "span-3" / features.TRAIN_SPLIT).iterdir())
    assert [p.name for p in train] == ["part-00000.tfrecord.gz", "part-00001.tfrecord.gz", "part-00002.tfrecord.gz"]
    assert [len(list(writer.read_examples(str(p)))) for p in train] == [3, 3, 1]
    eval_files = list((tmp_path / "interactions" / "span-3" / features.EVAL_SPLIT).iterdir())
    assert [p.name for p in eval_files] == ["part-00000.tfrecord.gz"]
    assert list(writer.read_examples(writer.split_pattern(str(tmp_path), 3, features.EVAL_SPLIT))) == []
    rows = list(writer.read_examples(writer.split_pattern(str(tmp_path), 3, features.TRAIN_SPLIT)))
    assert [r[features.ITEM_YEAR] for r in rows] == list(range(7))
    assert span_writer.rows_written == {features.TRAIN_SPLIT: 7, features.EVAL_SPLIT: 0}


def test_rewriting_a_span_replaces_it_whole(tmp_path):
    with writer.SpanWriter(str(tmp_path), 0, rows_per_file=1) as span_writer:
        span_writer.write_all(features.TRAIN_SPLIT, (_example(i) for i in range(4)))
    with writer.SpanWriter(str(tmp_path), 0, rows_per_file=1) as span_writer:
        span_writer.write(features.TRAIN_SPLIT, _example(9))
    rows = list(writer.read_examples(writer.split_pattern(str(tmp_path), 0, features.TRAIN_SPLIT)))
    assert [r[features.ITEM_YEAR] for r in rows] == [9]
    assert sorted(p.name for p in (tmp_path / "interactions").iterdir()) == ["span-0"]


def test_a_failed_write_publishes_nothing_and_keeps_the_old_span(tmp_path):
    with writer.SpanWriter(str(tmp_path), 0) as span_writer:
        span_writer.write(features.TRAIN_SPLIT, _example(1))
    with pytest.raises(RuntimeError):
        with writer.SpanWriter(str(tmp_path), 0) as span_writer:
            span_writer.write(features.TRAIN_SPLIT, _example(2))
            raise RuntimeError("source broke")
    rows = list(writer.read_examples(writer.split_pattern(str(tmp_path), 0, features.TRAIN_SPLIT)))
    assert [r[features.ITEM_YEAR] for r in rows] == [1]
    assert sorted(p.name for p in (tmp_path / "interactions").iterdir()) == ["span-0"]


def test_unknown_split_is_refused(tmp_path):
    with writer.SpanWriter(str(tmp_path), 0) as span_writer:
        with pytest.raises(ValueError, match="unknown split"):
            span_writer.write("test", _example(1))


def _catalog_entry(item, title):
    return encoding.wrap_example(encoding.item_block(item, title, features.NO_GENRES, features.UNKNOWN_INT))


def test_catalog_merge_keeps_old_items_and_takes_new_features(tmp_path):
    writer.write_catalog(str(tmp_path), {"a": _catalog_entry("a", "old A"), "b": _catalog_entry("b", "old B")})
    rows = writer.write_catalog(str(tmp_path), {"b": _catalog_entry("b", "new B"), "c": _catalog_entry("c", "C")},
                                keep_existing=True)
    assert rows == 3
    catalog = helpers.read_catalog(tmp_path)
    assert {k: v[features.ITEM_TITLE] for k, v in catalog.items()} == {"a": "old A", "b": "new B", "c": "C"}
    writer.write_catalog(str(tmp_path), {"z": _catalog_entry("z", "Z")})
    assert list(helpers.read_catalog(tmp_path)) == ["z"]


def test_read_examples_with_no_matching_file_names_the_pattern(tmp_path):
    pattern = str(pathlib.Path(tmp_path) / "nothing" / "*.gz")
    with pytest.raises(DataError, match="no file matches"):
        list(writer.read_examples(pattern))
