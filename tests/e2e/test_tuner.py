"""The pipeline with the Tuner (2 trials) on tiny synthetic data, then a run that reuses the saved
best hyperparameters without tuning: MLMD lineage and what the Trainer applied."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.e2e.pipeline_runs import node_states

pytestmark = pytest.mark.e2e

TINY = {
    "synthetic": {"num_users": 200, "num_items": 120, "num_interactions": 5000},
    "compress": False,
    "trainer": {"embedding_dim": 16, "tower_layers": [], "max_epochs": 3, "ranking_max_epochs": 1,
                "early_stopping_patience": 1, "refit_on_all": False, "top_k": 20, "candidates_to_rank": 40},
    "candidate_ranker": {"enabled": False},  # BuildServingModel's ranker is not what is tested here
    "evaluation": {"cutoffs": [10, 20], "gate_baseline": "none"},
    "tuner": {"max_trials": 2, "max_epochs_per_trial": 2,
              "space": {"learning_rate": [0.003, 0.03], "temperature": [0.05, 0.1], "embedding_dim": []}},
}


def _store(cfg):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = cfg.metadata_path
    return metadata_store.MetadataStore(config)


def _artifacts(store, execution, kind, key):
    """Artifacts of `execution` by event kind ('INPUT' / 'OUTPUT') under channel `key`."""
    from ml_metadata.proto import metadata_store_pb2

    wanted = getattr(metadata_store_pb2.Event, kind)
    ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
           if e.type == wanted and any(s.HasField("key") and s.key == key for s in e.path.steps)]
    return store.get_artifacts_by_id(ids)


def _executions(store, cfg, node):
    (context,) = [c for c in store.get_contexts_by_type("node") if c.name == f"{cfg.pipeline_name}.{node}"]
    return sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)


def _summary(model_artifact):
    from trainer import entry

    path = os.path.join(model_artifact.uri, "Format-Serving", entry.SUMMARY_FILE)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    from pipeline import local_run
    from pipeline.config import load_config

    cfg = load_config(None, TINY).with_tuning().with_paths(str(tmp_path_factory.mktemp("tuner") / "out"))
    local_run.prepare_data(cfg, None)
    local_run.run_pipeline(cfg)
    return cfg


def test_the_trainer_applies_the_tuners_best_hyperparameters(tuned_run):
    from components.tuner import report_dir
    from trainer import tuning_report

    cfg = tuned_run
    store = _store(cfg)
    (tuner,) = _executions(store, cfg, "Tuner")
    (trainer,) = _executions(store, cfg, "Trainer")
    (best,) = _artifacts(store, tuner, "OUTPUT", "best_hyperparameters")
    (results,) = _artifacts(store, tuner, "OUTPUT", "tuner_results")
    (consumed,) = _artifacts(store, trainer, "INPUT", "hyperparameters")
    assert consumed.id == best.id  # lineage: the Trainer read the Tuner's artifact
    with open(os.path.join(best.uri, "best_hyperparameters.txt"), encoding="utf-8") as handle:
        values = json.load(handle)["values"]
    assert set(values) == {"learning_rate", "temperature"}
    (model,) = _artifacts(store, trainer, "OUTPUT", "model")
    assert _summary(model)["hyperparameters"] == values

    with open(os.path.join(results.uri, "tuner_results.json"), encoding="utf-8") as handle:
        trials = json.load(handle)
    assert len(trials) == 2
    report = report_dir(results.uri)
    with open(os.path.join(report, tuning_report.TABLE_FILE), encoding="utf-8") as handle:
        table = handle.read().splitlines()
    assert len(table) == 2 + 2 and "val_recall_at_20" in table[0]
    best_row = max(trials, key=lambda t: t["score"])
    assert any(line.endswith("| * |") and f"| {best_row['learning_rate']:.4g} |" in line for line in table[2:])
    assert os.path.getsize(os.path.join(report, tuning_report.CHART_FILE)) > 0
    assert os.listdir(os.path.join(report, tuning_report.SUMMARY_SUBDIR))
    assert {name for name in os.listdir(report) if name.startswith("trial_")} == {"trial_0", "trial_1"}


def test_a_saved_best_hyperparameters_file_is_reused_without_tuning(tuned_run, tmp_path):
    import dataclasses

    from pipeline import local_run
    from pipeline.config import TunerConfig

    cfg = tuned_run
    store = _store(cfg)
    (tuner,) = _executions(store, cfg, "Tuner")
    (best,) = _artifacts(store, tuner, "OUTPUT", "best_hyperparameters")
    saved = tmp_path / "saved" / "best_hyperparameters.txt"
    saved.parent.mkdir()
    shutil.copy(os.path.join(best.uri, "best_hyperparameters.txt"), saved)
    reuse = dataclasses.replace(cfg, tuner=TunerConfig(hyperparameters_file=str(saved)))
    local_run.run_pipeline(reuse)

    store = _store(cfg)
    states = node_states(cfg.metadata_path, cfg.pipeline_name)
    assert sum(states["Tuner"].values()) == 1  # the Tuner did not run again
    last = _executions(store, cfg, "Trainer")[-1]
    (consumed,) = _artifacts(store, last, "INPUT", "hyperparameters")
    assert consumed.uri == str(saved.parent) and consumed.id != best.id
    (model,) = _artifacts(store, last, "OUTPUT", "model")
    assert _summary(model)["hyperparameters"] == json.loads(saved.read_text())["values"]
