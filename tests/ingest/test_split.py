"""The temporal split: eval size, exact bounded-memory rank selection and the cutoff."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest import split


@pytest.mark.parametrize("total, fraction, expected", [
    (10, 0.2, 2), (8, 0.25, 2), (5, 0.5, 3), (3, 0.1, 0), (1, 0.5, 1)])
def test_eval_count_rounds_half_up(total, fraction, expected):
    assert split.eval_count(total, fraction) == expected


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_eval_fraction_outside_open_interval_is_rejected(fraction):
    with pytest.raises(ValueError, match="eval_fraction"):
        split.eval_count(10, fraction)


def _passes(chunks):
    return lambda: iter(chunks)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=4_000_000_000), min_size=1, max_size=60), st.data())
def test_kth_smallest_matches_sorting(values, data):
    k = data.draw(st.integers(min_value=0, max_value=len(values) - 1))
    chunks = [np.array(values[i:i + 7], dtype=np.int64) for i in range(0, len(values), 7)]
    assert split.kth_smallest(_passes(chunks), k, min(values), max(values)) == sorted(values)[k]


def test_kth_smallest_with_many_ties_and_wide_range():
    values = np.array([5] * 1000 + [3_999_999_999] * 3 + [0], dtype=np.int64)
    passes = _passes([values[:500], values[500:]])
    assert split.kth_smallest(passes, 0, 0, 3_999_999_999) == 0
    assert split.kth_smallest(passes, 1000, 0, 3_999_999_999) == 5
    assert split.kth_smallest(passes, 1001, 0, 3_999_999_999) == 3_999_999_999


def test_cutoff_is_newest_train_time_and_ties_go_to_train():
    # 8 rows, 25% eval -> 2 eval rows: the two newest (450, 500); cutoff = 400.
    times = np.array([100, 200, 250, 300, 350, 400, 450, 500], dtype=np.int64)
    assert split.temporal_cutoff(_passes([times]), 8, 100, 500, 0.25) == 400
    # 5 rows, 40% eval asks for 2, but the newest three tie at 3: all go to train.
    tied = np.array([1, 2, 3, 3, 3], dtype=np.int64)
    assert split.temporal_cutoff(_passes([tied]), 5, 1, 3, 0.4) == 3
