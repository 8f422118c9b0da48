"""The candidate sources of online versions, recomputed from every interaction at each export.

The pushed model's learned ranker (`trainer.candidate_ranker`) orders candidates from several
sources. The learner keeps the ranker's weights as trained, and rebuilds every source it reads
from the base interactions plus the events applied so far, with the same builders the pipeline
uses (`trainer.candidate_sources`, `trainer.ease_block`, `trainer.item_item_tables`):

* popularity, recent popularity and the ranker's count features (item and user activity);
* the EASE block over the most popular items (refitted: a dense M x M inverse);
* the item-item neighbour table and each user's recent items.

The two-tower source is the learner's own (its embeddings are updated by the events).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np

from trainer.candidate_sources import PopularityTables, popularity_tables
from trainer.ease_block import EaseBlockTables, fit_ease_block
from trainer.item_item_config import ItemItemConfig
from trainer.item_item_tables import ItemItemTables, build_item_item_tables


@dataclasses.dataclass(frozen=True)
class SourceSettings:
    """How the sources are built (as the pushed model's were).

    Attributes:
      half_life: recent popularity's half-life (transformed timestamp units).
      ease: (block items, l2) of the EASE block, or None when the ranker does not read it.
      item_item: the item-item settings, or None when the ranker does not read the source.
      cold_start_half_life: unknown users get recent popularity at this half-life (None: all-time
        popularity), as the ranker's training chose.
    """

    half_life: float
    ease: Optional[Tuple[int, float]] = None
    item_item: Optional[ItemItemConfig] = None
    cold_start_half_life: Optional[float] = None


class InteractionLog:
    """Every (user row, catalog row, transformed timestamp) seen so far; appends amortised."""

    def __init__(self, users: np.ndarray, rows: np.ndarray, timestamps: np.ndarray) -> None:
        self._users = np.asarray(users, np.int64).copy()
        self._rows = np.asarray(rows, np.int64).copy()
        self._times = np.asarray(timestamps, np.float64).copy()
        self.size = len(self._users)

    def append(self, users: np.ndarray, rows: np.ndarray, timestamps: np.ndarray) -> None:
        """Adds interactions (equal-length arrays)."""
        needed = self.size + len(users)
        if needed > len(self._users):
            capacity = max(needed, 2 * len(self._users))
            self._users, self._rows, self._times = (
                np.resize(column, capacity) for column in (self._users, self._rows, self._times))
        self._users[self.size:needed] = users
        self._rows[self.size:needed] = rows
        self._times[self.size:needed] = timestamps
        self.size = needed

    @property
    def columns(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user rows, catalog rows, timestamps) of the logged interactions."""
        return self._users[:self.size], self._rows[:self.size], self._times[:self.size]


def source_tables(log: InteractionLog, n_users: int, n_items: int, settings: SourceSettings
                  ) -> Tuple[PopularityTables, Optional[EaseBlockTables], Optional[ItemItemTables]]:
    """The sources of `n_users` users and `n_items` catalog rows from the logged interactions."""
    users, rows, times = log.columns
    popularity = popularity_tables(users, rows, times, n_users, n_items, settings.half_life)
    ease = fit_ease_block(users, rows, n_items, *settings.ease) if settings.ease is not None else None
    item_item = None
    if settings.item_item is not None:
        item_item = build_item_item_tables(users, rows, times, n_users, n_items, settings.item_item)
    return popularity, ease, item_item
