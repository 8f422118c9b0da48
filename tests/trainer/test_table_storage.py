"""Serving tables out of the graph: `saved_model.pb` keeps its size whatever the table sizes.

The model is the real `ServingModel` over synthetic tables and tiny towers
(`benchmarks.serving_tables`), exported with `trainer.export.export_serving`.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from benchmarks import serving_tables
from core import features as F
from trainer import table_storage


def test_narrowest_int_dtype_fits_the_values():
    assert table_storage.narrowest_int_dtype(np.array([0, 127])) == np.int8
    assert table_storage.narrowest_int_dtype(np.array([-129, 5])) == np.int16
    assert table_storage.narrowest_int_dtype(np.array([0, 40_000])) == np.int32
    assert table_storage.narrowest_int_dtype(np.array([0, 2**31])) == np.int64


def test_table_variable_narrows_integers_and_keeps_strings_and_floats():
    import tensorflow as tf

    ints = table_storage.table_variable(np.array([[0, 300]], np.int64), "ints")
    assert ints.dtype == tf.int16 and not ints.trainable
    assert table_storage.table_variable(np.array([0.5], np.float64), "floats").dtype == tf.float64
    strings = table_storage.table_variable(np.array(["é", "b"], object), "strings")
    assert strings.numpy().tolist() == ["é".encode(), b"b"]


def test_key_row_table_maps_keys_to_rows_and_rejects_line_breaks(tmp_path):
    import tensorflow as tf

    table = table_storage.KeyRowTable(np.array([b"a", b"b", b"c"]), "keys")
    assert table.lookup(tf.constant([["c", "x"], ["a", "b"]])).numpy().tolist() == [[2, -1], [0, 1]]
    with pytest.raises(ValueError, match=r"row 1\) holds a line break"):
        table_storage.KeyRowTable([b"a", b"b\nc"], "bad")


def _export(users: int, items: int, path: str):
    from trainer import export

    module = serving_tables.synthetic_model(serving_tables.synthetic_tables(users, items, seen=3), dim=8)
    export.export_serving(module, path)
    return module


def test_saved_model_pb_does_not_grow_with_the_tables(tmp_path):
    import tensorflow as tf

    small, large = str(tmp_path / "small"), str(tmp_path / "large")
    _export(1_000, 500, small)
    module = _export(50_000, 20_000, large)

    def pb(path):
        return os.path.getsize(os.path.join(path, "saved_model.pb"))

    variables = {p: serving_tables.directory_bytes(os.path.join(p, "variables")) for p in (small, large)}
    assert variables[large] > 10 * variables[small]  # the tables grew ...
    assert abs(pb(large) - pb(small)) < 2_000  # ... the graph did not (shape attributes only)
    assert module.user_features[F.USER_HISTORY].dtype == tf.int16  # item rows + 1 <= 20,000
    assert module.seen_values.dtype == tf.int16 and module.seen_row_splits.dtype == tf.int32

    tables = serving_tables.synthetic_tables(50_000, 20_000, seen=3)
    users = [49_999, 0, 50_000]  # the last row is the unknown user's (nothing seen)
    splits, values = tables.seen_row_splits, tables.seen_values
    assert module._seen_rows(tf.constant(users, tf.int64)).to_list() == [
        values[splits[u]:splits[u + 1]].tolist() for u in users]

    loaded = tf.saved_model.load(large)
    answer = loaded.signatures[F.SERVING_SIGNATURE](user_id=tf.constant(["u49999", "nobody"]))
    items, scores = answer[F.SERVING_OUTPUT_ITEMS].numpy(), answer[F.SERVING_OUTPUT_SCORES].numpy()
    assert items.shape == (2, serving_tables.TOP_K) and scores.dtype == np.float32
    assert not set(items[0]) & set(tables.item_keys[values[splits[49_999]:splits[50_000]]])
    assert items[1].tolist() == tables.item_keys[tables.popular_rows].tolist()  # unknown user: popular items
    looked_up = loaded.signatures["lookup_items"](item_id=tf.constant(["i19999", "nope"]))
    assert looked_up[F.ITEM_TITLE].numpy().tolist() == [b"title 19999", b""]
