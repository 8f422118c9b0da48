"""Recent popularity by hand."""

import numpy as np
import pytest

from trainer.recent_popularity import SECONDS_PER_DAY, recent_popularity

DAY = SECONDS_PER_DAY
# Item 0: today and 2 days ago; item 1: 1 day ago; item 2: 4 days ago; item 3: never.
ITEMS = np.array([0, 0, 1, 2])
TIMES = np.array([10 * DAY, 8 * DAY, 9 * DAY, 6 * DAY])


def test_half_life_decay_by_hand():
    got = recent_popularity(ITEMS, TIMES, num_items=4, half_life_days=2.0)
    # weight 0.5 ** (age / 2): ages 0, 2 -> 1 + 0.5; age 1 -> 2 ** -0.5; age 4 -> 0.25.
    np.testing.assert_allclose(got, [1.5, 2 ** -0.5, 0.25, 0.0])


def test_window_counts_only_recent_interactions():
    got = recent_popularity(ITEMS, TIMES, num_items=4, window_days=2.0)
    np.testing.assert_allclose(got, [2.0, 1.0, 0.0, 0.0])


def test_reference_time_and_future_interactions():
    # now = day 9: item 0's day-10 interaction is in the future and counts as age 0.
    got = recent_popularity(ITEMS, TIMES, num_items=4, window_days=1.0, now=9 * DAY)
    np.testing.assert_allclose(got, [2.0, 1.0, 0.0, 0.0])


def test_exactly_one_of_half_life_and_window():
    with pytest.raises(ValueError, match="exactly one"):
        recent_popularity(ITEMS, TIMES, 4)
    with pytest.raises(ValueError, match="exactly one"):
        recent_popularity(ITEMS, TIMES, 4, half_life_days=1.0, window_days=1.0)
