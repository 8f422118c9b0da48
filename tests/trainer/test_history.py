"""Histories by hand on a tiny interaction log."""

import numpy as np

from trainer import history

# user, item, timestamp: user 0 rates items 5, 3, 7 at t=10, 30, 20; user 1 rates 2 then 2 again.
USERS = np.array([0, 1, 0, 0, 1])
ITEMS = np.array([5, 2, 3, 7, 4])
TIMES = np.array([10, 5, 30, 20, 6])


def test_example_history_holds_only_earlier_items_newest_first():
    got = history.example_histories(USERS, ITEMS, TIMES, length=3)
    # Items are shifted by one (0 pads). User 0 in time order: 5 (t10), 7 (t20), 3 (t30).
    expected = np.array([
        [0, 0, 0],        # 5 at t10: nothing before
        [0, 0, 0],        # user 1, item 2 at t5: nothing before
        [8, 6, 0],        # 3 at t30: 7 then 5
        [6, 0, 0],        # 7 at t20: 5
        [3, 0, 0],        # user 1, item 4 at t6: item 2
    ])
    np.testing.assert_array_equal(got, expected)


def test_example_history_is_cut_to_length():
    got = history.example_histories(USERS, ITEMS, TIMES, length=1)
    np.testing.assert_array_equal(got[:, 0], [0, 0, 8, 6, 3])


def test_latest_history_per_user_and_empty_unknown_row():
    got = history.latest_histories(USERS, ITEMS, TIMES, n_users=3, length=2)
    expected = np.array([
        [4, 8],   # user 0: 3 (t30), then 7 (t20)
        [5, 3],   # user 1: 4 (t6), then 2 (t5)
        [0, 0],   # user 2 has no interactions
        [0, 0],   # unknown-user row
    ])
    np.testing.assert_array_equal(got, expected)
