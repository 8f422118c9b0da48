"""Typed settings of the candidate sources' merge and the learned ranker over them."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from core.config_loader import check

SOURCES = ("two_tower", "ease", "item_item", "popularity", "recent_popularity")


@dataclasses.dataclass(frozen=True)
class CandidateRankerConfig:
    """How candidates are merged and ranked.

    Attributes:
      enabled: serve the merged, ranked candidates (False: the two-tower's own order).
      sources: candidate sources, a subset of `SOURCES` (the two-tower joins only when the
        Trainer left networks that never saw the label slice: `fit_part/`).
      per_source: candidates each source lists per user.
      ease_items / ease_l2: the EASE source's block of most popular items and its L2
        regularisation (`trainer.ease_block`).
      label_fraction: share of the train split held out as the ranker's labels.
      half_lives: recent popularity's half-lives to choose from, as fractions of the training
        period (the one that scores the label slice best is served).
      genre_affinity: also feed the ranker each candidate's genre affinity with the user's seen
        items (`trainer.candidate_features.genre_affinity`).
      layers: widths of the ranker's deep layers after one DCN-v2 cross layer.
      bags: rankers trained on different folds of users and averaged.
      max_epochs / patience: early stopping of each bag on its fold's Recall@20.
      learning_rate: Adam's.
      users_per_batch: candidate lists per gradient step.
      max_users: most label users the ranker trains on (a seeded sample above it).
      seed: seeds the folds, the sample and the initialisation.
    """

    enabled: bool = True
    sources: Tuple[str, ...] = SOURCES
    per_source: int = 100
    ease_items: int = 1000
    ease_l2: float = 300.0
    label_fraction: float = 0.2
    half_lives: Tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
    genre_affinity: bool = True
    layers: Tuple[int, ...] = (64, 32)
    bags: int = 5
    max_epochs: int = 40
    patience: int = 4
    learning_rate: float = 1e-3
    users_per_batch: int = 32
    max_users: int = 20_000
    seed: int = 0

    def __post_init__(self) -> None:
        check("candidate_ranker", [
            (all(s in SOURCES for s in self.sources), f"sources must be among {', '.join(SOURCES)}, got {list(self.sources)}"),
            ("item_item" in self.sources or "popularity" in self.sources or not self.enabled,
             f"sources must include item_item or popularity, got {list(self.sources)}"),
            (len(set(self.sources)) == len(self.sources), f"sources must not repeat, got {list(self.sources)}"),
            (self.per_source >= 1, f"per_source must be >= 1, got {self.per_source}"),
            (self.ease_items >= 1, f"ease_items must be >= 1, got {self.ease_items}"),
            (self.ease_l2 > 0, f"ease_l2 must be > 0, got {self.ease_l2}"),
            (0.0 < self.label_fraction < 1.0, f"label_fraction must lie in (0, 1), got {self.label_fraction}"),
            (len(self.half_lives) >= 1 and all(h > 0 for h in self.half_lives),
             f"half_lives must hold positive numbers, got {list(self.half_lives)}"),
            (all(u >= 1 for u in self.layers), f"layers must hold widths >= 1, got {list(self.layers)}"),
            *((getattr(self, n) >= 1, f"{n} must be >= 1, got {getattr(self, n)}")
              for n in ("bags", "max_epochs", "patience", "users_per_batch", "max_users")),
            (self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}"),
        ])
