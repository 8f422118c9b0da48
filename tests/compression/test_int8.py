"""Row-wise int8 tables: quantisation by hand, the error bound, masks, and save/load."""

from __future__ import annotations

import numpy as np
import pytest

from compression import int8


def test_quantize_rows_by_hand():
    values, scale = int8.quantize_rows(np.array([[1.0, -0.5, 0.25], [0.0, 0.0, 0.0]]))
    assert scale.tolist() == pytest.approx([1 / 127, 0.0])
    # 1 -> 127; -0.5 * 127 = -63.5 -> -64 (round half to even); 0.25 * 127 = 31.75 -> 32.
    assert values.tolist() == [[127, -64, 32], [0, 0, 0]]
    assert values.dtype == np.int8


def test_dequantised_tables_stay_within_half_a_step():
    table = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    table[3] = 0.0
    table[7, ::2] = 0.0  # pruned weights stay exact zeros
    values, scale = int8.quantize_rows(table)
    error = np.abs(int8.dequantize_rows(values, scale) - table)
    bound = np.abs(table).max(axis=1) / 127 / 2
    assert np.all(error <= bound[:, None] + 1e-7)
    assert np.all(int8.dequantize_rows(values, scale)[7, ::2] == 0.0)


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match="2-D"):
        int8.quantize_rows(np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        int8.quantize_rows(np.array([[np.nan, 1.0]]))


def test_layer_looks_up_dequantised_rows_and_keeps_the_padding_mask(tmp_path):
    import tensorflow as tf

    from trainer.layers import MaskedMean

    table = np.array([[9.0, 9.0], [1.0, -1.0], [0.5, 0.25]], np.float32)
    tokens = tf.keras.Input(shape=(3,), dtype=tf.int64)
    layer = int8.Int8Embedding(3, 2, mask_zero=True, name="bag_embedding")
    model = tf.keras.Model(tokens, MaskedMean()(layer(tokens)))
    layer.set_table(table)
    out = model(np.array([[1, 2, 0], [2, 0, 0]])).numpy()
    # Row 0 (padding) is masked: means of rows {1, 2} and {2} only, within the int8 step.
    np.testing.assert_allclose(out, [[0.75, -0.375], [0.5, 0.25]], atol=1 / 127)
    path = str(tmp_path / "bag")
    model.save(path)
    reloaded = tf.keras.models.load_model(path, compile=False)
    assert isinstance(reloaded.layers[1], int8.Int8Embedding)
    np.testing.assert_array_equal(reloaded(np.array([[1, 2, 0]])).numpy(), out[:1])
    served = tf.saved_model.load(path).signatures["serving_default"]
    np.testing.assert_array_equal(list(served(tf.constant([[1, 2, 0]], tf.int64)).values())[0].numpy(), out[:1])


def test_quantize_embeddings_replaces_every_embedding_of_a_tower():
    import tensorflow as tf

    from trainer import towers

    vocab = towers.Vocabularies(users=20, items=30, genders=3, occupations=4, genres=8,
                                title_tokens=40, age_buckets=7, year_buckets=12)
    tower = towers.build_candidate_tower(vocab, 8, (16,))
    quantized = int8.quantize_embeddings(tower)
    embeddings = [layer for layer in tower.layers if type(layer) is tf.keras.layers.Embedding]
    assert int8.count_int8_layers(quantized) == len(embeddings) == 4
    for layer in embeddings:
        got = quantized.get_layer(layer.name).table()
        want = layer.get_weights()[0]
        assert np.all(np.abs(got - want) <= np.abs(want).max(axis=1, keepdims=True) / 254 + 1e-7)
    rng = np.random.default_rng(1)
    feats = {name: rng.integers(0, 6, size=(5,) + tuple(i.shape[1:])) for name, i in zip(tower.input_names, tower.inputs)}
    np.testing.assert_allclose(quantized(feats).numpy(), tower(feats).numpy(), atol=0.02)


def test_int8_matrix_converts_to_its_dequantised_float_matrix():
    import tensorflow as tf

    matrix = np.array([[1.0, 2.0], [-4.0, 0.5]], np.float32)
    stored = int8.Int8Matrix(matrix)
    assert stored.values.dtype == tf.int8
    product = tf.matmul(tf.constant([[1.0, 1.0]]), stored, transpose_b=True).numpy()
    np.testing.assert_allclose(product, [[3.0, -3.5]], atol=4 / 127)


def test_the_marker_tells_build_serving_model_which_serving_model_to_build(tmp_path):
    from compression.serving_variants import Int8ServingModel, serving_model_class, write_marker
    from trainer.serving_model import ServingModel

    assert serving_model_class(str(tmp_path)) is ServingModel  # a plain Trainer model
    write_marker(str(tmp_path), "pruned_int8", True, "smallest within budget")
    assert serving_model_class(str(tmp_path)) is Int8ServingModel
    write_marker(str(tmp_path), "pruned", False, "smallest within budget")
    assert serving_model_class(str(tmp_path)) is ServingModel
    (tmp_path / "compression.json").write_text("[1]")
    with pytest.raises(ValueError, match="int8_candidate_embeddings"):
        serving_model_class(str(tmp_path))
