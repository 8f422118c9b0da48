"""`inputs.array_dataset`: batches gathered from in-memory arrays."""

from __future__ import annotations

import numpy as np
import pytest

N = 23  # 3 batches of 8: the last one partial (7 examples)


def _arrays(n: int = N):
    ids = np.arange(n, dtype=np.int64)
    return {
        "id": ids,
        "history": ids[:, None] * np.array([1, 2, 3], np.int64),  # rows must stay aligned with ids
        "score": ids.astype(np.float32) / 2,
        "name": np.array([f"u{i}".encode() for i in ids], dtype=object),
    }


def _epoch(dataset):
    return [{name: value.numpy() for name, value in batch.items()} for batch in dataset]


def _ids(batches):
    return np.concatenate([batch["id"] for batch in batches])


def test_element_structure_is_that_of_batched_slices():
    import tensorflow as tf

    from trainer.inputs import array_dataset

    arrays = _arrays()
    expected = tf.data.Dataset.from_tensor_slices(arrays).batch(8).element_spec
    for shuffle in (False, True):
        dataset = array_dataset(arrays, 8, shuffle=shuffle, seed=1)
        assert dataset.element_spec == expected
        assert int(dataset.cardinality()) == 3
    assert int(array_dataset(arrays, 8, drop_remainder=True).cardinality()) == 2


def test_unshuffled_keeps_order_and_the_last_partial_batch():
    from trainer.inputs import array_dataset

    arrays = _arrays()
    batches = _epoch(array_dataset(arrays, 8))
    assert [len(b["id"]) for b in batches] == [8, 8, 7]
    np.testing.assert_array_equal(_ids(batches), arrays["id"])
    for name, value in arrays.items():
        np.testing.assert_array_equal(np.concatenate([b[name] for b in batches]), value)


def test_drop_remainder_drops_the_last_partial_batch():
    from trainer.inputs import array_dataset

    batches = _epoch(array_dataset(_arrays(), 8, shuffle=True, seed=2, drop_remainder=True))
    assert [len(b["id"]) for b in batches] == [8, 8]
    assert len(set(_ids(batches))) == 16


def test_shuffled_epochs_visit_every_example_once_in_a_new_order():
    from trainer.inputs import array_dataset

    arrays = _arrays()
    dataset = array_dataset(arrays, 8, shuffle=True, seed=3)
    epochs = [_epoch(dataset) for _ in range(3)]
    orders = [_ids(batches) for batches in epochs]
    for batches, order in zip(epochs, orders):
        assert [len(b["id"]) for b in batches] == [8, 8, 7]
        np.testing.assert_array_equal(np.sort(order), arrays["id"])  # every example exactly once
        for batch in batches:  # every feature gathered for the same examples
            np.testing.assert_array_equal(batch["history"], arrays["history"][batch["id"]])
            np.testing.assert_array_equal(batch["score"], arrays["score"][batch["id"]])
            np.testing.assert_array_equal(batch["name"], arrays["name"][batch["id"]])
    assert not np.array_equal(orders[0], arrays["id"]), "shuffled"
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2]), "reshuffled"


def test_shuffle_with_a_seed_is_deterministic():
    from trainer.inputs import array_dataset

    def orders(seed):
        dataset = array_dataset(_arrays(), 8, shuffle=True, seed=seed)
        return [_ids(_epoch(dataset)) for _ in range(2)]

    first, again, other = orders(5), orders(5), orders(6)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_errors_are_clear():
    from trainer.inputs import array_dataset

    with pytest.raises(ValueError, match="same length"):
        array_dataset({"a": np.zeros(3), "b": np.zeros(4)}, 2)
    with pytest.raises(ValueError, match="at least one"):
        array_dataset({}, 2)
    with pytest.raises(ValueError, match="batch_size"):
        array_dataset(_arrays(), 0)


def test_no_examples_gives_no_batches():
    from trainer.inputs import array_dataset

    assert _epoch(array_dataset(_arrays(0), 8, shuffle=True)) == []
