"""The Tuner's module: hyperparameters applied to TrainerConfig, the search on the tiny data, the
objective (the early-stopping Recall@K), and the trial report (table, PNG, TensorBoard)."""

from __future__ import annotations

import json
import math
import os

import pytest

from core.config_loader import ConfigError

TINY_TRAINER = {"embedding_dim": 8, "tower_layers": [], "batch_size": 64, "max_epochs": 3, "ranking_max_epochs": 1,
                "learning_rate": 0.01, "split": "random", "validation_cutoff": 2}


def _scalars(folder, tag):
    """{step: value} of scalar `tag` in the event files under `folder` (recursively)."""
    import tensorflow as tf

    values = {}
    for root, _, files in os.walk(folder):
        for name in files:
            if not name.startswith("events.out.tfevents"):
                continue
            for event in tf.compat.v1.train.summary_iterator(os.path.join(root, name)):
                for value in event.summary.value:
                    if value.tag == tag:
                        values[event.step] = float(tf.make_ndarray(value.tensor)) if value.HasField("tensor") \
                            else value.simple_value
    return values


def test_apply_sets_only_tunable_keys_and_checks_them():
    from trainer.config import TrainerConfig
    from trainer.tuning import apply_hyperparameters

    cfg, applied = apply_hyperparameters(TrainerConfig(), {"learning_rate": 0.02, "optimizer": "adagrad",
                                                           "batch_size": 7})
    assert applied == {"learning_rate": 0.02, "optimizer": "adagrad"}
    assert (cfg.learning_rate, cfg.optimizer, cfg.batch_size) == (0.02, "adagrad", TrainerConfig().batch_size)
    with pytest.raises(ConfigError, match="trainer.temperature must be > 0"):
        apply_hyperparameters(TrainerConfig(), {"temperature": 0.0})


def test_tuned_config_reads_a_keras_tuner_hyperparameters_config():
    from trainer.config import TrainerConfig
    from trainer.entry import tuned_config
    from trainer.tuner_config import SearchSpace
    from trainer.tuning import hyperparameters

    hp = hyperparameters(SearchSpace(learning_rate=(0.03,), temperature=(), embedding_dim=(16, 32)))
    assert sorted(hp.values) == ["embedding_dim", "learning_rate"]
    cfg, applied = tuned_config(TrainerConfig(), hp.get_config())
    assert applied == {"learning_rate": 0.03, "embedding_dim": 16}
    assert (cfg.learning_rate, cfg.embedding_dim) == (0.03, 16)
    assert tuned_config(TrainerConfig(), None) == (TrainerConfig(), {})


def test_layer_widths_are_searched_as_strings_and_applied_as_layers():
    from trainer.config import TrainerConfig
    from trainer.tuner_config import SearchSpace
    from trainer.tuning import apply_hyperparameters, hyperparameters

    space = SearchSpace(learning_rate=(), temperature=(), embedding_dim=(), tower_layers=((128, 64), (), (32,)))
    hp = hyperparameters(space)
    assert hp.space[0].values == ["128-64", "none", "32"]
    for encoded, layers in (("128-64", (128, 64)), ("none", ()), ("32", (32,))):
        cfg, applied = apply_hyperparameters(TrainerConfig(), {"tower_layers": encoded})
        assert cfg.tower_layers == layers and applied == {"tower_layers": encoded}
    with pytest.raises(ConfigError, match="tower_layers: expected layer widths"):
        apply_hyperparameters(TrainerConfig(), {"tower_layers": "wide"})


def test_the_search_is_seeded_by_the_config():
    from trainer.config import TrainerConfig
    from trainer.tuner_config import TunerConfig
    from trainer.tuning import build_oracle

    oracle = build_oracle(TrainerConfig(validation_cutoff=10), TunerConfig(seed=5, max_trials=3))
    assert (oracle.seed, oracle.max_trials, oracle.objective.name) == (5, 3, "val_recall_at_10")
    assert build_oracle(TrainerConfig(), TunerConfig()).seed == TunerConfig().seed


def test_report_writes_the_table_the_png_and_a_scalar_per_trial(tmp_path):
    from trainer import tuning_report

    rows = [{"trial": "00", "status": "COMPLETED", "learning_rate": 0.01, "objective": 0.25, "best_epoch": 2},
            {"trial": "01", "status": "COMPLETED", "learning_rate": 0.1, "objective": 0.5, "best_epoch": 1},
            {"trial": "02", "status": "INVALID", "learning_rate": 1.0, "objective": math.nan, "best_epoch": None}]
    paths = tuning_report.write_report(str(tmp_path), rows, "val_recall_at_20")
    table = (tmp_path / tuning_report.TABLE_FILE).read_text()
    lines = table.splitlines()
    assert lines[0] == "| trial | status | learning_rate | val_recall_at_20 | best_epoch | best |"
    assert lines[3] == "| 01 | COMPLETED | 0.1 | 0.5 | 1 | * |" and lines[2].endswith("|  |")
    assert "| 02 | INVALID | 1 | nan |" in lines[4]
    assert (tmp_path / tuning_report.CHART_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    scalars = _scalars(paths["tensorboard"], tuning_report.SCALAR_TAG)
    assert scalars[0] == pytest.approx(0.25) and scalars[1] == pytest.approx(0.5) and math.isnan(scalars[2])


@pytest.fixture(scope="module")
def searched(transformed_tiny, tmp_path_factory):
    """tuner_fn's tuner on the tiny data, searched for 2 trials."""
    from tfx.components.trainer.fn_args_utils import FnArgs

    from trainer import tuning

    root = tmp_path_factory.mktemp("tuning")
    custom = {tuning.TRAINER_KEY: TINY_TRAINER,
              tuning.TUNER_KEY: {"max_trials": 2, "max_epochs_per_trial": 2,
                                 "space": {"learning_rate": [0.03], "temperature": [], "embedding_dim": [8],
                                           "tower_layers": [[], [8]]}},
              tuning.REPORT_DIR_KEY: str(root / "report")}
    fn_args = FnArgs(train_files=[transformed_tiny.train_pattern], eval_files=[transformed_tiny.train_pattern],
                     transform_graph_path=transformed_tiny.transform_dir, working_dir=str(root / "work"),
                     custom_config=custom)
    result = tuning.tuner_fn(fn_args)
    result.tuner.search(**result.fit_kwargs)
    return result.tuner, root / "report"


def test_two_trials_score_the_label_slice_recall_and_are_reported(searched):
    from trainer import tuning_report

    tuner, report = searched
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 2 and {t.hyperparameters.values["tower_layers"] for t in trials} == {"none", "8"}
    assert tuner.oracle.objective.name == "val_recall_at_2"
    table = (report / tuning_report.TABLE_FILE).read_text().splitlines()
    assert len(table) == 4 and "val_recall_at_2" in table[0]
    assert (report / tuning_report.CHART_FILE).stat().st_size > 0
    objective = _scalars(str(report / tuning_report.SUMMARY_SUBDIR), tuning_report.SCALAR_TAG)
    for step, trial in enumerate(sorted(trials, key=lambda t: int(t.trial_id))):
        score = trial.metrics.get_best_value("val_recall_at_2")
        assert 0.0 < score <= 1.0 and objective[step] == pytest.approx(score)
        # the objective is the best epoch of the curve early stopping logged for this trial (Keras
        # writes `val_*` metrics to the validation folder without the prefix)
        curve = _scalars(os.path.join(tuning_report.trial_log_dir(str(report), trial.trial_id), "validation"),
                         "epoch_recall_at_2")
        assert 1 <= len(curve) <= 2 and max(curve.values()) == pytest.approx(score)
        assert curve[int(trial.metrics.get_best_value("best_epoch")) - 1] == pytest.approx(score)


def test_run_fn_trains_with_the_best_hyperparameters(searched, transformed_tiny, tmp_path, monkeypatch, capsys):
    from tfx.components.trainer.fn_args_utils import FnArgs

    from trainer import entry, train

    tuner, _ = searched
    best = tuner.get_best_hyperparameters()[0]
    configs = []
    original = train.train
    monkeypatch.setattr(train, "train", lambda *args, **kwargs: configs.append(args[3]) or original(*args, **kwargs))
    entry.run_fn(FnArgs(train_files=[transformed_tiny.train_pattern], eval_files=[transformed_tiny.train_pattern],
                        transform_output=transformed_tiny.transform_dir, serving_model_dir=str(tmp_path / "model"),
                        model_run_dir=str(tmp_path / "logs"), train_steps=None,
                        custom_config={entry.HPARAMS_KEY: {**TINY_TRAINER, "refit_on_all": False}},
                        hyperparameters=json.loads(json.dumps(best.get_config()))))
    summary = json.loads((tmp_path / "model" / entry.SUMMARY_FILE).read_text())
    assert summary["hyperparameters"] == best.values
    assert f"applied hyperparameters: {json.dumps(best.values, sort_keys=True)}" in capsys.readouterr().out
    layers = () if best.values["tower_layers"] == "none" else (8,)
    assert configs and all((cfg.learning_rate, cfg.tower_layers) == (0.03, layers) for cfg in configs)


def test_a_failing_trial_stops_the_search_with_its_error(tmp_path):
    from trainer.config import TrainerConfig
    from trainer.tuner_config import TunerConfig
    from trainer.tuning import RetrievalTuner, build_oracle

    class Broken(RetrievalTuner):
        def run_trial(self, trial, *args, **kwargs):
            raise ValueError("the fit part is empty")

    oracle = build_oracle(TrainerConfig(), TunerConfig(max_trials=3))
    tuner = Broken(oracle, None, None, TrainerConfig(), 1, str(tmp_path / "report"), str(tmp_path / "work"))
    with pytest.raises(RuntimeError, match="the fit part is empty"):
        tuner.search(verbose=0)
    assert len(oracle.trials) == 1  # stopped at the first failure, not after the whole budget
