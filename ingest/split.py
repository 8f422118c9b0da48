"""The temporal train/eval split: one global cutoff time, found in bounded memory.

The eval split holds the newest ``round(eval_fraction * n)`` interactions by timestamp. The
cutoff is the timestamp of the newest train row: train rows have ``timestamp <= cutoff``,
eval rows ``timestamp > cutoff``. Rows tied at the cutoff all go to train, so with ties the
eval split can be a little smaller than asked.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np

_BINS = 1 << 16


def eval_count(total: int, eval_fraction: float) -> int:
    """How many of `total` interactions the eval split should hold (half rounds up).

    Args:
      total: the number of interactions (>= 0).
      eval_fraction: in (0, 1).

    Returns:
      ``floor(eval_fraction * total + 0.5)``.
    """
    check_fraction(eval_fraction)
    return int(math.floor(eval_fraction * total + 0.5))


def check_fraction(eval_fraction: float) -> None:
    """Raises ValueError unless 0 < eval_fraction < 1."""
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in (0, 1), got {eval_fraction}")


def kth_smallest(passes: Callable[[], Iterable[np.ndarray]], k: int, low: int, high: int) -> int:
    """The k-th smallest (0-based) of integers read in chunks, in memory bounded by 2**16 bins.

    Each pass counts the values in 2**16 bins over [low, high] and narrows the range to the
    bin that holds rank k, until the range is one value; integers in a range of width W take
    ceil(log_65536(W)) passes (two for Unix timestamps).

    Args:
      passes: returns a fresh iterable over every value (as int64 arrays) on each call.
      k: the rank, 0 <= k < number of values.
      low: a lower bound of every value.
      high: an upper bound of every value; ``high - low`` must be below 2**46.

    Returns:
      The value of rank k.
    """
    if high - low >= 1 << 46:
        raise ValueError(f"value range [{low}, {high}] is too wide (limit 2**46)")
    while low < high:
        width = high - low + 1
        bins = min(_BINS, width)
        counts = np.zeros(bins, dtype=np.int64)
        for values in passes():
            inside = values[(values >= low) & (values <= high)].astype(np.int64)
            counts += np.bincount(((inside - low) * bins) // width, minlength=bins)
        cumulative = np.cumsum(counts)
        if k >= cumulative[-1]:
            raise ValueError(f"rank {k} is beyond the {int(cumulative[-1])} values in [{low}, {high}]")
        chosen = int(np.searchsorted(cumulative, k, side="right"))
        if chosen > 0:
            k -= int(cumulative[chosen - 1])
        # Bin b holds the values v with b <= (v - low) * bins / width < b + 1.
        low, high = low + -(-chosen * width // bins), low + -(-(chosen + 1) * width // bins) - 1
    return low


def temporal_cutoff(passes: Callable[[], Iterable[np.ndarray]], total: int, low: int, high: int,
                    eval_fraction: float) -> int:
    """The cutoff timestamp of the split (see the module docstring).

    Args:
      passes: returns a fresh iterable over every timestamp on each call.
      total: the number of timestamps (> 0).
      low: the smallest timestamp.
      high: the largest timestamp.
      eval_fraction: in (0, 1).

    Returns:
      The timestamp of the newest train row.
    """
    n_eval = eval_count(total, eval_fraction)
    return kth_smallest(passes, total - n_eval - 1, low, high) if n_eval < total else low - 1
