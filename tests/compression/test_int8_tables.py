"""The int8 serving variant quantizes every float matrix it serves, not only the embeddings."""

from __future__ import annotations

import dataclasses
import types

import numpy as np

from compression import int8
from core import features as F


def test_int8_matrix_gathers_dequantised_rows():
    import tensorflow as tf

    matrix = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    stored = int8.Int8Matrix(matrix)
    rows = tf.constant([[5, 0], [2, 2]])
    np.testing.assert_allclose(stored.gather(rows).numpy(), tf.gather(stored.dequantize(), rows).numpy())
    np.testing.assert_allclose(stored.gather(rows).numpy(), matrix[rows.numpy()], atol=np.abs(matrix).max() / 254)


def _with_item_item(tables, neighbours: int, seed: int = 0):
    from trainer.item_item_tables import ItemItemTables
    from trainer.item_neighbours import COOCCURRENCE

    rng = np.random.default_rng(seed)
    n_items, n_rows = len(tables.item_keys), len(tables.user_keys) + 1
    recent = rng.integers(-1, n_items, (n_rows, 4)).astype(np.int32)
    recent[-1] = -1  # the unknown user has no history
    item_item = ItemItemTables(
        neighbour_ids=rng.integers(0, n_items, (n_items, neighbours)).astype(np.int32),
        neighbour_weights=rng.random((n_items, neighbours)).astype(np.float32),
        method=COOCCURRENCE, recent_rows=recent, weights_dtype="float32")
    return dataclasses.replace(tables, item_item=item_item)


def test_int8_serving_model_quantizes_the_item_item_weights_and_scores_as_the_float_model():
    import tensorflow as tf

    from benchmarks import serving_tables
    from compression.serving_variants import Int8ServingModel
    from trainer.serving_model import ServingModel

    tables = _with_item_item(serving_tables.synthetic_tables(300, 200, seen=2), neighbours=8)
    plain = serving_tables.synthetic_model(tables, dim=4, model_class=ServingModel)
    quantized = serving_tables.synthetic_model(tables, dim=4, model_class=Int8ServingModel)
    assert isinstance(quantized.item_item.neighbour_weights, int8.Int8Matrix)
    assert quantized.item_item.neighbour_weights.values.dtype == tf.int8
    users = tf.constant([f"u{u}" for u in range(0, 300, 7)])
    expected = plain.retrieve_item_item(users)[F.SERVING_OUTPUT_SCORES].numpy()
    served = quantized.retrieve_item_item(users)[F.SERVING_OUTPUT_SCORES].numpy()
    finite = np.isfinite(expected)
    assert finite.any() and np.array_equal(finite, np.isfinite(served))
    # each score sums at most 4 history items' weights, each within half a step (1/254 of its row max)
    np.testing.assert_allclose(served[finite], expected[finite], atol=4 / 254)


def test_quantize_float_tables_stores_the_ease_block_as_int8():
    import tensorflow as tf

    from compression.serving_variants import quantize_float_tables
    from trainer.ease_block import EaseBlock, EaseBlockTables

    rng = np.random.default_rng(1)
    weights = rng.standard_normal((5, 5)).astype(np.float32)
    block = EaseBlock(EaseBlockTables(np.array([4, 0, 7, 2, 9], np.int32), weights), n_items=10)
    history = tf.constant([[4, 7, -1], [9, -1, -1]])
    expected = block.scores(history).numpy()
    module = types.SimpleNamespace(candidate_embeddings=tf.Variable(np.ones((10, 2), np.float32)),
                                   item_item=None, ease_block=block)
    quantize_float_tables(module)
    assert isinstance(block.weights, int8.Int8Matrix) and isinstance(module.candidate_embeddings, int8.Int8Matrix)
    served = block.scores(history).numpy()
    assert np.array_equal(np.isfinite(served), np.isfinite(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(served[finite], expected[finite], atol=2 * np.abs(weights).max() / 254)
