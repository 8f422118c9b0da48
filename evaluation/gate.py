"""The blessing decision: does a candidate model's evaluation let it be pushed?

The gate metric must be one where higher is better (a recall, an NDCG). A candidate is blessed
when its value reaches the absolute floor ``min_value``, reaches a baseline fitted in the same
run on the same split (item popularity by default) times ``baseline_margin`` (on the first run
too), and, when a previously blessed result exists, has not dropped by more than
``max_relative_drop`` relative to it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Dict, Mapping, Optional


@dataclasses.dataclass(frozen=True)
class Blessing:
    """The gate's verdict.

    Attributes:
        blessed: whether the candidate may be pushed.
        reason: one sentence naming the metric, its value and the threshold that decided.
    """

    blessed: bool
    reason: str

    def to_dict(self) -> Dict[str, object]:
        """The verdict as a JSON-ready dict."""
        return dataclasses.asdict(self)


def decide_blessing(candidate: Mapping[str, float], previous: Optional[Mapping[str, float]],
                    gate_metric: str, min_value: float, max_relative_drop: float,
                    baseline: Optional[Mapping[str, float]] = None, baseline_name: str = "popularity",
                    baseline_margin: float = 1.0) -> Blessing:
    """Decides whether the candidate is blessed.

    Args:
        candidate: the candidate's metrics.
        previous: the previously blessed model's metrics, or None on the first run.
        gate_metric: the metric deciding (higher is better).
        min_value: the floor the candidate's value must reach (value >= floor passes).
        baseline: the metrics of a baseline fitted in the same run (None: no baseline rule).
        baseline_name: its name, for the reason.
        baseline_margin: the candidate must reach baseline value x margin (1.0: at least equal).
        max_relative_drop: the largest allowed (previous - candidate) / |previous|, e.g. 0.05;
            a drop equal to it (up to float rounding: (0.2 - 0.15) / 0.2 is
            0.25000000000000006) passes.

    Returns:
        The verdict.

    Raises:
        KeyError: the metric is missing from candidate or previous.
        ValueError: max_relative_drop is negative.
    """
    if max_relative_drop < 0:
        raise ValueError(f"max_relative_drop must be >= 0, got {max_relative_drop}")
    value = _value_of(candidate, gate_metric, "candidate")
    if math.isnan(value):
        return Blessing(False, f"{gate_metric} of the candidate is NaN (no users evaluated?)")
    if value < min_value:
        return Blessing(False, f"{gate_metric} = {value:.4f} is below the floor {min_value:.4f}")
    against = ""
    if baseline is not None:
        reference = _value_of(baseline, gate_metric, baseline_name)
        bar = reference * baseline_margin
        if value < bar and not math.isclose(value, bar, rel_tol=1e-9):
            return Blessing(False, f"{gate_metric} = {value:.4f} is below {baseline_name}'s {reference:.4f} "
                                   f"x {baseline_margin:.2f} = {bar:.4f} in the same run")
        against = f", reaches {baseline_name}'s {bar:.4f} (x {baseline_margin:.2f})"
    if previous is None:
        return Blessing(True, f"{gate_metric} = {value:.4f} reaches the floor {min_value:.4f}{against}; "
                              f"first run, no previous model to compare with")
    before = _value_of(previous, gate_metric, "previous")
    if math.isnan(before):
        return Blessing(True, f"{gate_metric} = {value:.4f} reaches the floor {min_value:.4f}{against}; "
                              f"the previous value is NaN, so no change threshold applies")
    drop = _relative_drop(before, value)
    if drop > max_relative_drop and not math.isclose(drop, max_relative_drop, abs_tol=1e-12):
        return Blessing(False, f"{gate_metric} = {value:.4f} dropped {drop:.2%} from the previous "
                               f"{before:.4f}, more than the allowed {max_relative_drop:.2%}")
    return Blessing(True, f"{gate_metric} = {value:.4f} reaches the floor {min_value:.4f}{against} and is "
                          f"within {max_relative_drop:.2%} of the previous {before:.4f} "
                          f"(change {-drop:+.2%})")


def _value_of(metrics: Mapping[str, float], name: str, which: str) -> float:
    if name not in metrics:
        raise KeyError(f"gate metric {name!r} missing from the {which} metrics "
                       f"(has {sorted(metrics)})")
    return float(metrics[name])


def _relative_drop(before: float, value: float) -> float:
    """(before - value) / |before|; with before == 0, 0 unless the value fell (then inf)."""
    if before == 0:
        return 0.0 if value >= 0 else math.inf
    return (before - value) / abs(before)
