"""The whole TFX pipeline on the default synthetic data, with LocalDagRunner and MLMD on SQLite.

One module, so that one test worker builds the shared `first_run` once: the pipeline's own
checks, then the README's online commands in order on a copy of its output (`recsys events add`,
`recsys serve --events-log` with `POST /v1/events`, `recsys learn`, hot reload, `recsys
rollback`), then the tests that run the pipeline again on it.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import json
import os
import shutil
import time

import numpy as np
import pytest

from core import features as F
from tests.e2e.pipeline_runs import E2E_COMPRESSION, node_states
from tests.serving.conftest import http

pytestmark = pytest.mark.e2e
MODEL = "recsys"

EXPENSIVE_NODES = (
    "interaction_example_gen", "item_example_gen", "StatisticsGen", "ExampleValidator",
    "Transform", "Trainer", "CompressModel", "BuildServingModel",
)


def test_every_component_runs_once_and_a_version_is_pushed(first_run):
    from core import version_dirs

    cfg, states = first_run
    expected = set(EXPENSIVE_NODES) | {"ImportSchemaGen", "ValidationGate", "EvaluateModel", "AtomicPusher"}
    assert expected <= set(states), f"missing nodes: {expected - set(states)}"
    for node in expected:
        assert states[node] == collections.Counter(COMPLETE=1), f"{node}: {states[node]}"
    assert len(states["pushed versions"]) == 1
    assert min(version_dirs.versions(cfg.serving_model_dir)) in states["pushed versions"]


def test_pushed_model_answers_the_serving_contract(first_run):
    import tensorflow as tf

    from cli.recommend import resolve_version_dir

    cfg, _ = first_run
    loaded = tf.saved_model.load(resolve_version_dir(cfg.serving_model_dir))
    fn = loaded.signatures[F.SERVING_SIGNATURE]
    inputs = fn.structured_input_signature[1]
    assert list(inputs) == [F.SERVING_INPUT_USER] and inputs[F.SERVING_INPUT_USER].dtype == tf.string
    out = fn(**{F.SERVING_INPUT_USER: tf.constant(["1", "2", "no-such-user"])})
    items, scores = out[F.SERVING_OUTPUT_ITEMS], out[F.SERVING_OUTPUT_SCORES]
    assert items.dtype == tf.string and scores.dtype == tf.float32
    assert items.shape == (3, cfg.trainer.top_k) and scores.shape == (3, cfg.trainer.top_k)
    assert np.all(np.diff(scores.numpy(), axis=1) <= 1e-6)
    warmup = os.path.join(resolve_version_dir(cfg.serving_model_dir), "assets.extra", "tf_serving_warmup_requests")
    assert os.path.getsize(warmup) > 0


def test_pushed_model_never_recommends_a_users_eval_split_items(first_run):
    """The pushed model's tables hold every interaction: items a user rated in the eval split
    (their newest, on this temporal split) are seen items, never recommended back."""
    import tensorflow as tf

    from cli.recommend import resolve_version_dir
    from core import tfrecord_columns

    cfg, _ = first_run
    eval_files = glob.glob(os.path.join(cfg.data_root, "interactions", "span-*", "eval", "*.gz"))
    columns = tfrecord_columns.read_columns(eval_files, [F.USER_ID, F.ITEM_ID], decode_strings=True)
    users, items = columns[F.USER_ID].astype(str), columns[F.ITEM_ID].astype(str)
    sample = sorted(set(users))[:60]
    fn = tf.saved_model.load(resolve_version_dir(cfg.serving_model_dir)).signatures[F.SERVING_SIGNATURE]
    served = fn(**{F.SERVING_INPUT_USER: tf.constant(sample)})[F.SERVING_OUTPUT_ITEMS].numpy().astype(str)
    overlaps = [set(row) & set(items[users == user]) for user, row in zip(sample, served)]
    assert all(not overlap for overlap in overlaps), overlaps
    assert sum(len(items[users == user]) for user in sample) > len(sample)  # the check has items to find


def test_model_beats_popularity_and_is_blessed(first_run):
    from cli.summary import latest_evaluation

    cfg, _ = first_run
    evaluation = latest_evaluation(cfg.pipeline_root)
    results = evaluation["results"]
    assert evaluation["blessing"]["blessed"], evaluation["blessing"]
    assert results["two_stage"]["recall_at_20"] > 1.2 * results["popularity"]["recall_at_20"], results
    for model in ("two_stage", "retrieval_only", "item_item_only", "popularity", "ease"):
        assert 0.0 <= results[model]["ndcg_at_10"] <= 1.0
    assert results["two_stage"]["rmse"] < results["bias_model"]["rmse"] * 1.5
    assert set(evaluation["slices"]) >= {"cold", "light", "heavy", "head", "tail"}
    assert os.path.exists(os.path.join(evaluation["path"], "report.png"))


def test_tensorboard_has_training_and_evaluation_scalars(first_run):
    import tensorflow as tf

    cfg, _ = first_run
    tags = set()
    for event_file in glob.glob(os.path.join(cfg.pipeline_root, "**", "events.out.tfevents.*"), recursive=True):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            tags.update(value.tag for value in event.summary.value)
    assert "epoch_loss" in tags
    assert {"two_stage/recall_at_20", "popularity/recall_at_20", "item_item_only/recall_at_20"} <= tags
    assert {"full/gzip_bytes", "full/recall_at_20", "int8/gzip_bytes"} <= tags  # the compression report


def _copy_output(cfg, target):
    """The parts of `recsys run --output` the online commands use (artifact URIs stay absolute)."""
    for name in ("data", "serving_model"):
        shutil.copytree(os.path.join(os.path.dirname(cfg.metadata_path), name), target / name)
    shutil.copy(cfg.metadata_path, target / "metadata.sqlite")


def _repeat_events(data_root, n):
    """`n` events that repeat training interactions of `n` users (more of the same behaviour)."""
    from ingest import writer

    events, users = [], set()
    for row in writer.read_examples(writer.split_pattern(data_root, 0, F.TRAIN_SPLIT)):
        if row[F.USER_ID] not in users and len(events) < n:
            users.add(row[F.USER_ID])
            events.append({"event_id": f"f{len(events)}", F.USER_ID: row[F.USER_ID], F.ITEM_ID: row[F.ITEM_ID],
                           "rating": float(row[F.RATING])})
    return events


def _served_version(port, timeout_s=120.0):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        status, reply = http(port, "GET", f"/v1/models/{MODEL}")
        if status == 200:
            available = [int(v["version"]) for v in reply["model_version_status"] if v["state"] == "AVAILABLE"]
            if available:
                yield max(available)
        time.sleep(0.5)


def _wait_for_version(port, version):
    for served in _served_version(port):
        if served == version:
            return
    pytest.fail(f"the server did not load version {version}")


def test_events_serve_learn_and_rollback_on_the_default_output(first_run, tmp_path, capsys):
    from cli import main as cli
    from compression.serving_variants import read_marker
    from core.version_dirs import versions as latest_versions
    from online import artifacts
    from online.event_log import LogReader
    from online.events_route import routes_from_args
    from online.http_handler import ROUTE
    from serving.cli import build_config, register
    from serving.server import ModelServer

    cfg, _ = first_run
    out = tmp_path / "out"
    _copy_output(cfg, out)
    before = latest_versions(str(out / "serving_model"))
    pushed = before[-1]
    events = _repeat_events(str(out / "data"), 20)
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    assert cli.main(["events", "add", "--file", str(tmp_path / "events.jsonl"), "--output", str(out)]) == 0

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    serve_args = parser.parse_args([
        "serve", "--model-base-path", str(out / "serving_model"), "--events-log", str(out / "events"),
        "--model-name", MODEL, "--grpc-port", "0", "--rest-port", "0", "--poll-interval-s", "0.2"])
    with ModelServer(build_config(serve_args), extra_routes=routes_from_args(serve_args)) as server:
        port = server.ports.rest
        _wait_for_version(port, pushed)
        batch = {"events": [{**events[0], "event_id": "web-1"}]}
        status, reply = http(port, "POST", ROUTE, batch)
        assert status == 200 and reply["appended"] == 1
        assert len(LogReader(str(out / "events")).read()) == len(events) + 1

        capsys.readouterr()
        assert cli.main(["learn", "--output", str(out), "--max-exports", "1", "--max-seconds", "300"]) == 0
        printed = capsys.readouterr().out
        versions = latest_versions(str(out / "serving_model"))
        assert len(versions) == len(before) + 1, printed
        learned = versions[-1]
        variant = read_marker(artifacts.locate_base(str(out / "metadata.sqlite")).trained_dir)["variant"]
        assert f"compression variant '{variant}'" in printed and "1 version(s) exported" in printed
        # The learned version keeps the pushed model's ranker over every default source.
        assert "candidate ranker over " + ", ".join(cfg.candidate_ranker.sources) in printed, printed
        _wait_for_version(port, learned)
        status, reply = http(port, "POST", f"/v1/models/{MODEL}:predict", {"instances": ["3"]})
        assert status == 200 and len(reply["predictions"][0][F.SERVING_OUTPUT_ITEMS]) == cfg.trainer.top_k

        assert cli.main(["rollback", "--to", str(pushed), "--output", str(out)]) == 0
        restored = latest_versions(str(out / "serving_model"))[-1]
        assert restored > learned
        _wait_for_version(port, restored)


def test_second_run_is_served_from_the_cache(first_run):
    """Independent of the other tests' runs: compared with the store's state just before."""
    from core import version_dirs
    from pipeline import local_run

    cfg, _ = first_run
    before = node_states(cfg.metadata_path, cfg.pipeline_name)
    versions = version_dirs.versions(cfg.serving_model_dir)
    local_run.run_pipeline(cfg)
    after = node_states(cfg.metadata_path, cfg.pipeline_name)
    for node in EXPENSIVE_NODES:
        assert after[node] - before[node] == collections.Counter(CACHED=1), f"{node}: {before[node]} -> {after[node]}"
    # The same model is not published as a new version.
    assert version_dirs.versions(cfg.serving_model_dir) == versions


def test_a_much_worse_model_is_refused_against_the_blessed_one(first_run, tmp_path, capsys):
    from cli.summary import latest_evaluation
    from core import version_dirs

    from cli import main

    cfg, _ = first_run
    versions = version_dirs.versions(cfg.serving_model_dir)
    # Untrained networks served in their own order (no candidate ranker, whose other sources
    # would carry the model), without the compression stage, whose fine-tuning would repair part
    # of the damage; run as a user runs it, through `recsys run`.
    config = tmp_path / "untrained.json"
    config.write_text(json.dumps({"compress": False, "candidate_ranker": {"enabled": False},
                                  "trainer": {"epochs": 0, "ranking_epochs": 0, "early_stopping_patience": 0}}))
    output = os.path.dirname(cfg.pipeline_root)
    assert main.main(["run", "--output", output, "--config", str(config), "--verbose"]) == main.EXIT_GATE_REFUSED
    err = capsys.readouterr().err
    assert "recsys run: error: the evaluation gate refused the model, nothing was pushed: recall_at_20" in err
    assert "Traceback" not in err
    evaluation = latest_evaluation(cfg.pipeline_root)
    assert not evaluation["blessing"]["blessed"]
    assert "recall_at_20" in evaluation["blessing"]["reason"]
    assert version_dirs.versions(cfg.serving_model_dir) == versions
    with open(os.path.join(evaluation["path"], "metrics.json")) as handle:
        assert json.load(handle)["blessing"]["blessed"] is False


def test_recsys_recommend_prints_titles_from_the_pushed_model(first_run, capsys):
    from cli import main

    cfg, _ = first_run
    assert main.main(["recommend", "--model", cfg.serving_model_dir, "--user", "1", "-k", "3"]) == 0
    out = capsys.readouterr().out
    assert "Top 3 for user 1" in out
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 3 and all("?" not in row for row in rows)


def test_recsys_recommend_through_the_model_server_matches_the_saved_model(first_run, capsys):
    from cli import main, recommend
    from serving.config import ModelConfig, ServerConfig
    from serving.server import ModelServer

    cfg, _ = first_run
    server_cfg = ServerConfig(
        models=(ModelConfig(name=cfg.pipeline_name, base_path=cfg.serving_model_dir),),
        grpc_port=0, rest_port=0,
    )
    with ModelServer(server_cfg) as server:
        target = f"127.0.0.1:{server.ports.grpc}"
        via_server = recommend.recommend_from_server(target, cfg.pipeline_name, "2", 5)
        assert main.main(["recommend", "--server", target, "--user", "2", "-k", "5"]) == 0
    local = recommend.recommend_from_saved_model(cfg.serving_model_dir, "2", 5)
    assert [r[0] for r in via_server] == [r[0] for r in local]
    assert [r[2] for r in via_server] == [r[2] for r in local]
    np.testing.assert_allclose([r[1] for r in via_server], [r[1] for r in local], rtol=1e-5)
    assert "Top 5 for user 2" in capsys.readouterr().out


def test_the_compression_report_is_printed_and_its_choice_is_served(first_run):
    import tensorflow as tf

    from cli.summary import run_summary
    from compression.serving_variants import read_marker
    from core import version_dirs

    cfg, _ = first_run
    (report_dir,) = glob.glob(os.path.join(cfg.pipeline_root, "CompressModel", "report", "*"))
    assert os.path.getsize(os.path.join(report_dir, "report.png")) > 0
    (chosen_dir,) = glob.glob(os.path.join(cfg.pipeline_root, "CompressModel", "compressed_model", "*", "Format-Serving"))
    marker = read_marker(chosen_dir)
    summary = run_summary(cfg, 1.0, {}, sample_users=1)
    assert "# Model compression" in summary and f"**Selected:** `{marker['variant']}`" in summary
    assert marker["variant"] in ("full", *E2E_COMPRESSION["variants"])
    pushed = os.path.join(cfg.serving_model_dir, str(version_dirs.versions(cfg.serving_model_dir)[0]))  # the first run's
    dtypes = tf.train.load_checkpoint(os.path.join(pushed, "variables", "variables")).get_variable_to_dtype_map()
    assert any(dtype == tf.int8 for dtype in dtypes.values()) == marker["int8_candidate_embeddings"]
    assert not os.path.exists(os.path.join(pushed, "trained")), "the warm-start networks are not pushed"


def test_a_warm_started_run_on_a_new_span_is_evaluated_and_pushed(first_run):
    """Continuous training: a new span, the Trainer starting from the latest blessed model.

    This run's Beam components use the DirectRunner in multi-processing mode with 2 worker
    processes (the local setting for larger data), so that mode is exercised end to end too.
    """
    from cli.summary import latest_evaluation
    from core import version_dirs
    from pipeline import local_run
    from pipeline.config import BeamConfig
    from trainer.entry import TRAINED_SUBDIR, WARM_START_FILE

    cfg, _ = first_run
    interactions = os.path.join(cfg.data_root, "interactions")
    shutil.copytree(os.path.join(interactions, "span-0"), os.path.join(interactions, "span-1"))
    before = version_dirs.versions(cfg.serving_model_dir)
    beam = BeamConfig(direct_num_workers=2, direct_running_mode="multi_processing")
    try:
        local_run.run_pipeline(dataclasses.replace(cfg, warm_start=True, compress=False, beam=beam))
    finally:  # the other tests read span-0 again, in any order
        shutil.rmtree(os.path.join(interactions, "span-1"))
    newest_model = max(glob.glob(os.path.join(cfg.pipeline_root, "Trainer", "model", "*")),
                       key=lambda p: int(os.path.basename(p)))
    with open(os.path.join(newest_model, "Format-Serving", WARM_START_FILE)) as handle:
        record = json.load(handle)
    blessed_build = os.path.dirname(record["source"])
    assert os.path.basename(record["source"]) == TRAINED_SUBDIR
    assert os.path.dirname(blessed_build) == os.path.join(cfg.pipeline_root, "BuildServingModel", "serving_model")
    assert record["copied"] and not record["fresh"]
    assert record["remapped"][f"ranking_model/{F.USER_ID}_embedding"]["new"] == 0  # same users: every row kept
    evaluation = latest_evaluation(cfg.pipeline_root)
    assert evaluation["blessing"]["blessed"], evaluation["blessing"]
    assert len(version_dirs.versions(cfg.serving_model_dir)) == len(before) + 1
