"""The Tuner node and the imported hyperparameters: when they join the DAG and what the Trainer reads."""

from __future__ import annotations

import json

import pytest

from core.config_loader import ConfigError
from pipeline.config import load_config


def _nodes(cfg):
    from pipeline.pipeline import create_pipeline

    return {c.id: c for c in create_pipeline(cfg).components}


def _saved(tmp_path):
    folder = tmp_path / "best"
    folder.mkdir()
    path = folder / "best_hyperparameters.txt"
    path.write_text(json.dumps({"space": [], "values": {"learning_rate": 0.01}}))
    return path


def test_by_default_the_trainer_has_no_hyperparameters_input():
    nodes = _nodes(load_config())
    assert "Tuner" not in nodes and "hyperparameters_importer" not in nodes
    assert "hyperparameters" not in nodes["Trainer"].inputs


def test_tuning_puts_the_tuner_before_the_trainer_with_both_configs():
    from trainer.tuning import TRAINER_KEY, TUNER_KEY

    cfg = load_config(None, {"tuner": {"max_trials": 2}}).with_tuning()
    nodes = _nodes(cfg)
    tuner, trainer = nodes["Tuner"], nodes["Trainer"]
    assert trainer.inputs["hyperparameters"].producer_component_id == "Tuner"
    assert tuner.inputs["examples"].producer_component_id == "Transform"
    custom = json.loads(tuner.exec_properties["custom_config"])
    assert custom[TUNER_KEY]["max_trials"] == 2 and custom[TUNER_KEY]["enabled"] is True
    assert custom[TRAINER_KEY]["split"] == cfg.split
    assert "hyperparameters_importer" not in nodes


def test_a_saved_hyperparameters_file_is_imported_for_the_trainer_without_a_tuner(tmp_path):
    path = _saved(tmp_path)
    nodes = _nodes(load_config(None, {"tuner": {"hyperparameters_file": str(path)}}))
    importer = nodes["hyperparameters_importer"]
    assert "Tuner" not in nodes
    assert nodes["Trainer"].inputs["hyperparameters"].producer_component_id == "hyperparameters_importer"
    assert importer.exec_properties["artifact_uri"] == str(path.parent)


def test_tuning_while_reusing_a_saved_file_is_a_config_error(tmp_path):
    cfg = load_config(None, {"tuner": {"hyperparameters_file": str(_saved(tmp_path))}})
    with pytest.raises(ConfigError, match="tuner.enabled and hyperparameters_file are both set"):
        cfg.with_tuning()
