"""The blessing gate."""

import dataclasses
import math

import pytest

from evaluation.gate import decide_blessing

METRIC = "recall_at_20"


def test_blessed_above_floor_and_within_drop():
    # drop (0.30 - 0.29) / 0.30 = 3.3 % <= 5 %
    blessing = decide_blessing({METRIC: 0.29}, {METRIC: 0.30}, METRIC, 0.1, 0.05)
    assert blessing.blessed
    assert METRIC in blessing.reason and "0.2900" in blessing.reason


def test_refused_below_floor():
    blessing = decide_blessing({METRIC: 0.09}, None, METRIC, 0.1, 0.05)
    assert not blessing.blessed
    assert blessing.reason == "recall_at_20 = 0.0900 is below the floor 0.1000"


def test_refused_on_relative_drop():
    # drop (0.30 - 0.27) / 0.30 = 10 % > 5 %
    blessing = decide_blessing({METRIC: 0.27}, {METRIC: 0.30}, METRIC, 0.1, 0.05)
    assert not blessing.blessed
    assert "10.00%" in blessing.reason and "5.00%" in blessing.reason


def test_first_run_ignores_the_change_threshold():
    # the same value that is refused against a previous 0.30 passes without one
    blessing = decide_blessing({METRIC: 0.27}, None, METRIC, 0.1, 0.05)
    assert blessing.blessed and "first run" in blessing.reason


def test_boundaries_pass():
    assert decide_blessing({METRIC: 0.1}, None, METRIC, 0.1, 0.0).blessed
    assert decide_blessing({METRIC: 0.15}, {METRIC: 0.2}, METRIC, 0.1, 0.25).blessed  # drop 25 %


def test_nan_missing_metric_and_immutability():
    assert not decide_blessing({METRIC: math.nan}, None, METRIC, 0.0, 0.1).blessed
    with pytest.raises(KeyError, match="ndcg_at_10"):
        decide_blessing({METRIC: 0.2}, None, "ndcg_at_10", 0.0, 0.1)
    with pytest.raises(KeyError, match="previous"):
        decide_blessing({METRIC: 0.2}, {"mrr": 0.1}, METRIC, 0.0, 0.1)
    blessing = decide_blessing({METRIC: 0.2}, None, METRIC, 0.0, 0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        blessing.blessed = False
    assert blessing.to_dict() == {"blessed": True, "reason": blessing.reason}


def test_a_first_model_below_popularity_is_refused_with_both_numbers():
    blessing = decide_blessing({METRIC: 0.11}, None, METRIC, 0.0, 0.05, baseline={METRIC: 0.17})
    assert not blessing.blessed
    assert blessing.reason == "recall_at_20 = 0.1100 is below popularity's 0.1700 x 1.00 = 0.1700 in the same run"


def test_the_margin_scales_the_baseline_and_equal_passes():
    assert decide_blessing({METRIC: 0.17}, None, METRIC, 0.0, 0.05, baseline={METRIC: 0.17}).blessed
    refused = decide_blessing({METRIC: 0.18}, None, METRIC, 0.0, 0.05, baseline={METRIC: 0.17}, baseline_margin=1.1)
    assert not refused.blessed and "x 1.10 = 0.1870" in refused.reason
    blessed = decide_blessing({METRIC: 0.30}, {METRIC: 0.29}, METRIC, 0.0, 0.05, baseline={METRIC: 0.17},
                              baseline_name="ease")
    assert blessed.blessed and "reaches ease's 0.1700" in blessed.reason


def test_the_baseline_rule_comes_before_the_change_rule():
    # within the allowed drop of the previous model, but below popularity: refused
    blessing = decide_blessing({METRIC: 0.16}, {METRIC: 0.165}, METRIC, 0.0, 0.05, baseline={METRIC: 0.17})
    assert not blessing.blessed and "popularity" in blessing.reason
