"""SIGTERM drain of ``python -m serving.cli serve`` in a child process, and in-process stop."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.serving.conftest import MODEL, http, make_config, wait_for
from tests.serving.tiny_models import install

REPO = pathlib.Path(__file__).resolve().parents[2]
SLOW = {"signature_name": "slow", "instances": [{"user_id": "u1", "delay_us": 1_500_000}]}


def _read_ports(process: subprocess.Popen, timeout_s: float) -> tuple:
    found = {}

    def reader() -> None:
        for line in process.stdout:
            if line.startswith("serving grpc="):
                parts = dict(p.split("=") for p in line.split()[1:])
                found["ports"] = (int(parts["grpc"]), int(parts["rest"]))
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert "ports" in found, "the server did not report its ports in time"
    return found["ports"]


@pytest.mark.slow
def test_sigterm_drains_in_flight_requests_then_exits(tmp_path, model_store) -> None:
    base = str(tmp_path / "base")
    install(model_store["v1"], base, 1)
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "serve", "--model-base-path", base,
         "--model-name", MODEL, "--grpc-port", "0", "--rest-port", "0", "--num-batch-threads", "1",
         "--max-batch-size", "1", "--drain-grace-s", "10", "--log-level", "WARNING"],
        cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        _, rest = _read_ports(process, timeout_s=120)
        result = {}
        caller = threading.Thread(target=lambda: result.setdefault(
            "reply", http(rest, "POST", f"/v1/models/{MODEL}:predict", SLOW)))
        caller.start()
        assert wait_for(lambda: "serving_inflight_requests 1" in
                        http(rest, "GET", "/monitoring/prometheus/metrics")[1], timeout_s=10)
        process.send_signal(signal.SIGTERM)
        assert wait_for(lambda: http(rest, "GET", "/readyz")[0] == 503, timeout_s=5)
        status, reply = http(rest, "POST", f"/v1/models/{MODEL}:predict", {"instances": ["u2"]})
        assert status == 503 and "shutting down" in reply["error"]
        assert process.poll() is None, "the server must wait for the in-flight request"
        caller.join(timeout=15)
        status, reply = result["reply"]
        assert status == 200 and reply["predictions"][0]["item_ids"] == ["i11", "i12", "i13"]
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_stop_refuses_new_requests_and_waits(base_path, start_server) -> None:
    server = start_server(make_config(base_path))
    port = server.ports.rest
    result = {}
    caller = threading.Thread(target=lambda: result.setdefault(
        "reply", http(port, "POST", f"/v1/models/{MODEL}:predict",
                      {**SLOW, "instances": [{"user_id": "u1", "delay_us": 600_000}]})))
    caller.start()
    assert wait_for(lambda: server.core.inflight == 1, timeout_s=5)
    started = time.monotonic()
    server.request_stop()
    assert http(port, "GET", "/readyz")[0] == 503
    assert server.wait(timeout_s=10)
    caller.join(timeout=10)
    assert result["reply"][0] == 200
    assert time.monotonic() - started >= 0.3
    with pytest.raises(OSError):
        http(port, "GET", "/healthz", timeout_s=2)
