"""The selection rule: the smallest servable variant within the quality budget, else the full model.

A variant is eligible when it is servable (a TF Serving SavedModel, not a TFLite file) and,
for every budget metric, its relative drop vs the full model,
``(full - variant) / full``, is at most the budget (a variant better than the full model has a
negative drop). Among the eligible variants the one with the fewest gzip bytes wins (ties: the
earlier in the given order); if none beats the full model's gzip bytes, the full model is kept.
The decision carries a sentence saying why.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Mapping, Optional, Sequence

from compression.config import FULL

TOLERANCE = 1e-9  # a drop equal to the budget up to float rounding is within it


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What the rule needs to know of one variant."""

    name: str
    gzip_bytes: int
    metrics: Mapping[str, float]
    servable: bool = True


@dataclasses.dataclass(frozen=True)
class Selection:
    """The chosen variant, why, and each candidate's relative drops and verdict."""

    chosen: str
    reason: str
    drops: Dict[str, Dict[str, float]]
    verdicts: Dict[str, str]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def relative_drop(reference: float, value: float) -> float:
    """(reference - value) / reference; NaN when either is NaN; 0 vs a zero reference unless lower.

    Raises:
      ValueError: `reference` is negative.
    """
    if math.isnan(reference) or math.isnan(value):
        return math.nan
    if reference < 0:
        raise ValueError(f"quality metrics must be >= 0, got reference {reference}")
    if reference == 0:
        return 0.0 if value >= 0 else math.inf
    return (reference - value) / reference


def _verdict(candidate: Candidate, drops: Mapping[str, float], budget: float) -> Optional[str]:
    """None when eligible, else why not."""
    if not candidate.servable:
        return "not servable by TF Serving (TFLite)"
    missing = [m for m, d in drops.items() if math.isnan(d)]
    if missing:
        return f"no value for {', '.join(missing)}"
    over = [f"{m} drops {d:.2%}" for m, d in drops.items() if d > budget + TOLERANCE]
    return "; ".join(over) + f" (budget {budget:.2%})" if over else None


def select_variant(candidates: Sequence[Candidate], budget: float,
                   metrics: Sequence[str]) -> Selection:
    """Applies the selection rule (module docstring).

    Args:
      candidates: every measured variant, including the full model (named `FULL`).
      budget: largest allowed relative drop of each metric (0.01 = 1%).
      metrics: the budget metrics, e.g. ('recall_at_20', 'ndcg_at_10').

    Returns:
      The selection.

    Raises:
      ValueError: no full model among the candidates, a negative budget, no metric, or a
        metric the full model lacks.
    """
    by_name = {c.name: c for c in candidates}
    if FULL not in by_name:
        raise ValueError(f"the candidates must include the full model ({FULL!r})")
    if budget < 0 or not metrics:
        raise ValueError("the budget must be >= 0 and name at least one metric")
    full = by_name[FULL]
    lacking = [m for m in metrics if m not in full.metrics or math.isnan(full.metrics[m])]
    if lacking:
        raise ValueError(f"the full model has no value for {lacking}")
    drops: Dict[str, Dict[str, float]] = {}
    verdicts: Dict[str, str] = {}
    eligible = []
    for candidate in candidates:
        if candidate.name == FULL:
            continue
        drops[candidate.name] = {
            m: relative_drop(full.metrics[m], candidate.metrics.get(m, math.nan)) for m in metrics
        }
        why_not = _verdict(candidate, drops[candidate.name], budget)
        verdicts[candidate.name] = why_not or "within budget"
        if why_not is None:
            eligible.append(candidate)
    smaller = [c for c in eligible if c.gzip_bytes < full.gzip_bytes]
    if not smaller:
        reason = ("no variant is within the budget" if not eligible
                  else "no variant within the budget is smaller than the full model")
        return Selection(FULL, f"kept the full model: {reason} ({budget:.2%} on "
                               f"{', '.join(metrics)})", drops, verdicts)
    best = min(smaller, key=lambda c: c.gzip_bytes)
    changes = ", ".join(f"{m} {0.0 - drops[best.name][m]:+.2%}" for m in metrics)
    reason = (f"chose {best.name}: the smallest of {len(eligible)} variant(s) within the "
              f"{budget:.2%} budget, {full.gzip_bytes / best.gzip_bytes:.1f}x smaller (gzip) "
              f"than the full model; quality vs the full model: {changes}")
    return Selection(best.name, reason, drops, verdicts)
