"""The pipeline config composes each stage's config and checks every value before any work."""

from __future__ import annotations

import json

import pytest

from compression.config import CompressionConfig
from core.config_loader import ConfigError
from evaluation.config import EvaluationConfig
from ingest.config import SyntheticDataConfig
from pipeline.config import PipelineConfig, load_config, to_dict
from trainer.config import TrainerConfig


def test_the_defaults_compose_the_stages_configs():
    cfg = load_config()
    assert isinstance(cfg.trainer, TrainerConfig) and isinstance(cfg.compression, CompressionConfig)
    assert isinstance(cfg.evaluation, EvaluationConfig) and isinstance(cfg.synthetic, SyntheticDataConfig)
    assert cfg == PipelineConfig()


def test_a_file_and_overrides_reach_every_section(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"split": "random", "trainer": {"tower_layers": [16, 8], "epochs": 2},
                                "evaluation": {"cutoffs": [5]}, "beam": {"direct_num_workers": 2}}))
    cfg = load_config(str(path), {"compress": False})
    assert cfg.split == "random" and cfg.compress is False
    assert cfg.trainer.tower_layers == (16, 8) and cfg.trainer.epochs == 2
    assert cfg.evaluation.cutoffs == (5,) and cfg.beam.direct_num_workers == 2
    # JSON round trip (the run's split sets trainer.split, so it travels too)
    assert load_config(None, {"split": "random", "trainer": to_dict(cfg)["trainer"]}).trainer == cfg.trainer


@pytest.mark.parametrize("values, expected", [
    ({"trainer": {"epochs": "three"}}, "trainer.epochs: expected an integer, got 'three'"),
    ({"trainer": {"learning_rate": 0}}, "trainer.learning_rate must be > 0, got 0"),
    ({"trainer": {"input_mode": "disk"}}, "trainer.input_mode must be one of auto, memory, stream"),
    ({"trainer": {"tower_layers": [0]}}, "trainer.tower_layers must hold layer widths >= 1"),
    ({"evaluation": {"max_eval_users": 0}}, "evaluation.max_eval_users must be >= 1"),
    ({"compression": {"variants": ["huge"]}}, "huge"),
    ({"synthetic": {"eval_fraction": 1.5}}, "synthetic.eval_fraction must be in \\(0, 1\\)"),
    ({"split": "by-user"}, "split must be 'time' or 'random'"),
    ({"beam": {"direct_running_mode": "threads"}}, "beam.direct_running_mode must be one of"),
    ({"item_item": {"enabled": False}}, "candidate_ranker.sources lists 'item_item' while item_item.enabled is false"),
])
def test_each_bad_value_is_named_by_its_key_path(tmp_path, values, expected):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ConfigError, match=expected) as raised:
        load_config(str(path))
    assert str(raised.value).startswith(str(path))


def test_the_ranker_may_go_without_the_item_item_source():
    sources = ["two_tower", "ease", "popularity", "recent_popularity"]
    cfg = load_config(None, {"item_item": {"enabled": False}, "candidate_ranker": {"sources": sources}})
    assert not cfg.item_item.enabled and cfg.candidate_ranker.sources == tuple(sources)
    assert not load_config(None, {"item_item": {"enabled": False}, "candidate_ranker": {"enabled": False}}).item_item.enabled


def test_the_compression_sweep_keeps_the_rest_of_the_compression_config(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"compression": {"student_epochs": 2}}))
    swept = load_config(str(path)).with_compression_sweep().compression
    assert swept.sweep is True and swept.student_epochs == 2
    assert load_config(str(path)).compression.sweep is False


@pytest.mark.parametrize("values, expected", [
    ({"compression": {"variants": ["int8"]}}, "compression.sweep builds every variant and TFLite mode: "
                                               "it cannot be combined with an explicit variants"),
    ({"compress": False}, "compression.sweep needs the compression stage (compress is false)"),
])
def test_a_compression_sweep_that_cannot_apply_is_a_config_error(values, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(None, values).with_compression_sweep()
    assert expected in str(caught.value)
