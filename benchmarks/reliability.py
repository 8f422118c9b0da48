"""Reliability of the model server: memory over hot reloads, faults under load, fuzzing.

Three parts, each printed as a table:

1. Reload memory curve: a server (thread workers, then process workers) reloads ``--reloads``
   versions of a small SavedModel carrying a ``--payload-mb`` variable, the way a publisher
   does (copy in as ``.tmp-V``, rename to ``V``, wait until it serves, delete the old one); the
   RSS of the server process (and, in process mode, of its workers) after each reload is
   printed every ``--every`` reloads and drawn in ``benchmarks/results/reliability_reload_rss.png``.
2. Fault scenarios under steady REST load (one client in a loop): a half-written version (data
   file written in two halves with a pause), a version whose ``variables/`` is a symlink out of
   the base path, the served version deleted, and rapid swaps; failed requests per scenario.
3. Fuzz counts by status: seeded mutations of valid REST bodies/paths and gRPC messages.

Run: ``python -m benchmarks.reliability`` from the repository root.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import psutil

MODEL = "rec"
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _server(base: str, mode: str, poll_s: float):
    from serving.config import BatchingConfig, LimitsConfig, ModelConfig, SchedulingConfig, ServerConfig
    from serving.server import ModelServer

    config = ServerConfig(models=(ModelConfig(MODEL, base),), grpc_port=0, rest_port=0,
                          poll_interval_s=poll_s, batching=BatchingConfig(num_batch_threads=2),
                          scheduling=SchedulingConfig(worker_mode=mode, overload_lag_ms=0.0),
                          limits=LimitsConfig(max_body_bytes=64 * 1024))
    server = ModelServer(config)
    server.start()
    return server


def _request(port: int, method: str, path: str, body: Optional[bytes] = None,
             headers: Optional[Dict[str, str]] = None) -> Tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _serving(port: int, version: int) -> bool:
    status, payload = _request(port, "GET", f"/v1/models/{MODEL}")
    return status == 200 and any(s["version"] == str(version) and s["state"] == "AVAILABLE"
                                 for s in json.loads(payload)["model_version_status"])


def _wait(predicate: Callable[[], bool], timeout_s: float) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _publish(built: str, base: str, version: int) -> None:
    temp = os.path.join(base, f".tmp-{version}")
    shutil.copytree(built, temp)
    os.rename(temp, os.path.join(base, str(version)))


# ---- 1. reload memory curve ------------------------------------------------------------------
def reload_curve(built: str, work: str, mode: str, reloads: int) -> List[Tuple[float, float, float]]:
    """(seconds to serve, server RSS MB, workers RSS MB) after each reload."""
    base = os.path.join(work, f"base-{mode}")
    os.makedirs(base)
    _publish(built, base, 1)
    server = _server(base, mode, 0.05)
    me = psutil.Process()
    curve = []
    try:
        for version in range(2, reloads + 2):
            started = time.monotonic()
            _publish(built, base, version)
            if not _wait(lambda v=version: _serving(server.ports.rest, v), 120):
                raise RuntimeError(f"version {version} was not served within 120 s")
            took = time.monotonic() - started
            shutil.rmtree(os.path.join(base, str(version - 1)))
            workers = sum(c.memory_info().rss for c in me.children()) / 2 ** 20
            curve.append((took, me.memory_info().rss / 2 ** 20, workers))
    finally:
        server.stop(grace_s=1.0)
    return curve


def print_curves(curves: Dict[str, List[Tuple[float, float, float]]], every: int) -> None:
    print("\nReload memory (RSS in MB after each reload; process mode: parent / workers)")
    print(f"{'reload':>7} {'thread server':>14} {'process parent':>15} {'process workers':>16}")
    count = min(len(c) for c in curves.values())
    for index in range(count):
        if (index + 1) % every and index + 1 != count and index:
            continue
        thread = curves["thread"][index][1]
        parent, workers = curves["process"][index][1], curves["process"][index][2]
        print(f"{index + 1:>7} {thread:>14.0f} {parent:>15.0f} {workers:>16.0f}")
    for mode, curve in curves.items():
        totals = [r + w for _, r, w in curve][4:]  # from reload 5: pools and caches filled
        xs = list(range(len(totals)))
        mean_x, mean_y = sum(xs) / len(xs), sum(totals) / len(totals)
        slope = (sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, totals))
                 / sum((x - mean_x) ** 2 for x in xs))
        mean_s = sum(t for t, _, _ in curve) / len(curve)
        print(f"{mode}: total RSS over reloads 5..{len(curve)}: min {min(totals):.0f} MB, max "
              f"{max(totals):.0f} MB, least-squares slope {slope:+.2f} MB per reload; mean time "
              f"to serve a new version {mean_s:.2f}s")


def plot_curves(curves: Dict[str, List[Tuple[float, float, float]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    x = range(1, len(curves["thread"]) + 1)
    axis.plot(x, [r for _, r, _ in curves["thread"]], label="thread workers: server")
    x = range(1, len(curves["process"]) + 1)
    axis.plot(x, [r for _, r, _ in curves["process"]], label="process workers: parent")
    axis.plot(x, [w for _, _, w in curves["process"]], label="process workers: workers")
    axis.set_xlabel("hot reloads")
    axis.set_ylabel("RSS (MB)")
    axis.set_ylim(bottom=0)
    axis.set_title("Model server memory over hot reloads")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


# ---- 2. faults under load --------------------------------------------------------------------
class _Load:
    """One REST client predicting in a loop; counts answers by status."""

    def __init__(self, port: int) -> None:
        self._port = port
        self.statuses: "collections.Counter[int]" = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        body = json.dumps({"instances": ["u1"]}).encode()
        while not self._stop.is_set():
            try:
                status, _ = _request(self._port, "POST", f"/v1/models/{MODEL}:predict", body,
                                     {"Content-Type": "application/json"})
            except OSError:
                status = 0  # connection failed
            self.statuses[status] += 1

    def __enter__(self) -> "_Load":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def fault_scenarios(built: str, work: str) -> List[Tuple[str, int, int, str]]:
    """(scenario, requests, failed, outcome) under steady load, thread workers."""
    base = os.path.join(work, "base-faults")
    os.makedirs(base)
    _publish(built, base, 1)
    server = _server(base, "thread", 0.1)
    port = server.ports.rest
    rows = []

    def run(name: str, action: Callable[[], str]) -> None:
        with _Load(port) as load:
            time.sleep(0.3)
            outcome = action()
            time.sleep(0.3)
        failed = sum(n for s, n in load.statuses.items() if s != 200)
        rows.append((name, sum(load.statuses.values()), failed, outcome))

    def half_written() -> str:
        target = os.path.join(base, "2")
        shutil.copytree(built, target)
        data = [n for n in os.listdir(os.path.join(target, "variables")) if n.startswith("variables.data")][0]
        path = os.path.join(target, "variables", data)
        with open(path, "rb") as handle:
            content = handle.read()
        with open(path, "wb") as handle:
            handle.write(content[:len(content) // 2])
        time.sleep(1.0)
        with open(path, "ab") as handle:
            handle.write(content[len(content) // 2:])
        served = _wait(lambda: _serving(port, 2), 60)
        return "v2 served" if served else "v2 NOT served"

    def symlinked() -> str:
        outside = os.path.join(work, "outside")
        shutil.copytree(built, outside)
        target = os.path.join(base, "3")
        shutil.copytree(built, target)
        shutil.rmtree(os.path.join(target, "variables"))
        os.symlink(os.path.join(outside, "variables"), os.path.join(target, "variables"))
        time.sleep(1.0)
        state = [s for s in json.loads(_request(port, "GET", f"/v1/models/{MODEL}")[1])
                 ["model_version_status"] if s["version"] == "3"]
        refused = bool(state) and state[0]["state"] == "END" and _serving(port, 2)
        shutil.rmtree(target)
        return "v3 refused, v2 serving" if refused else "v3 NOT refused"

    def deleted_served() -> str:
        _publish(built, base, 4)
        _wait(lambda: _serving(port, 4), 60)
        shutil.rmtree(os.path.join(base, "4"))  # back to v2, the newest left on disk
        back = _wait(lambda: _serving(port, 2) and not _serving(port, 4), 60)
        return "v2 served again" if back else "v2 NOT served again"

    def rapid_swaps() -> str:
        for version in range(5, 15):
            _publish(built, base, version)
            time.sleep(0.15)
        served = _wait(lambda: _serving(port, 14), 60)
        return "v14 served" if served else "v14 NOT served"

    try:
        run("half-written version (1 s pause mid data file)", half_written)
        run("variables/ symlinked outside the base path", symlinked)
        run("served version deleted", deleted_served)
        run("10 versions published 0.15 s apart", rapid_swaps)
    finally:
        server.stop(grace_s=1.0)
    return rows


# ---- 3. fuzz counts --------------------------------------------------------------------------
def fuzz_counts(built: str, work: str, cases: int) -> Dict[str, "collections.Counter[str]"]:
    """Answers by status to mutated REST requests and random/mutated gRPC Predict messages."""
    import grpc
    import numpy as np
    from tensorflow_serving.apis import predict_pb2

    from serving.tensor_codec import to_tensor_proto
    from tests.serving.mutation import mutate

    base = os.path.join(work, "base-fuzz")
    os.makedirs(base)
    _publish(built, base, 1)
    server = _server(base, "thread", 1.0)
    rng = random.Random(2026)
    counts: Dict[str, "collections.Counter[str]"] = {"REST": collections.Counter(),
                                                     "gRPC": collections.Counter()}
    body = json.dumps({"instances": ["u1", "u2"]}).encode()
    path = f"/v1/models/{MODEL}:predict"
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["user_id"].CopyFrom(to_tensor_proto(np.array([b"u1"], dtype=object)))
    valid = request.SerializeToString()
    try:
        for _ in range(cases):
            mutated_path = path
            if rng.random() < 0.3:
                mutated_path = "/" + mutate(rng, path.encode()).decode("latin-1").lstrip("/")
                mutated_path = "".join(c if 32 < ord(c) < 127 else f"%{ord(c):02X}"
                                       for c in mutated_path)
            status, _ = _request(server.ports.rest, "POST", mutated_path, mutate(rng, body),
                                 {"Content-Type": "application/json"})
            counts["REST"][str(status)] += 1
        with grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}") as channel:
            call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")
            for index in range(cases):
                message = (bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
                           if index % 4 == 0 else mutate(rng, valid))
                try:
                    call(message, timeout=30)
                    counts["gRPC"]["OK"] += 1
                except grpc.RpcError as err:
                    counts["gRPC"][err.code().name] += 1
        alive = _request(server.ports.rest, "GET", "/readyz")[0] == 200
        counts["REST"]["server ready after"] = int(alive)
        counts["REST"]["internal errors counted"] = int(server.metrics.errors.value("rest"))
        counts["gRPC"]["internal errors counted"] = int(server.metrics.errors.value("grpc"))
    finally:
        server.stop(grace_s=1.0)
    return counts


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reloads", type=int, default=50)
    parser.add_argument("--payload-mb", type=int, default=8)
    parser.add_argument("--every", type=int, default=5, help="print every Nth reload")
    parser.add_argument("--fuzz-cases", type=int, default=500)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import logging

    logging.basicConfig(level=logging.ERROR)
    from tests.serving.tiny_models import build_tiny_model

    work = tempfile.mkdtemp(prefix="reliability-")
    started = time.monotonic()
    try:
        built = build_tiny_model(os.path.join(work, "built"), 1, payload_mb=args.payload_mb,
                                 warmup=True)
        curves = {mode: reload_curve(built, work, mode, args.reloads)
                  for mode in ("thread", "process")}
        print_curves(curves, args.every)
        os.makedirs(RESULTS, exist_ok=True)
        png = os.path.join(RESULTS, "reliability_reload_rss.png")
        plot_curves(curves, png)
        print(f"(curve drawn in {os.path.relpath(png)})")

        print("\nFault scenarios under steady REST load (thread workers)")
        print(f"{'scenario':<48} {'requests':>8} {'failed':>6}  outcome")
        for name, total, failed, outcome in fault_scenarios(built, work):
            print(f"{name:<48} {total:>8} {failed:>6}  {outcome}")

        print(f"\nFuzz: {args.fuzz_cases} mutated REST requests, {args.fuzz_cases} random/"
              "mutated gRPC Predict messages")
        for front, counter in fuzz_counts(built, work, args.fuzz_cases).items():
            print(f"{front}: " + ", ".join(f"{k}={v}" for k, v in sorted(counter.items())))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n(total {time.monotonic() - started:.0f}s, {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
