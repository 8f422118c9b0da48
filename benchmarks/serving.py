"""Model server benchmark: naive per-request serving vs dynamic batching, thread vs process
workers, overload with mixed priorities, and version swaps under load.

Run from the repository root (``-m`` keeps the ``serving`` package importable):

    TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m benchmarks.serving

Everything runs on loopback.  The model is a contract SavedModel of realistic cost: a user
embedding lookup, a matmul against a 10,000 x 32 item table and top-k 100.  Each server runs
in its own spawned process (its own GIL): a bare gRPC handler returning a canned answer (the
ceiling of any Python server here), the naive one-call-per-request server, and this server
with thread and with process model workers.  Load comes from one more spawned process (raw
pre-serialized gRPC Predict requests through ``grpc.aio``; it needs no TensorFlow).  Closed-loop
load keeps N requests outstanding; fixed-rate load sends on a schedule (the generator's own
lag is reported).  Every phase is bounded in time; the whole run takes a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
MODEL = "recommender"
Result = Tuple[str, float, str]  # (priority, latency seconds, status code name)


# ---- load generation (spawned process; imports grpc only) ---------------------------------
async def _one(call: Any, payload: bytes, priority: str, timeout_s: float,
               out: List[Result]) -> None:
    import grpc

    started = time.perf_counter()
    try:
        await call(payload, timeout=timeout_s, metadata=(("x-priority", priority),))
        code = "OK"
    except grpc.aio.AioRpcError as err:
        code = err.code().name
    out.append((priority, time.perf_counter() - started, code))


async def _run_job(target: str, job: Dict[str, Any]) -> Dict[str, Any]:
    import grpc

    payloads: List[bytes] = job["payloads"]
    mix: List[Tuple[str, float]] = job["mix"]
    out: List[Result] = []
    # one TCP connection per channel (a local subchannel pool), so that front ends sharing the
    # port through SO_REUSEPORT all get connections; requests go round-robin over them
    channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(job.get("channels", 1))]
    calls = [channel.unary_unary(PREDICT_METHOD) for channel in channels]
    try:
        for call in calls:
            await call(payloads[0], timeout=30)  # connect and warm the path
        begin = time.perf_counter()
        end = begin + job["duration_s"]
        if job["kind"] == "closed":
            async def worker(index: int) -> None:
                count = index
                call = calls[index % len(calls)]
                while time.perf_counter() < end:
                    count += job["concurrency"]
                    await _one(call, payloads[count % len(payloads)], mix[0][0], job["timeout_s"], out)

            await asyncio.gather(*(worker(i) for i in range(job["concurrency"])))
        else:
            interval = 1.0 / job["rate"]
            tasks = set()
            lags: List[float] = []
            sent = 0
            bounds = []
            acc = 0.0
            for name, share in mix:
                acc += share
                bounds.append((acc, name))
            while True:
                now = time.perf_counter()
                due = begin + sent * interval
                if due >= end:
                    break
                if due > now:
                    await asyncio.sleep(due - now)
                    continue
                fraction = (sent * 0.6180339887) % 1.0  # deterministic, well spread mix
                priority = next(n for b, n in bounds if fraction < b)
                lags.append(now - due)  # how far the generator itself fell behind schedule
                task = asyncio.create_task(_one(calls[sent % len(calls)],
                                                payloads[sent % len(payloads)], priority,
                                                job["timeout_s"], out))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            if tasks:
                await asyncio.wait(tasks, timeout=job["timeout_s"] + 5)
        elapsed = time.perf_counter() - begin
    finally:
        for channel in channels:
            await channel.close()
    lag_p99 = sorted(lags)[int(0.99 * len(lags))] if job["kind"] == "open" and lags else 0.0
    return {"results": out, "elapsed": max(elapsed, job["duration_s"]), "client_lag_p99": lag_p99}


def _load_main(conn: Any, target: str, job: Dict[str, Any]) -> None:
    conn.send(asyncio.run(_run_job(target, job)))
    conn.close()


class Load:
    """A load job running in a spawned process."""

    def __init__(self, target: str, **job: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe(duplex=False)
        self._process = context.Process(target=_load_main, args=(child, target, job), daemon=True)
        self._process.start()
        child.close()
        self._limit = job["duration_s"] + job["timeout_s"] + 60

    def result(self) -> Dict[str, Any]:
        if not self._conn.poll(self._limit):
            self._process.kill()
            raise RuntimeError("load generator did not finish in time")
        result = self._conn.recv()
        self._process.join(timeout=10)
        return result


# ---- statistics ---------------------------------------------------------------------------
def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(run: Dict[str, Any], priority: Optional[str] = None) -> Dict[str, float]:
    rows = [r for r in run["results"] if priority is None or r[0] == priority]
    ok = [r[1] for r in rows if r[2] == "OK"]
    return {"sent": len(rows), "ok": len(ok), "success": len(ok) / max(1, len(rows)),
            "throughput": len(ok) / run["elapsed"], "p50_ms": _pct(ok, 0.50) * 1e3,
            "p99_ms": _pct(ok, 0.99) * 1e3,
            "failed": len(rows) - len(ok),
            "codes": ",".join(sorted({r[2] for r in rows if r[2] != "OK"})) or "-"}


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in header]] + [[f"{c:.1f}" if isinstance(c, float) else str(c)
                                           for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [f"### {title}", "", "| " + " | ".join(h.ljust(w) for h, w in zip(cells[0], widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells[1:]]
    return "\n".join(lines)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---- model and servers --------------------------------------------------------------------
def build_model(path: str, version: int, num_users: int = 5000, num_items: int = 10_000,
                dim: int = 32, k: int = 100) -> str:
    """Save a two-tower-like contract SavedModel (embedding lookup, matmul, top-k)."""
    import numpy as np
    import tensorflow as tf

    from core.features import SERVING_OUTPUT_ITEMS, SERVING_OUTPUT_SCORES, SERVING_SIGNATURE

    rng = np.random.default_rng(version)
    users = tf.constant([f"user{i}" for i in range(num_users)])
    items = tf.constant([f"item{i}" for i in range(num_items)])

    class TwoTower(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(users, tf.range(num_users, dtype=tf.int64)),
                default_value=num_users)  # the last row is the popular-items fallback
            self.user_emb = tf.Variable(rng.normal(size=(num_users + 1, dim)).astype("float32"))
            self.item_emb = tf.Variable(rng.normal(size=(num_items, dim)).astype("float32"))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, user_id):
            query = tf.gather(self.user_emb, self.table.lookup(user_id))
            top = tf.math.top_k(tf.matmul(query, self.item_emb, transpose_b=True), k=k)
            return {SERVING_OUTPUT_ITEMS: tf.gather(items, top.indices),
                    SERVING_OUTPUT_SCORES: top.values}

    module = TwoTower()
    temp = path + ".tmp"
    tf.saved_model.save(module, temp,
                        signatures={SERVING_SIGNATURE: module.serve.get_concrete_function()})
    os.replace(temp, path)
    return path


def payloads(count: int = 256) -> List[bytes]:
    """Serialized single-user Predict requests (the typical online request)."""
    import numpy as np
    from tensorflow_serving.apis import predict_pb2

    from core.features import SERVING_INPUT_USER
    from serving.tensor_codec import to_tensor_proto

    out = []
    for index in range(count):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        user = f"user{(index * 37) % 6000}".encode()  # some unknown users get the fallback
        request.inputs[SERVING_INPUT_USER].CopyFrom(to_tensor_proto(np.array([user], dtype=object)))
        out.append(request.SerializeToString())
    return out


class NaiveServer:
    """One SavedModel call per request in a thread pool: what a first server looks like."""

    def __init__(self, model_dir: str, threads: int = 8) -> None:
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        from core.features import SERVING_SIGNATURE
        from serving.responses import predict_response
        from serving.tensor_codec import to_ndarray
        from serving.workers import SavedModelRunner

        runner = SavedModelRunner(model_dir)

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):  # noqa: N802
                inputs = {k: to_ndarray(v, k, 10 ** 6) for k, v in request.inputs.items()}
                outputs = runner.run(SERVING_SIGNATURE, inputs)
                return predict_response(MODEL, 1, SERVING_SIGNATURE, outputs)

        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=threads))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=1).wait()


def start_batching(base_path: str, mode: str = "thread", poll_s: float = 1.0, tf_threads: int = 0,
                   frontend_processes: int = 1, scheduling: Optional[Dict[str, Any]] = None,
                   **batching: Any):
    from serving.config import BatchingConfig, ModelConfig, SchedulingConfig, ServerConfig
    from serving.server import ModelServer

    settings = dict(max_batch_size=64, batch_timeout_micros=1000, num_batch_threads=2,
                    max_enqueued_batches=16)
    settings.update(batching)
    config = ServerConfig(models=(ModelConfig(MODEL, base_path),), grpc_port=0, rest_port=None,
                          poll_interval_s=poll_s, batching=BatchingConfig(**settings),
                          scheduling=SchedulingConfig(worker_mode=mode, tf_intra_op_threads=tf_threads,
                                                      tf_inter_op_threads=tf_threads,
                                                      **(scheduling or {})),
                          frontend_processes=frontend_processes)
    server = ModelServer(config)
    server.start()
    return server


def install(source: str, base_path: str, version: int) -> None:
    temp = os.path.join(base_path, f".incoming-{version}")
    shutil.copytree(source, temp)
    os.replace(temp, os.path.join(base_path, str(version)))


# ---- the run ------------------------------------------------------------------------------
class BareServer:
    """A gRPC Predict handler that returns a canned response: the ceiling of any Python server."""

    def __init__(self, canned: bytes) -> None:
        import grpc

        handler = grpc.unary_unary_rpc_method_handler(lambda request, context: canned)
        generic = grpc.method_handlers_generic_handler(
            "tensorflow.serving.PredictionService", {"Predict": handler})
        self._server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=8),
                                   handlers=(generic,))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=1).wait()


def _closed(port: int, data: List[bytes], args: argparse.Namespace) -> Dict[str, Any]:
    return Load(f"127.0.0.1:{port}", kind="closed", concurrency=args.concurrency,
                duration_s=args.duration, timeout_s=5.0, payloads=data,
                mix=[("normal", 1.0)], channels=args.channels).result()


def _open(port: int, data: List[bytes], rate: float, duration: float, timeout_s: float,
          mix: List[Tuple[str, float]], channels: int = 1) -> Load:
    return Load(f"127.0.0.1:{port}", kind="open", rate=rate, duration_s=duration,
                timeout_s=timeout_s, payloads=data, mix=mix, channels=channels)


def _canned_response(source: str, data: List[bytes]) -> bytes:
    from tensorflow_serving.apis import predict_pb2

    from core.features import SERVING_SIGNATURE
    from serving.responses import predict_response
    from serving.tensor_codec import to_ndarray
    from serving.workers import SavedModelRunner

    request = predict_pb2.PredictRequest.FromString(data[0])
    inputs = {k: to_ndarray(v, k, 10 ** 6) for k, v in request.inputs.items()}
    outputs = SavedModelRunner(source).run(SERVING_SIGNATURE, inputs)
    return predict_response(MODEL, 1, SERVING_SIGNATURE, outputs).SerializeToString()


def _server_main(conn: Any, kind: str, options: Dict[str, Any]) -> None:
    """A server in its own process (its own GIL): report the port, then obey 'stats'/'stop'."""
    from core.process import set_up_process

    set_up_process()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("grpc._cython.cygrpc").addFilter(_LateResponses())
    if kind == "bare":
        server: Any = BareServer(_canned_response(options["source"], payloads(1)))
        port = server.port
    elif kind == "naive":
        server = NaiveServer(options["source"])
        port = server.port
    else:
        started = time.perf_counter()
        server = start_batching(options["base"], kind, poll_s=options.get("poll_s", 1.0),
                                tf_threads=options.get("tf_threads", 0),
                                frontend_processes=options.get("frontend_processes", 1),
                                scheduling=options.get("scheduling"),
                                **options.get("batching", {}))
        port = server.ports.grpc
        _StartTime.seconds = time.perf_counter() - started
    conn.send(port)
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the benchmark went away: shut down with it
            message = "stop"
        if message == "stats" and kind in ("thread", "process"):
            conn.send({"available": [r.version for r in server.core.status(MODEL)
                                     if r.state == "AVAILABLE"],
                       "start_s": _StartTime.seconds,
                       "loads": server.metrics.loads.value(MODEL),
                       "load_failures": server.metrics.load_failures.value(MODEL)})
        elif message == "stop":
            if kind in ("thread", "process"):
                server.stop(grace_s=2.0)
            else:
                server.stop()
            try:
                conn.send(_LateResponses.count)
            except OSError:
                pass  # nobody is listening any more
            return


class _StartTime:
    """How long ``ModelServer.start`` took in this server process (load and warm-up)."""

    seconds = 0.0


class ServerProcess:
    """Start one kind of server ('bare', 'naive', 'thread', 'process') in a spawned process."""

    def __init__(self, kind: str, **options: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        # not a daemon: the process-worker server starts worker processes of its own
        self._process = context.Process(target=_server_main, args=(child, kind, options))
        self._process.start()
        child.close()
        if not self._conn.poll(300):
            self._process.kill()
            raise RuntimeError(f"the {kind} server did not start in time")
        self.port = self._conn.recv()

    @property
    def pid(self) -> Optional[int]:
        """The server's process id (its front-end and worker processes are its children)."""
        return self._process.pid

    def ask(self, message: str, timeout_s: float = 60.0) -> Any:
        self._conn.send(message)
        if not self._conn.poll(timeout_s):
            raise RuntimeError(f"the server did not answer {message!r}")
        return self._conn.recv()

    def stop(self) -> int:
        """Stop the server; returns how many answers it sent to clients that had given up."""
        try:
            late = self.ask("stop")
        except (RuntimeError, OSError, EOFError) as err:
            progress(f"server did not stop cleanly ({err}); killing it")
            late = 0
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=10)
        return late


def compare_servers(servers: Dict[str, ServerProcess], data: List[bytes],
                    args: argparse.Namespace, stats: Dict[str, Any]) -> None:
    """(a)+(b): closed-loop rounds interleaved across the servers (best round kept), then the
    same fixed rate (80% of the naive capacity) on each."""
    for round_index in range(args.rounds):
        for name, server in servers.items():
            progress(f"round {round_index + 1}/{args.rounds}: {name}, closed loop "
                     f"x{args.concurrency} for {args.duration:.0f}s")
            result = summarize(_closed(server.port, data, args))
            best = stats.get(f"{name}_closed")
            if best is None or result["throughput"] > best["throughput"]:
                stats[f"{name}_closed"] = result
    rate = 0.8 * stats["naive_closed"]["throughput"]
    stats["equal_rate"] = rate
    for name in ("naive", "thread", "process"):
        progress(f"{name}: fixed rate {rate:.0f}/s for {args.duration:.0f}s")
        stats[f"{name}_open"] = summarize(_open(servers[name].port, data, rate, args.duration, 5.0,
                                               [("normal", 1.0)], args.channels).result())


def overload(server: ServerProcess, data: List[bytes], args: argparse.Namespace,
             stats: Dict[str, Any], capacity: float, key: str) -> None:
    """(c): high priority alone at low rate, then 3x capacity with mixed priorities."""
    unloaded_rate = max(10.0, 0.1 * capacity)
    progress(f"[{key}] unloaded: high priority only at {unloaded_rate:.0f}/s")
    stats[f"{key}_unloaded_high"] = summarize(_open(server.port, data, unloaded_rate,
                                                    args.duration, 2.0, [("high", 1.0)],
                                                    args.channels).result())
    mix = [("high", 0.2), ("normal", 0.3), ("low", 0.5)]
    progress(f"[{key}] overload: 3x capacity = {3 * capacity:.0f}/s, priorities {mix}")
    run_ = _open(server.port, data, 3 * capacity, args.duration, 2.0, mix, args.channels).result()
    stats[f"{key}_rate"] = len(run_["results"]) / run_["elapsed"]
    stats[f"{key}_client_lag_ms"] = run_["client_lag_p99"] * 1e3
    stats[f"{key}_capacity"] = capacity
    for name, _ in mix:
        stats[f"{key}_{name}"] = summarize(run_, name)


def swaps(server: ServerProcess, source: str, base: str, data: List[bytes],
          args: argparse.Namespace, stats: Dict[str, Any]) -> None:
    """(d): a new version pushed every second while a steady fixed-rate load runs."""
    rate = 0.5 * stats["thread_closed"]["throughput"]
    progress(f"{args.swaps} version swaps under {rate:.0f}/s steady load")
    load = _open(server.port, data, rate, args.swaps + 3.0, 5.0, [("normal", 1.0)], args.channels)
    time.sleep(1.5)
    for version in range(2, 2 + args.swaps):
        install(source, base, version)
        time.sleep(1.0)
    result = summarize(load.result())
    time.sleep(1.0)
    info = server.ask("stats")
    stats["swaps"] = dict(result, final_versions=info["available"], loads=info["loads"],
                          load_failures=info["load_failures"])


def run(args: argparse.Namespace, workdir: str) -> Dict[str, Any]:
    from trainer.warmup_requests import write_warmup_requests

    progress("building the two-tower-like SavedModel (10,000 x 32 items, top-k 100)")
    source = build_model(os.path.join(workdir, "source"), 1)
    write_warmup_requests(source, MODEL, [f"user{i}" for i in range(64)], num_records=8)
    bases = {}
    for kind in ("thread", "process"):
        bases[kind] = os.path.join(workdir, f"models-{kind}")
        install(source, bases[kind], 1)
    data = payloads()
    stats: Dict[str, Any] = {"late_answers": 0}
    progress("starting four servers, each in its own process: bare, naive, batching/thread "
             "(polling every 0.2s), batching/process")
    servers: Dict[str, ServerProcess] = {}
    try:
        servers["bare"] = ServerProcess("bare", source=source)
        servers["naive"] = ServerProcess("naive", source=source)
        fe = args.frontend_processes
        servers["thread"] = ServerProcess("thread", base=bases["thread"], poll_s=0.2,
                                          frontend_processes=fe)
        servers["process"] = ServerProcess("process", base=bases["process"], frontend_processes=fe)
        compare_servers(servers, data, args, stats)
        overload(servers["thread"], data, args, stats, stats["thread_closed"]["throughput"],
                 "overload")
        swaps(servers["thread"], source, bases["thread"], data, args, stats)
    finally:
        for server in servers.values():
            stats["late_answers"] += server.stop()
    progress(f"model-bound overload: a heavier model ({args.heavy_items:,} x 64 item table)")
    heavy_base = os.path.join(workdir, "models-heavy")
    install(build_model(os.path.join(workdir, "heavy"), 1, num_items=args.heavy_items, dim=64),
            heavy_base, 1)
    heavy = ServerProcess("thread", base=heavy_base, frontend_processes=args.frontend_processes)
    try:
        progress(f"[heavy] capacity: closed loop x{args.concurrency} for {args.duration:.0f}s")
        capacity = summarize(_closed(heavy.port, data, args))["throughput"]
        overload(heavy, data, args, stats, capacity, "heavy")
    finally:
        stats["late_answers"] += heavy.stop()
    return stats


def _verdict(ok: bool, miss: str = "") -> str:
    return "MET" if ok else f"MISSED{miss}"


def report(stats: Dict[str, Any], args: argparse.Namespace) -> str:
    labels = {"bare": "bare gRPC handler, no model (ceiling)", "naive": "naive: 1 model call per request",
              "thread": "batching, 2 thread workers", "process": "batching, 2 process workers"}
    rows = [[labels[n], f"closed x{args.concurrency}", s["throughput"], s["p50_ms"], s["p99_ms"],
             s["failed"]] for n in labels for s in [stats[f"{n}_closed"]]]
    rows += [[labels[n], f"fixed {stats['equal_rate']:.0f}/s", s["throughput"], s["p50_ms"],
              s["p99_ms"], s["failed"]] for n in ("naive", "thread", "process")
             for s in [stats[f"{n}_open"]]]
    parts = [table(f"Naive vs batching, single-user requests (closed loop: best of {args.rounds} "
                   "interleaved rounds)",
                   ["server", "load", "throughput/s", "p50 ms", "p99 ms", "failed"], rows)]
    titles = {"overload": "Overload, front-end bound: 3x the batching server's capacity",
              "heavy": f"Overload, model bound: 3x the capacity with a {args.heavy_items:,} x 64 "
                       "item table"}
    for key, title in titles.items():
        parts.append(overload_table(
            title, stats[f"{key}_capacity"], stats[f"{key}_rate"], stats[f"{key}_client_lag_ms"],
            stats[f"{key}_unloaded_high"],
            {name: stats[f"{key}_{name}"] for name in ("high", "normal", "low")}))
    sw = stats["swaps"]
    parts.append(table("Version swaps under steady load",
                       ["swaps", "requests", "failed", "failure codes", "p99 ms", "versions loaded",
                        "serving at end"],
                       [[args.swaps, sw["sent"], sw["failed"], sw["codes"], sw["p99_ms"],
                         int(sw["loads"]), sw["final_versions"]]]))
    naive, batched = stats["naive_closed"], stats["thread_closed"]
    best_batched = max(batched, stats["process_closed"], key=lambda s: s["throughput"])
    ratio = best_batched["throughput"] / naive["throughput"]
    ceiling = stats["bare_closed"]["throughput"] / naive["throughput"]
    p99_ok = best_batched["p99_ms"] <= naive["p99_ms"]
    best_open = min(stats["thread_open"]["p99_ms"], stats["process_open"]["p99_ms"])
    open_ok = best_open <= stats["naive_open"]["p99_ms"]
    verdicts = [
        f"- Throughput >= 3x naive: {ratio:.2f}x -> "
        f"{_verdict(ratio >= 3, f' by {100 * (1 - ratio / 3):.0f}%')} (a model-free gRPC handler "
        f"reaches only {ceiling:.2f}x naive on this machine).",
        f"- p99 no worse than naive: closed loop {best_batched['p99_ms']:.1f} vs "
        f"{naive['p99_ms']:.1f} ms, fixed rate {best_open:.1f} vs {stats['naive_open']['p99_ms']:.1f} ms "
        f"-> {_verdict(p99_ok and open_ok)}.",
        f"- 0 failed requests across {args.swaps} swaps: {sw['failed']} failed -> "
        f"{_verdict(sw['failed'] == 0)}.",
    ]
    for key, label in (("overload", "front-end bound"), ("heavy", "model bound")):
        high, base_high, low = (stats[f"{key}_high"], stats[f"{key}_unloaded_high"],
                                stats[f"{key}_low"])
        verdicts += [
            f"- [{label}] high priority >= 99% success under 3x overload: "
            f"{100 * high['success']:.2f}% -> {_verdict(high['success'] >= 0.99)}; p99 <= 2x "
            f"unloaded: {high['p99_ms']:.1f} vs {base_high['p99_ms']:.1f} ms = "
            f"{high['p99_ms'] / base_high['p99_ms']:.2f}x -> "
            f"{_verdict(high['p99_ms'] <= 2 * base_high['p99_ms'])}; low shed first: "
            f"{100 * low['success']:.1f}% low vs {100 * high['success']:.1f}% high success -> "
            f"{_verdict(low['success'] < high['success'] - 0.05)}.",
        ]
    faster = "threads" if batched["throughput"] >= stats["process_closed"]["throughput"] else "processes"
    verdicts += [
        f"- Model workers: {faster} are faster ({batched['throughput']:.0f}/s threads vs "
        f"{stats['process_closed']['throughput']:.0f}/s processes, closed loop).",
    ]
    return "\n\n".join(parts) + "\n\nTargets:\n\n" + "\n".join(verdicts) + "\n"


def overload_table(title: str, capacity: float, offered: float, lag_ms: float,
                   unloaded: Dict[str, Any], classes: Dict[str, Dict[str, Any]]) -> str:
    """The overload table: high priority unloaded, then each class under overload."""
    rows = []
    for label, s in [("high, unloaded", unloaded)] + [(f"{name}, 3x overload", summary)
                                                      for name, summary in classes.items()]:
        rows.append([label, s["sent"], 100 * s["success"], s["p50_ms"], s["p99_ms"], s["codes"]])
    return table(f"{title} (capacity {capacity:.0f}/s, offered {offered:.0f}/s, load generator "
                 f"p99 lag {lag_ms:.1f} ms)",
                 ["priority", "requests", "success %", "p50 ms", "p99 ms", "refusals"], rows)


def plot(stats: Dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    names = [("bare", "bare gRPC"), ("naive", "naive"), ("thread", "batch/threads"),
             ("process", "batch/processes")]
    axes[0].bar([label for _, label in names], [stats[f"{k}_closed"]["throughput"] for k, _ in names])
    axes[0].set_title("closed-loop throughput (req/s)")
    served = names[1:]
    for offset, (kind, label) in enumerate((("closed", "closed-loop p99"), ("open", "fixed-rate p99"))):
        axes[1].bar([i + 0.4 * offset for i in range(len(served))],
                    [stats[f"{k}_{kind}"]["p99_ms"] for k, _ in served], width=0.4, label=label)
    axes[1].set_xticks([i + 0.2 for i in range(len(served))], [label for _, label in served])
    axes[1].set_title("p99 latency (ms)")
    axes[1].legend()
    classes = ["high", "normal", "low"]
    axes[2].bar(classes, [100 * stats[f"overload_{c}"]["success"] for c in classes])
    axes[2].set_title("success % at 3x overload")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


class _LateResponses(logging.Filter):
    """Counts (and keeps out of the output) gRPC's log lines for answers to clients that had
    already given up: the client saw DEADLINE_EXCEEDED, which the tables count."""

    count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "ExecuteBatchError" in record.getMessage():
            _LateResponses.count += 1
            return False
        return True


def run_in_workdir(body: Any, parser: argparse.ArgumentParser, argv: Optional[Sequence[str]],
                   prefix: str) -> Tuple[argparse.Namespace, Dict[str, Any], float]:
    """Parse ``argv``, set the process up and run ``body(args, workdir)`` in a fresh temporary
    folder (removed afterwards).

    Returns:
        ``(args, body's statistics, seconds it took)``.
    """
    args = parser.parse_args(argv)
    started = time.monotonic()
    from core.process import set_up_process

    set_up_process()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("grpc._cython.cygrpc").addFilter(_LateResponses())
    workdir = tempfile.mkdtemp(prefix=prefix)
    try:
        stats = body(args, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return args, stats, time.monotonic() - started


def add_load_options(parser: argparse.ArgumentParser, duration_s: float, channels: int) -> None:
    """The load generator's options, shared by the serving benchmarks."""
    parser.add_argument("--duration", type=float, default=duration_s, help="seconds per load phase")
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop requests in flight")
    parser.add_argument("--channels", type=int, default=channels,
                        help="gRPC connections of the load generator")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved closed-loop rounds")
    parser.add_argument("--swaps", type=int, default=10, help="version swaps under load")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_load_options(parser, duration_s=6.0, channels=1)
    parser.add_argument("--heavy-items", type=int, default=200_000,
                        help="item table rows of the model-bound overload run")
    parser.add_argument("--plot", default="output/benchmarks/serving.png")
    parser.add_argument("--frontend-processes", type=int, default=1,
                        help="front-end processes of the batching servers")
    args, stats, seconds = run_in_workdir(run, parser, argv, "serving-bench-")
    os.makedirs(os.path.dirname(args.plot) or ".", exist_ok=True)
    plot(stats, args.plot)
    print()
    print(report(stats, args))
    print(f"plot: {args.plot}; total {seconds:.0f}s on {os.cpu_count()} CPUs, "
          f"load average at the end {os.getloadavg()[0]:.1f}; {stats['late_answers']} answers "
          "arrived after their client had given up")
    return 0


if __name__ == "__main__":
    if not __package__:
        sys.exit("run as a module from the repository root: python -m benchmarks.serving")
    sys.exit(main())
