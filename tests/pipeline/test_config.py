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


SCANN_ONLY = {"retrieval_index": {"kind": "scann", "reorder": 300}, "candidate_ranker": {"enabled": False},
              "item_item": {"enabled": False}}
REFUSED = "retrieval_index.kind 'scann' serves only the two-tower's own candidates: set"


@pytest.fixture
def scann_present(monkeypatch):
    """The scann package counts as installed, whether or not this environment has it."""
    monkeypatch.setattr("pipeline.config.scann_installed", lambda: True)


def test_the_retrieval_index_is_brute_force_by_default():
    assert load_config().retrieval_index.kind == "brute_force"


def test_a_scann_index_round_trips_through_json(scann_present, tmp_path):
    cfg = load_config(None, SCANN_ONLY)
    assert (cfg.retrieval_index.kind, cfg.retrieval_index.reorder) == ("scann", 300)
    assert (cfg.retrieval_index.num_leaves, cfg.retrieval_index.leaves_to_search) == (None, None)  # automatic
    path = tmp_path / "c.json"
    values = to_dict(cfg)
    assert values["retrieval_index"]["kind"] == "scann"
    del values["vertex_trainer"]  # set by the Kubeflow runner only, never read from a file
    path.write_text(json.dumps(values))
    assert load_config(str(path)) == cfg


@pytest.mark.parametrize("values, expected", [
    ({"candidate_ranker": {"enabled": True, "sources": ["two_tower", "popularity"]}},
     f"{REFUSED} candidate_ranker.enabled false (the ranker's sources score every catalog item, "
     "so the index saves no time)"),
    ({"item_item": {"enabled": True}},
     f"{REFUSED} item_item.enabled false (the item-item source scores every catalog item, so the index saves "
     "no time)"),
])
def test_a_scann_index_beside_sources_that_score_every_item_is_refused(scann_present, values, expected):
    with pytest.raises(ConfigError) as caught:
        load_config(None, {**SCANN_ONLY, **values})
    assert str(caught.value) == expected


def test_a_scann_index_with_the_default_sources_names_both_keys(scann_present):
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"retrieval_index": {"kind": "scann"}})
    message = str(caught.value)
    assert "\n" not in message
    assert message.count(REFUSED) == 2 and "candidate_ranker.enabled false" in message
    assert "item_item.enabled false" in message


def test_a_scann_index_without_the_package_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setattr("pipeline.config.scann_installed", lambda: False)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(SCANN_ONLY))
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert str(caught.value) == (f"{path}: retrieval_index.kind 'scann' needs the scann package: "
                                 "pip install scann==1.3.2")


def test_the_pipeline_hands_the_index_to_build_serving_model(scann_present):
    from pipeline.pipeline import create_pipeline

    cfg = load_config(None, SCANN_ONLY)
    (build,) = [c for c in create_pipeline(cfg).components if c.id == "BuildServingModel"]
    assert json.loads(build.exec_properties["retrieval_index"]) == to_dict(cfg)["retrieval_index"]
