"""Typed settings of the item-item candidate source (neighbour tables and their serving)."""

from __future__ import annotations

import dataclasses

from core.config_loader import check

WEIGHT_DTYPES = ("float32", "float16")


@dataclasses.dataclass(frozen=True)
class ItemItemConfig:
    """How the per-item neighbour table is learned and served.

    Attributes:
      enabled: whether the serving model carries the item-item source.
      neighbours: k, the neighbours kept per item (the table is [num_items, k]).
      ease_l2: L2 regularisation of closed-form EASE (added to the Gram matrix's diagonal).
      ease_max_items: largest catalog solved with EASE (a dense num_items^2 matrix); larger
        catalogs use sparse co-occurrence similarity, whose memory does not grow with
        num_items^2.
      cooccurrence_shrinkage: shrinkage added to the co-occurrence similarity's denominator,
        sim_ij = c_ij / (sqrt(n_i n_j) + shrinkage): pairs seen by few users count less.
      max_history: most recent items of a user that score their candidates at serving time.
      block_bytes: scratch memory for one block of co-occurrence rows while the table is learned.
      weights_dtype: storage type of the served neighbour weights ('float32' or 'float16').
    """

    enabled: bool = True
    neighbours: int = 100
    ease_l2: float = 500.0
    ease_max_items: int = 20_000
    cooccurrence_shrinkage: float = 10.0
    max_history: int = 200
    block_bytes: int = 64 << 20
    weights_dtype: str = "float32"

    def __post_init__(self) -> None:
        check("item_item", [
            (self.neighbours >= 1, f"neighbours must be at least 1, got {self.neighbours!r}"),
            (self.ease_l2 > 0, f"ease_l2 must be positive, got {self.ease_l2!r}"),
            (self.ease_max_items >= 0, f"ease_max_items must be non-negative, got {self.ease_max_items!r}"),
            (self.cooccurrence_shrinkage >= 0,
             f"cooccurrence_shrinkage must be non-negative, got {self.cooccurrence_shrinkage!r}"),
            (self.max_history >= 1, f"max_history must be at least 1, got {self.max_history!r}"),
            (self.block_bytes >= 1, f"block_bytes must be positive, got {self.block_bytes!r}"),
            (self.weights_dtype in WEIGHT_DTYPES, f"weights_dtype must be one of {WEIGHT_DTYPES}, got {self.weights_dtype!r}"),
        ])
