"""The exported item-item source against a numpy reference, and its SavedModel round trip."""

import os

import numpy as np
import pytest
import tensorflow as tf

from trainer.item_item_source import CANDIDATE_ROWS, CANDIDATE_SCORES, ItemItemSource, narrowest_id_dtype


def _random_table(rng, num_items, k):
    ids = np.stack([rng.choice(num_items, size=k, replace=False) for _ in range(num_items)]).astype(np.int32)
    return ids, rng.normal(size=(num_items, k)).astype(np.float32)


def _random_histories(rng, batch, length, num_items):
    history = rng.integers(0, num_items, size=(batch, length))
    lengths = rng.integers(0, length + 1, size=batch)
    history[np.arange(length)[None, :] >= lengths[:, None]] = -1  # pad the tail
    return history


def _reference(ids, weights, history):
    """Scores, reach flags and candidates with loops: sum over history items of their rows."""
    num_items = ids.shape[0]
    scores = np.zeros((len(history), num_items))
    reached = np.zeros((len(history), num_items), bool)
    for b, row in enumerate(history):
        for item in row[row >= 0]:
            for neighbour, weight in zip(ids[item], weights[item]):
                scores[b, neighbour] += weight
                reached[b, neighbour] = True
    candidates = np.where(reached, scores, -np.inf)
    for b, row in enumerate(history):
        candidates[b, row[row >= 0]] = -np.inf
    return scores, reached, candidates


def test_scores_and_candidates_equal_the_numpy_reference():
    rng = np.random.default_rng(11)
    ids, weights = _random_table(rng, 50, 6)
    history = _random_histories(rng, 8, 9, 50)
    source = ItemItemSource(ids, weights, top_n=12)
    expected_scores, expected_reached, expected_candidates = _reference(ids, weights, history)
    scores, reached = source.scores(tf.constant(history))
    np.testing.assert_allclose(scores.numpy(), expected_scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(reached.numpy(), expected_reached)
    top = source.candidates(tf.constant(history, tf.int64))
    expected_top = -np.sort(-expected_candidates, axis=1)[:, :12]
    np.testing.assert_allclose(top[CANDIDATE_SCORES].numpy(), expected_top, rtol=1e-5, atol=1e-5)
    rows = top[CANDIDATE_ROWS].numpy()
    finite = np.isfinite(expected_top)
    assert finite.sum() > 0 and (~finite).sum() > 0  # both real candidates and empty slots
    picked = np.take_along_axis(expected_candidates, rows, axis=1)
    np.testing.assert_allclose(picked[finite], expected_top[finite], rtol=1e-5, atol=1e-5)


def test_exclude_mask_removes_more_items():
    ids = np.array([[1, 2], [0, 2], [0, 1]], np.int32)
    weights = np.array([[3.0, 1.0], [1.0, 2.0], [1.0, 1.0]], np.float32)
    source = ItemItemSource(ids, weights, top_n=2)
    history = tf.constant([[0, -1]], tf.int64)
    plain = source.top(history)
    np.testing.assert_array_equal(plain[CANDIDATE_ROWS].numpy(), [[1, 2]])
    np.testing.assert_allclose(plain[CANDIDATE_SCORES].numpy(), [[3.0, 1.0]])
    masked = source.top(history, exclude=tf.constant([[False, True, False]]))
    assert masked[CANDIDATE_ROWS].numpy()[0, 0] == 2
    np.testing.assert_allclose(masked[CANDIDATE_SCORES].numpy(), [[1.0, -np.inf]])


def test_float16_weights_stay_close_to_the_reference():
    rng = np.random.default_rng(2)
    ids, weights = _random_table(rng, 30, 4)
    history = _random_histories(rng, 5, 6, 30)
    source = ItemItemSource(ids, weights, top_n=5, weights_dtype="float16")
    assert source.neighbour_weights.dtype == tf.float16
    scores, _ = source.scores(tf.constant(history))
    np.testing.assert_allclose(scores.numpy(), _reference(ids, weights, history)[0], atol=1e-2)


@pytest.mark.parametrize("num_items, dtype", [(128, np.int8), (129, np.int16), (32_769, np.int32)])
def test_ids_use_the_narrowest_integer_type(num_items, dtype):
    assert narrowest_id_dtype(num_items) == dtype


def test_table_is_stored_with_its_narrow_type():
    ids, weights = _random_table(np.random.default_rng(0), 300, 3)
    assert ItemItemSource(ids, weights, top_n=3).neighbour_ids.dtype == tf.int16


def test_bad_tables_are_refused():
    with pytest.raises(ValueError, match=r"must lie in \[0, 2\)"):
        ItemItemSource(np.array([[1], [2]]), np.ones((2, 1)), top_n=1)
    with pytest.raises(ValueError, match="must be equal"):
        ItemItemSource(np.zeros((2, 1), int), np.ones((2, 2)), top_n=1)


def _save(source, path):
    tf.saved_model.save(source, str(path), signatures={"serving_default": source.candidates.get_concrete_function()})
    return str(path)


def test_save_load_gives_the_same_candidates(tmp_path):
    rng = np.random.default_rng(4)
    ids, weights = _random_table(rng, 40, 5)
    source = ItemItemSource(ids, weights, top_n=7)
    history = tf.constant(_random_histories(rng, 6, 8, 40), tf.int64)
    loaded = tf.saved_model.load(_save(source, tmp_path / "model"))
    before = source.candidates(history)
    after = loaded.signatures["serving_default"](history=history)
    for key in (CANDIDATE_ROWS, CANDIDATE_SCORES):
        np.testing.assert_array_equal(after[key].numpy(), before[key].numpy())


def test_saved_model_graph_does_not_grow_with_the_table(tmp_path):
    rng = np.random.default_rng(6)
    sizes = {}
    for name, (num_items, k) in {"small": (50, 4), "large": (40_000, 20)}.items():
        path = _save(ItemItemSource(*_random_table(rng, num_items, k), top_n=10), tmp_path / name)
        variables = sum(os.path.getsize(os.path.join(path, "variables", f)) for f in os.listdir(os.path.join(path, "variables")))
        sizes[name] = (os.path.getsize(os.path.join(path, "saved_model.pb")), variables)
    assert sizes["large"][1] > sizes["small"][1] + 40_000 * 20 * 6  # ids (int32) and weights stored
    assert abs(sizes["large"][0] - sizes["small"][0]) < 1_000, sizes
