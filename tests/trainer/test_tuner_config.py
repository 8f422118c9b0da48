"""The `tuner` config section: the search space and the saved hyperparameters file, checked at load."""

from __future__ import annotations

import json

import pytest

from core.config_loader import ConfigError, from_dict
from trainer.tuner_config import TUNABLE_KEYS, TunerConfig, read_hyperparameters


def _load(values):
    return from_dict(TunerConfig, values, "tuner")


def _saved(folder, values, name="best_hyperparameters.txt"):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps({"space": [], "values": values}))
    return path


def test_the_defaults_search_retrieval_keys_and_tuning_is_off():
    cfg = TunerConfig()
    assert not cfg.enabled and cfg.hyperparameters_file == ""
    assert set(cfg.space.searched()) <= set(TUNABLE_KEYS) and cfg.space.searched()


@pytest.mark.parametrize("values, expected", [
    ({"space": {"batch_size": [64, 128]}}, "tuner.space.batch_size: unknown key (known: embedding_dim"),
    ({"space": {"learning_rate": [0.01, -1.0]}}, "tuner.space.learning_rate: choice -1.0 is invalid"),
    ({"space": {"optimizer": ["sgd"]}}, "tuner.space.optimizer: choice 'sgd' is invalid"),
    ({"space": {"embedding_dim": ["big"]}}, "tuner.space.embedding_dim[0]: expected an integer, got 'big'"),
    ({"space": {"temperature": [0.1, 0.1]}}, "tuner.space.temperature: choices must not repeat"),
    ({"space": {"learning_rate": [], "temperature": [], "embedding_dim": []}}, "tuner.space.must search at least one key"),
    ({"max_trials": 0}, "tuner.max_trials must be >= 1, got 0"),
    ({"max_epochs_per_trial": 0}, "tuner.max_epochs_per_trial must be >= 1"),
    ({"trials": 3}, "tuner.trials: unknown key"),
    ({"space": {"tower_layers": [[64], [0]]}}, "tuner.space.tower_layers: choice (0,) is invalid"),
    ({"seed": 0}, "tuner.seed must be >= 1"),
])
def test_a_bad_tuner_section_names_its_key(values, expected):
    with pytest.raises(ConfigError) as err:
        _load(values)
    assert expected in str(err.value)


def test_a_searched_space_becomes_the_searched_keys():
    cfg = _load({"space": {"optimizer": ["adam", "adagrad"], "learning_rate": [0.01]}})
    assert cfg.space.searched() == {"learning_rate": (0.01,), "temperature": (0.02, 0.05, 0.1),
                                    "embedding_dim": (32, 64), "optimizer": ("adam", "adagrad")}


def test_a_saved_hyperparameters_file_is_read_and_checked(tmp_path):
    values = {"learning_rate": 0.01, "optimizer": "adagrad", "tower_layers": "128-64"}
    path = _saved(tmp_path / "ok", values)
    assert read_hyperparameters(str(path)) == values
    assert _load({"hyperparameters_file": str(path)}).hyperparameters_file == str(path)


@pytest.mark.parametrize("case, expected", [
    ("missing", "no such file"),
    ("not_json", "not valid JSON"),
    ("no_values", "non-empty 'values' object"),
    ("unknown_key", "unknown hyperparameters ['batch_size']"),
    ("bad_value", "trainer.temperature must be > 0"),
    ("not_alone", "must be alone in its folder"),
    ("bad_layers", "tower_layers: expected layer widths like '128-64' or 'none', got '64-x'"),
])
def test_a_bad_hyperparameters_file_is_one_config_error(tmp_path, case, expected):
    folder = tmp_path / case
    path = folder / "best_hyperparameters.txt"
    if case == "not_json":
        folder.mkdir()
        path.write_text("{oops")
    elif case == "no_values":
        folder.mkdir()
        path.write_text(json.dumps({"space": []}))
    elif case == "unknown_key":
        _saved(folder, {"batch_size": 64})
    elif case == "bad_value":
        _saved(folder, {"temperature": -0.5})
    elif case == "bad_layers":
        _saved(folder, {"tower_layers": "64-x"})
    elif case == "not_alone":
        _saved(folder, {"temperature": 0.5})
        (folder / "notes.txt").write_text("x")
    with pytest.raises(ConfigError) as err:
        _load({"hyperparameters_file": str(path)})
    message = str(err.value)
    assert message.startswith(f"tuner.hyperparameters_file {path}") and expected in message and "\n" not in message


def test_tuning_and_reusing_saved_values_together_is_rejected(tmp_path):
    path = _saved(tmp_path, {"learning_rate": 0.01})
    with pytest.raises(ConfigError, match="tuner.enabled and hyperparameters_file are both set"):
        _load({"enabled": True, "hyperparameters_file": str(path)})
