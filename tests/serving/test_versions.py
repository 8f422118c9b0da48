"""Hot reload: new versions swap in, broken ones never replace a serving version."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time

import grpc
import pytest

from core.features import SERVING_OUTPUT_SCORES
from serving.config import VersionPolicy
from tests.serving.conftest import MODEL, http, make_config, wait_for
from tests.serving.tiny_models import expected, install


def _states(server):
    return {r.version: (r.state, r.error_message) for r in server.core.status(MODEL)}


def _score(port: int, path: str = f"/v1/models/{MODEL}:predict") -> float:
    status, body = http(port, "POST", path, {"instances": ["u1"]})
    assert status == 200, body
    return body["predictions"][0][SERVING_OUTPUT_SCORES][0]


def test_new_version_is_loaded_and_swapped_in(base_path, model_store, start_server) -> None:
    server = start_server(make_config(base_path))
    port = server.ports.rest
    assert _score(port) == pytest.approx(expected("u1", 1)[1][0])
    install(model_store["v2"], base_path, 2)
    assert wait_for(lambda: _states(server).get(2, ("",))[0] == "AVAILABLE")
    assert _score(port) == pytest.approx(expected("u1", 2)[1][0])
    assert wait_for(lambda: _states(server)[1][0] == "END")
    assert http(port, "POST", f"/v1/models/{MODEL}/versions/1:predict", {"instances": ["u1"]})[0] == 404


def test_in_flight_request_finishes_on_its_version(base_path, model_store, start_server) -> None:
    server = start_server(make_config(base_path))
    port = server.ports.rest
    result = {}
    slow = {"signature_name": "slow", "instances": [{"user_id": "u1", "delay_us": 800_000}]}

    def call() -> None:
        result["reply"] = http(port, "POST", f"/v1/models/{MODEL}:predict", slow)

    caller = threading.Thread(target=call)
    caller.start()
    assert wait_for(lambda: server.core.inflight == 1, timeout_s=5)
    install(model_store["v2"], base_path, 2)
    assert wait_for(lambda: _states(server).get(2, ("",))[0] == "AVAILABLE")
    assert _states(server)[1][0] == "UNLOADING"  # pinned by the slow request
    assert _score(port) == pytest.approx(expected("u1", 2)[1][0])
    caller.join(timeout=10)
    status, body = result["reply"]
    assert status == 200
    assert body["predictions"][0][SERVING_OUTPUT_SCORES][0] == pytest.approx(expected("u1", 1)[1][0])
    assert wait_for(lambda: _states(server)[1][0] == "END")


@pytest.mark.parametrize("breakage", ["corrupt", "wrong_signature", "half_copied"])
def test_broken_version_keeps_the_old_one_serving(base_path, model_store, start_server,
                                                  breakage) -> None:
    server = start_server(make_config(base_path))
    port = server.ports.rest
    broken = os.path.join(base_path, "2")
    if breakage == "corrupt":
        shutil.copytree(model_store["v2"], broken)
        with open(os.path.join(broken, "saved_model.pb"), "wb") as handle:
            handle.write(b"\x00garbage" * 100)
    elif breakage == "wrong_signature":
        install(model_store["wrong"], base_path, 2)
    else:
        shutil.copytree(os.path.join(model_store["v2"], "variables"), os.path.join(broken, "variables"))
    assert wait_for(lambda: _states(server).get(2, ("",))[0] == "END")
    state, message = _states(server)[2]
    assert message, "the failure must be reported in the version status"
    assert _states(server)[1][0] == "AVAILABLE"
    assert _score(port) == pytest.approx(expected("u1", 1)[1][0])
    assert server.metrics.load_failures.value(MODEL) == 1
    status, body = http(port, "GET", f"/v1/models/{MODEL}/versions/2")
    assert status == 200 and body["model_version_status"][0]["status"]["error_code"] == "UNKNOWN"
    assert http(port, "GET", "/readyz")[0] == 200
    # once the version is rewritten correctly it is retried and served
    shutil.rmtree(broken)
    install(model_store["v2"], base_path, 2)
    assert wait_for(lambda: _states(server).get(2, ("",))[0] == "AVAILABLE")
    assert _score(port) == pytest.approx(expected("u1", 2)[1][0])


def test_latest_two_and_specific_policies(base_path, model_store, start_server) -> None:
    install(model_store["v2"], base_path, 2)
    install(model_store["v3"], base_path, 3)
    latest = start_server(make_config(base_path, version_policy=VersionPolicy(num_versions=2)))
    assert {v for v, (s, _) in _states(latest).items() if s == "AVAILABLE"} == {2, 3}
    port = latest.ports.rest
    assert _score(port, f"/v1/models/{MODEL}/versions/2:predict") == pytest.approx(2.3)
    assert _score(port) == pytest.approx(3.3)
    specific = start_server(make_config(base_path, version_policy=VersionPolicy(
        kind="specific", versions=(1,)), version_labels=(("stable", 1),)))
    assert {v for v, (s, _) in _states(specific).items() if s == "AVAILABLE"} == {1}
    assert _score(specific.ports.rest, f"/v1/models/{MODEL}/labels/stable:predict") == pytest.approx(1.3)


def test_labels_can_be_moved_to_available_versions(base_path, model_store, start_server) -> None:
    install(model_store["v2"], base_path, 2)
    server = start_server(make_config(base_path, version_policy=VersionPolicy(kind="all"),
                                      version_labels=(("stable", 1), ("canary", 2))))
    port = server.ports.rest
    assert _score(port, f"/v1/models/{MODEL}/labels/canary:predict") == pytest.approx(2.3)
    server.versions.set_labels(MODEL, {"stable": 2})
    assert _score(port, f"/v1/models/{MODEL}/labels/stable:predict") == pytest.approx(2.3)
    assert http(port, "POST", f"/v1/models/{MODEL}/labels/canary:predict",
                {"instances": ["u1"]})[0] == 400
    with pytest.raises(Exception, match="not available"):
        server.versions.set_labels(MODEL, {"stable": 9})


def test_readiness_waits_for_a_first_version(tmp_path, model_store, start_server) -> None:
    empty = str(tmp_path / "empty")
    server = start_server(make_config(empty))
    port = server.ports.rest
    assert http(port, "GET", "/readyz")[0] == 503
    assert http(port, "GET", "/healthz")[0] == 200
    assert http(port, "POST", f"/v1/models/{MODEL}:predict", {"instances": ["u1"]})[0] == 404
    install(model_store["v1"], empty, 1)
    assert wait_for(lambda: http(port, "GET", "/readyz")[0] == 200)
    assert _score(port) == pytest.approx(1.3)


def test_versions_outside_the_base_path_are_ignored(tmp_path, model_store, start_server,
                                                   caplog) -> None:
    caplog.set_level(logging.WARNING)
    base = str(tmp_path / "base")
    outside = str(tmp_path / "outside")
    install(model_store["v2"], outside, 2)
    install(model_store["v1"], base, 1)
    os.symlink(os.path.join(outside, "2"), os.path.join(base, "5"))
    os.makedirs(os.path.join(base, "7.tmp"))
    server = start_server(make_config(base))
    assert set(_states(server)) == {1}
    time.sleep(0.5)  # five polls: the warning is logged once, not on every poll
    assert len([r for r in caplog.records if "resolves outside" in r.getMessage()]) == 1


def _half_written(source: str, target: str) -> tuple:
    """Copy a version except the second half of its data file; returns (data path, rest)."""
    shutil.copytree(source, target)
    data = [n for n in os.listdir(os.path.join(target, "variables")) if n.startswith("variables.data")]
    path = os.path.join(target, "variables", data[0])
    with open(path, "rb") as handle:
        content = handle.read()
    with open(path, "wb") as handle:
        handle.write(content[:len(content) // 2])
    return path, content[len(content) // 2:]


def _append(path: str, rest: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(rest)


@pytest.fixture(scope="module")
def heavy_model(tmp_path_factory) -> str:
    """A version with a 1 MB variable, so half a data file cannot load."""
    from tests.serving.tiny_models import build_tiny_model

    return build_tiny_model(str(tmp_path_factory.mktemp("heavy") / "v2"), 2, payload_mb=1)


def test_a_version_still_being_written_is_not_loaded_yet(base_path, heavy_model,
                                                         start_server) -> None:
    server = start_server(make_config(base_path, poll_interval_s=3600.0))  # polls by hand
    path, rest = _half_written(heavy_model, os.path.join(base_path, "2"))
    server.versions.poll_once()
    assert 2 not in _states(server), "a version first seen must wait for a second look"
    _append(path, rest)
    server.versions.poll_once()
    assert 2 not in _states(server), "its files changed since the last poll: still settling"
    server.versions.poll_once()
    assert _states(server)[2] == ("AVAILABLE", "")
    assert server.metrics.load_failures.value(MODEL) == 0
    assert _score(server.ports.rest) == pytest.approx(expected("u1", 2)[1][0])


def test_a_failed_version_is_retried_once_its_data_file_changes(base_path, heavy_model,
                                                                start_server) -> None:
    server = start_server(make_config(base_path, poll_interval_s=3600.0))
    path, rest = _half_written(heavy_model, os.path.join(base_path, "2"))
    server.versions.poll_once()
    server.versions.poll_once()  # stable (the writer paused): loaded, and it fails
    assert _states(server)[2][0] == "END" and _states(server)[2][1]
    server.versions.poll_once()
    assert _states(server)[2][0] == "END", "unchanged since the failure: not retried"
    _append(path, rest)  # only the data file changes: saved_model.pb and the index do not
    server.versions.poll_once()
    server.versions.poll_once()
    assert _states(server)[2] == ("AVAILABLE", "")
    assert _score(server.ports.rest) == pytest.approx(expected("u1", 2)[1][0])


def test_a_data_file_written_in_two_halves_ends_up_served(base_path, heavy_model,
                                                          start_server) -> None:
    server = start_server(make_config(base_path))
    path, rest = _half_written(heavy_model, os.path.join(base_path, "2"))
    time.sleep(1.0)  # ten polls see the half-written file
    _append(path, rest)
    assert wait_for(lambda: _states(server).get(2, ("",))[0] == "AVAILABLE", timeout_s=20)
    assert _score(server.ports.rest) == pytest.approx(expected("u1", 2)[1][0])


@pytest.mark.parametrize("link", ["variables", os.path.join("variables", "variables.index")])
def test_a_version_with_a_symlink_outside_the_base_path_is_refused(
        tmp_path, model_store, start_server, caplog, link) -> None:
    base = str(tmp_path / "base")
    install(model_store["v1"], base, 1)
    outside = str(tmp_path / "outside")
    shutil.copytree(model_store["v2"], outside)
    version = os.path.join(base, "2")
    shutil.copytree(model_store["v2"], version)
    target = os.path.join(version, link)
    shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
    os.symlink(os.path.join(outside, link), target)
    caplog.set_level(logging.WARNING, logger="serving.version_scan")
    server = start_server(make_config(base))
    time.sleep(1.0)  # ten polls
    state, code, message = [(r.state, r.error_code, r.error_message)
                            for r in server.core.status(MODEL) if r.version == 2][0]
    assert (state, code) == ("END", grpc.StatusCode.FAILED_PRECONDITION)
    assert link in message and "outside the base path" in message
    assert _score(server.ports.rest) == pytest.approx(expected("u1", 1)[1][0])
    warnings = [r for r in caplog.records if "outside the base path" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
