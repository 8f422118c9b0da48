"""The selection rule on fixed inputs: expected picks and reasons, computed by hand."""

from __future__ import annotations

import math

import pytest

from compression.select import Candidate, relative_drop, select_variant

METRICS = ("recall_at_20", "ndcg_at_10")
FULL = Candidate("full", 1000, {"recall_at_20": 0.200, "ndcg_at_10": 0.100})


def _c(name, size, recall, ndcg, servable=True):
    return Candidate(name, size, {"recall_at_20": recall, "ndcg_at_10": ndcg}, servable)


def test_relative_drop_by_hand():
    assert relative_drop(0.200, 0.198) == pytest.approx(0.01)
    assert relative_drop(0.200, 0.210) == pytest.approx(-0.05)
    assert relative_drop(0.0, 0.0) == 0.0
    assert math.isnan(relative_drop(0.2, math.nan))


def test_picks_the_smallest_variant_within_the_budget():
    candidates = [
        FULL,
        _c("int8", 400, 0.1990, 0.0995),          # drops 0.5%, 0.5%: eligible
        _c("pruned_int8", 150, 0.1990, 0.0980),   # ndcg drops 2%: over budget
        _c("distilled", 300, 0.1981, 0.1000),     # drops 0.95%, 0%: eligible, smaller than int8
        _c("tflite_full_integer", 50, 0.2, 0.1, servable=False),
    ]
    selection = select_variant(candidates, 0.01, METRICS)
    assert selection.chosen == "distilled"
    assert "3.3x smaller" in selection.reason  # 1000 / 300
    assert "recall_at_20 -0.95%, ndcg_at_10 +0.00%" in selection.reason
    assert selection.drops["distilled"]["recall_at_20"] == pytest.approx(0.0095)
    assert selection.verdicts["pruned_int8"].startswith("ndcg_at_10 drops 2.00%")
    assert selection.verdicts["tflite_full_integer"] == "not servable by TF Serving (TFLite)"
    assert selection.verdicts["int8"] == "within budget"


def test_a_drop_exactly_at_the_budget_is_allowed_and_ties_keep_the_first():
    candidates = [FULL, _c("a", 500, 0.198, 0.1), _c("b", 500, 0.2, 0.1)]
    assert select_variant(candidates, 0.01, METRICS).chosen == "a"


def test_falls_back_to_the_full_model_when_nothing_is_within_budget():
    candidates = [FULL, _c("pruned", 100, 0.15, 0.1), _c("nan", 50, math.nan, 0.1)]
    selection = select_variant(candidates, 0.01, METRICS)
    assert selection.chosen == "full"
    assert "no variant is within the budget" in selection.reason
    assert selection.verdicts["nan"] == "no value for recall_at_20"


def test_keeps_the_full_model_when_no_eligible_variant_is_smaller():
    selection = select_variant([FULL, _c("qat", 1000, 0.2, 0.1)], 0.01, METRICS)
    assert selection.chosen == "full"
    assert "smaller than the full model" in selection.reason


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="full model"):
        select_variant([_c("int8", 1, 0.2, 0.1)], 0.01, METRICS)
    with pytest.raises(ValueError, match="no value"):
        select_variant([Candidate("full", 10, {"recall_at_20": 0.2})], 0.01, METRICS)
    with pytest.raises(ValueError, match="budget"):
        select_variant([FULL], -0.1, METRICS)
