"""What unknown users are served: all-time or recent popularity, chosen on the label slice."""

from types import SimpleNamespace

import numpy as np
import pytest

from trainer.candidate_sources import cold_start_list, recent_popularity
from trainer.ranker_training import COLD_START_MARGIN, MIN_NEW_USERS, _cold_start_half_life

HALF_LIVES = (0.01, 0.03, 0.1, 0.3, 1.0)


def test_cold_start_list_by_hand():
    # Item 0: three interactions long ago (t = 0); item 1: one today (t = 1); item 2: one at t = 0.5.
    rows = np.array([0, 0, 0, 1, 2])
    times = np.array([0.0, 0.0, 0.0, 1.0, 0.5])
    order, scores = cold_start_list(rows, times, 4, None)
    assert order.tolist() == [0, 1, 2, 3]  # ties (items 1 and 2) keep catalog order
    np.testing.assert_allclose(scores, [0.6, 0.2, 0.2, 0.0])
    order, scores = cold_start_list(rows, times, 4, 0.25)
    # weights 0.5 ** (age / 0.25): item 0: 3 / 16; item 1: 1; item 2: 1 / 4; shares of 1.4375.
    assert order.tolist() == [1, 2, 0, 3]
    np.testing.assert_allclose(scores, np.array([1.0, 0.25, 3 / 16, 0.0]) / 1.4375, rtol=1e-6)
    assert order.dtype == np.int32 and scores.dtype == np.float32


def _world(label_items, new_users=30, old_users=5):
    """Items 0-19: 10 interactions each long ago (t = 0); items 20-39: 3 each at t = 1.

    Old users (fit-part histories of items 40-44) come first, then users without fit-part
    interactions; every label user's labels are `label_items`.
    """
    rows = np.r_[np.repeat(np.arange(20), 10), np.repeat(np.arange(20, 40), 3)]
    times = np.r_[np.zeros(200), np.ones(60)]
    n_users = old_users + new_users
    lengths = np.r_[np.full(old_users, 5), np.zeros(new_users + 1, int)]
    fit = SimpleNamespace(seen_row_splits=np.r_[0, np.cumsum(lengths)],
                          seen_values=np.tile(np.arange(40, 45), old_users))
    users = np.arange(n_users)
    labels = [np.asarray(label_items)] * n_users
    recent = {h: recent_popularity(rows, times, 50, h) for h in HALF_LIVES}
    return fit, users, labels, rows, times, recent


def test_recent_popularity_is_chosen_when_new_users_take_the_new_items():
    lines = []
    chosen = _cold_start_half_life(*_world(range(20, 40)), log=lines.append)
    # At half-life 0.3 the newer items outweigh the old (3 > 10 * 2 ** (-1 / 0.3)); at 1.0 they don't.
    assert chosen == 0.01  # the first of the half-lives that reach Recall@20 = 1
    assert "30 label users without fit-part interactions" in lines[0] and "popularity: 0.0000" in lines[0]


def test_popularity_is_kept_when_it_is_as_good():
    assert _cold_start_half_life(*_world(range(20)), log=lambda _: None) is None


@pytest.mark.parametrize("new_users", [MIN_NEW_USERS - 1])
def test_every_label_user_judges_when_few_are_new(new_users):
    lines = []
    chosen = _cold_start_half_life(*_world(range(20, 40), new_users=new_users), log=lines.append)
    assert chosen == 0.01
    assert f"{5 + new_users} label users (only {new_users} without fit-part interactions)" in lines[0]


def test_recent_popularity_needs_a_margin_over_popularity():
    # 200 new users: 199 take 10 old and 10 new items (either list: Recall@20 0.5), one takes 20 new
    # items. Recent popularity scores 0.5025 against 0.4975: ahead by 1 %, inside the margin.
    fit, users, _, rows, times, recent = _world(range(20), new_users=200)
    mixed = np.r_[np.arange(10), np.arange(20, 30)]
    labels = [np.arange(20, 40) if u == len(users) - 1 else mixed for u in users]
    lines = []
    assert _cold_start_half_life(fit, users, labels, rows, times, recent, lines.append) is None
    assert "popularity: 0.4975" in lines[0] and "recent 0.01: 0.5025" in lines[0] and "-> popularity" in lines[0]
    assert COLD_START_MARGIN > 0.5025 / 0.4975  # the 1 % lead is not enough
