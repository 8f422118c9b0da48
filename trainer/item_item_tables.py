"""The item-item source's serving tables: the neighbour table and each user's recent items.

Both are indexed by catalog row, the serving model's item index: `trainer.tables.build_tables`
maps the training interactions (Transform vocabulary indices) to catalog rows and hands them
here, so the neighbours are learned from exactly the interactions the seen-item filter holds.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from trainer import history
from trainer.item_item_config import ItemItemConfig
from trainer.item_neighbours import item_neighbours


@dataclasses.dataclass(frozen=True)
class ItemItemTables:
    """What the serving model needs to score users with item-item neighbours.

    Attributes:
      neighbour_ids: int32 [N, k] catalog rows, row i's neighbours best first.
      neighbour_weights: float32 [N, k] their weights.
      method: the learner (`trainer.item_neighbours.EASE` or `COOCCURRENCE`).
      recent_rows: int [U + 1, max_history] each known user's newest training items (catalog
        rows, newest first, -1 pads); the last row, the unknown user's, is empty.
      weights_dtype: storage type of the served weights.
    """

    neighbour_ids: np.ndarray
    neighbour_weights: np.ndarray
    method: str
    recent_rows: np.ndarray
    weights_dtype: str


def build_item_item_tables(
    users: np.ndarray,
    rows: np.ndarray,
    timestamps: np.ndarray,
    n_users: int,
    n_items: int,
    cfg: ItemItemConfig,
) -> ItemItemTables:
    """Learns the neighbour table and collects recent histories from training interactions.

    Args:
      users: user index of each interaction, in [0, n_users).
      rows: its item's catalog row, in [0, n_items).
      timestamps: its time (any monotone transform of it).
      n_users / n_items: known users and catalog size.
      cfg: the item-item settings.
    """
    table = item_neighbours(cfg, users, rows, n_items)
    recent = history.latest_histories(users, rows, timestamps, n_users, length=cfg.max_history) - 1
    return ItemItemTables(table.ids, table.weights, table.method, recent, cfg.weights_dtype)
