"""Online configuration: defaults, JSON loading, errors naming the field."""

from __future__ import annotations

import json

import pytest

from online import config


def test_defaults_and_sections_from_json(tmp_path):
    assert config.load(None) == config.OnlineConfig()
    path = tmp_path / "online.json"
    path.write_text(json.dumps({"learner": {"export_interval_s": 0.5, "reserve_items": 0}, "roller": {"min_events": 7}}))
    loaded = config.load(str(path))
    assert (loaded.learner.export_interval_s, loaded.learner.reserve_items, loaded.roller.min_events) == (0.5, 0, 7)
    assert loaded.log == config.EventLogConfig()


@pytest.mark.parametrize("values, message", [
    ({"learner": {"export_interval_s": 0}}, "learner.export_interval_s must be > 0"),
    ({"learner": {"guard_max_drop": 1.5}}, "learner.guard_max_drop"),
    ({"roller": {"eval_fraction": 1.0}}, "roller.eval_fraction"),
    ({"log": {"segment_bytes": 10}}, "log.segment_bytes"),
    ({"learner": {"colour": 1}}, "unknown key"),
    ({"other": {}}, "other: unknown key"),
    ({"learner": 3}, "expected an object"),
])
def test_invalid_values_name_the_field(values, message):
    with pytest.raises(config.OnlineConfigError, match=message):
        config.from_dict(values)


def test_unreadable_files(tmp_path):
    with pytest.raises(config.OnlineConfigError, match="does not exist"):
        config.load(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(config.OnlineConfigError, match="not valid JSON"):
        config.load(str(bad))
