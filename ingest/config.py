"""`SyntheticDataConfig`: the size and shape of the embedded synthetic data set."""

from __future__ import annotations

import dataclasses

from core.config_loader import check


@dataclasses.dataclass(frozen=True)
class SyntheticDataConfig:
    """Size and shape of the embedded synthetic MovieLens-like world."""

    num_users: int = 1500
    num_items: int = 800
    num_interactions: int = 40_000
    num_tastes: int = 8
    eval_fraction: float = 0.2
    seed: int = 42

    def __post_init__(self) -> None:
        check("synthetic", [
            (self.num_users >= 1, f"num_users must be >= 1, got {self.num_users}"),
            (self.num_items >= 1, f"num_items must be >= 1, got {self.num_items}"),
            (self.num_interactions >= 1, f"num_interactions must be >= 1, got {self.num_interactions}"),
            (self.num_tastes >= 1, f"num_tastes must be >= 1, got {self.num_tastes}"),
            (0.0 < self.eval_fraction < 1.0, f"eval_fraction must be in (0, 1), got {self.eval_fraction}"),
        ])
