"""Hot reloads release memory: 30 versions swapped in one after another leave RSS flat.

Each version carries an 8 MB variable and warmup requests so that a version that is not freed
shows up plainly; the reload is the one a publisher does (copy in as ``.tmp-V``, rename to
``V``, wait until it serves, delete the old one).  The bound is the measured noise of a fixed
server (two versions briefly coexist, allocator slack) with margin; without the fix the thread
server grew ~12 MB per reload and the process server's parent ~0.75 MB per reload.
"""

from __future__ import annotations

import os
import shutil

import psutil
import pytest

from serving.config import SchedulingConfig
from tests.serving.conftest import MODEL, http, make_config, wait_for
from tests.serving.tiny_models import build_tiny_model

RELOADS = 30
SETTLE = 5  # reloads before the baseline: allocator pools and caches fill up first
PAYLOAD_MB = 8


def _serving(port: int, version: int) -> bool:
    status, body = http(port, "GET", f"/v1/models/{MODEL}")
    return status == 200 and any(s["version"] == str(version) and s["state"] == "AVAILABLE"
                                 for s in body["model_version_status"])


def _reload_curve(server, built: str, base: str, measure) -> list:
    port = server.ports.rest
    curve = []
    for version in range(2, RELOADS + 2):
        temp = os.path.join(base, f".tmp-{version}")
        shutil.copytree(built, temp)
        os.rename(temp, os.path.join(base, str(version)))
        assert wait_for(lambda v=version: _serving(port, v), timeout_s=60), f"version {version}"
        shutil.rmtree(os.path.join(base, str(version - 1)))
        status, body = http(port, "POST", f"/v1/models/{MODEL}:predict", {"instances": ["u1"]})
        assert status == 200, body
        curve.append(measure())
    return curve


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_rss_stays_flat_over_30_reloads(tmp_path, start_server, mode) -> None:
    built = build_tiny_model(str(tmp_path / "built"), 1, payload_mb=PAYLOAD_MB, warmup=True)
    base = str(tmp_path / "base")
    os.makedirs(base)
    shutil.copytree(built, os.path.join(base, "1"))
    server = start_server(make_config(base, poll_interval_s=0.05, scheduling=SchedulingConfig(
        overload_lag_ms=0.0, worker_mode=mode)))
    me = psutil.Process()

    def measure() -> tuple:
        workers = sum(child.memory_info().rss for child in me.children())
        return me.memory_info().rss / 2 ** 20, workers / 2 ** 20

    curve = _reload_curve(server, built, base, measure)
    parent = [p for p, _ in curve]
    growth = max(parent[SETTLE:]) - parent[SETTLE - 1]
    # thread workers: the whole server is this process; process workers: the parent holds
    # no model, so its bound is tight, and the workers must not grow either
    assert growth < (40 if mode == "thread" else 8), (mode, [round(p) for p in parent])
    if mode == "process":
        workers = [w for _, w in curve]
        worker_growth = max(workers[SETTLE:]) - workers[SETTLE - 1]
        assert worker_growth < 40, [round(w) for w in workers]
