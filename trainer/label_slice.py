"""The label slice: the part of the train split held out inside training.

Early stopping, the hyperparameter search and the candidate ranker's labels need interactions the
fitted models have not seen. They come from the train split itself, cut the way the run's own
train/eval split was cut, so what is learned on the slice carries over to the evaluation:

* temporal runs (`split == "time"`): the newest `fraction` of the train interactions by time;
* random runs: each interaction independently with probability `fraction`, decided by a salted
  hash of its (user, item) indices, so the same interaction always falls on the same side.

The rest of the train split is the *fit part*.
"""

from __future__ import annotations

import numpy as np

SPLITS = ("random", "time")
_SALT = np.uint64(0x9E3779B97F4A7C15)


def _mixed(users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """A 64-bit mix of (user, item) pairs, uniform enough to cut by its top bits."""
    with np.errstate(over="ignore"):
        x = users.astype(np.uint64) * np.uint64(0x100000001B3) + items.astype(np.uint64) + _SALT
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xFF51AFD7ED558CCD)
        x ^= x >> np.uint64(33)
        x *= np.uint64(0xC4CEB9FE1A85EC53)
        x ^= x >> np.uint64(33)
    return x


def label_slice_mask(
    users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, split: str, fraction: float = 0.2
) -> np.ndarray:
    """True for the train interactions that form the label slice.

    Args:
      users / items: parallel [n] integer indices of each interaction.
      timestamps: its time (any monotone transform of it); used by temporal runs.
      split: the run's split, "time" or "random".
      fraction: share of the interactions in the slice, in (0, 1).

    Returns:
      bool [n].
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    n = len(users)
    if split == "time":
        order = np.lexsort((np.arange(n), np.asarray(timestamps)))
        mask = np.zeros(n, bool)
        mask[order[n - int(round(fraction * n)):]] = True
        return mask
    threshold = np.uint64(int(fraction * 2.0**64) if fraction < 1.0 else 2**64 - 1)
    return _mixed(np.asarray(users), np.asarray(items)) < threshold
