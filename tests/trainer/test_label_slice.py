"""The label slice: newest share on temporal runs, a stable hashed share on random runs."""

import numpy as np
import pytest

from trainer.label_slice import label_slice_mask


def test_temporal_slice_is_the_newest_share():
    timestamps = np.array([5, 1, 9, 3, 7, 2, 8, 4, 6, 10])
    mask = label_slice_mask(np.zeros(10), np.arange(10), timestamps, "time", fraction=0.3)
    assert sorted(timestamps[mask]) == [8, 9, 10]


def test_random_slice_share_and_stability():
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 500, 20000), rng.integers(0, 2000, 20000)
    mask = label_slice_mask(users, items, np.zeros(20000), "random", fraction=0.2)
    assert 0.18 < mask.mean() < 0.22
    again = label_slice_mask(users[::-1], items[::-1], np.zeros(20000), "random", fraction=0.2)
    np.testing.assert_array_equal(again, mask[::-1])  # decided by the pair, not by its position


@pytest.mark.parametrize("split,fraction", [("hash", 0.2), ("time", 0.0), ("random", 1.0)])
def test_bad_arguments(split, fraction):
    with pytest.raises(ValueError):
        label_slice_mask(np.zeros(3), np.zeros(3), np.zeros(3), split, fraction)
