"""`EvaluationConfig`: the cutoffs, the user sample and the blessing gate's thresholds."""

from __future__ import annotations

import dataclasses
from typing import Tuple

from core.config_loader import check, one_of

GATE_BASELINES = ("popularity", "ease", "none")


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Evaluation gate: the pushed model must clear these floors."""

    cutoffs: Tuple[int, ...] = (10, 20, 50, 100)
    gate_metric: str = "recall_at_20"
    min_value: float = 0.0
    max_relative_drop: float = 0.05
    max_eval_users: int = 5000
    # The model must reach this baseline's gate metric (fitted in the same run) times the margin;
    # "none" (the default until the learned ranker over several candidate sources is the served
    # model) keeps only the floor and the change rule.
    gate_baseline: str = "popularity"  # popularity | ease | none
    gate_baseline_margin: float = 1.0

    def __post_init__(self) -> None:
        check("evaluation", [
            (len(self.cutoffs) > 0 and all(k >= 1 for k in self.cutoffs),
             f"cutoffs must be a non-empty list of integers >= 1, got {list(self.cutoffs)}"),
            (self.max_relative_drop >= 0, f"max_relative_drop must be >= 0, got {self.max_relative_drop}"),
            (self.max_eval_users >= 1, f"max_eval_users must be >= 1, got {self.max_eval_users}"),
            (one_of(self.gate_baseline, GATE_BASELINES),
             f"gate_baseline must be one of {', '.join(GATE_BASELINES)}, got {self.gate_baseline!r}"),
            (self.gate_baseline_margin >= 0, f"gate_baseline_margin must be >= 0, got {self.gate_baseline_margin}"),
        ])
