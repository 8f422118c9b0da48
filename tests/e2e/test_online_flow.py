"""The README's online commands, in order, on the default pipeline's output (compression on).

`recsys events add --file`, `recsys serve --events-log` with ``POST /v1/events``, `recsys learn`
(its version is hot-reloaded by the running server) and `recsys rollback --to VERSION`, on a copy
of the shared `first_run` output (the pipeline is not run again).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

import pytest

from tests.serving.conftest import http
from core import features as F

pytestmark = pytest.mark.e2e
MODEL = "recsys"


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
