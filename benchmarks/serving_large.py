"""Large-model serving benchmark: a 1,000,000 x 64 brute-force top-k model served naively, by
the batching server with 1 and 2 front-end processes, and called directly in batches (the
limit), in one run.

Run from the repository root:

    TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m benchmarks.serving_large

The model is built here: a contract SavedModel (``serving_default(user_id) -> item_ids,
scores``) that looks a user up (5,000 users), multiplies by an N x 64 float32 item table and
takes the top 100 (``benchmarks.serving.build_model``).  Each server runs in its own spawned
process; the load generator is one more process (``benchmarks.serving.Load``: pre-serialized
single-user gRPC Predict requests through ``grpc.aio`` over several channels, one TCP
connection each, so SO_REUSEPORT spreads them over front ends).  Closed-loop load keeps N
requests outstanding; fixed-rate load sends on a schedule whatever the answers (open loop),
with a per-request gRPC deadline; the generator's own lag is reported.  The raw TensorFlow
limit is the SavedModel called in a loop in its own process (batch 1, batch 64, and batch 64
from two threads).  Phases: closed loop, raw calls included (interleaved rounds, best kept);
fixed rates; the highest fixed rate each server sustains at naive's closed-loop p99
(throughput at equal p99); 3x overload with mixed priorities; version swaps under steady load; resident memory of
every server's process tree.  Every phase is bounded in time.  The batching servers run
``--batch-threads`` model worker threads (default 2; 1 lets a memory-bound model's batches fill)
plus one urgent lane (``urgent_workers=1``, ``urgent_max_batch_size=8``),
``max_batch_size=64``, a queue of 2 batches, ``shed_max_class=normal`` and ``inflight_limit``
(``--inflight-limit``, split over the front ends).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from benchmarks.rss import tree_rss
from benchmarks.serving import (MODEL, Load, add_load_options, ServerProcess, build_model, overload_table, payloads,
                                progress, run_in_workdir, summarize, table)

SERVERS = ("naive", "batch1", "batch2")
LABELS = {"naive": "naive: 1 model call per request", "batch1": "batching, 1 front-end process",
          "batch2": "batching, 2 front-end processes"}
MIX = [("high", 0.2), ("normal", 0.3), ("low", 0.5)]


def _raw_main(conn: Any, path: str, duration_s: float) -> None:
    """The limit: the SavedModel called directly, in its own process."""
    from core.process import set_up_process

    set_up_process()
    import threading

    import numpy as np

    from core.features import SERVING_INPUT_USER, SERVING_SIGNATURE
    from serving.workers import SavedModelRunner

    started = time.perf_counter()
    runner = SavedModelRunner(path)
    load_s = time.perf_counter() - started
    users = np.array([f"user{(i * 37) % 6000}".encode() for i in range(64)], dtype=object)
    started = time.perf_counter()
    runner.run(SERVING_SIGNATURE, {SERVING_INPUT_USER: users[:1]})
    first_s = time.perf_counter() - started
    out: Dict[str, Any] = {"load_s": load_s, "first_call_s": first_s}
    for name, batch, threads in (("b1", 1, 1), ("b64", 64, 1), ("b64x2", 64, 2)):
        counts = [0] * threads
        end = time.perf_counter() + duration_s

        def loop(index: int, batch: int = batch, end: float = end, counts: List[int] = counts) -> None:
            while time.perf_counter() < end:
                runner.run(SERVING_SIGNATURE, {SERVING_INPUT_USER: users[:batch]})
                counts[index] += batch

        workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
        begin = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        out[name] = sum(counts) / (time.perf_counter() - begin)
    conn.send(out)


def raw_limit(path: str, duration_s: float) -> Dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_raw_main, args=(child, path, duration_s))
    process.start()
    child.close()
    if not parent.poll(600):
        process.kill()
        raise RuntimeError("the raw TensorFlow run did not finish in time")
    result = parent.recv()
    process.join(timeout=30)
    return result


def link_install(source: str, base_path: str, version: int) -> None:
    """Install a version by hard-linking the source's files (no copy of a large model)."""
    temp = os.path.join(base_path, f".incoming-{version}")
    shutil.copytree(source, temp, copy_function=os.link)
    os.replace(temp, os.path.join(base_path, str(version)))


def _load(port: int, data: List[bytes], args: argparse.Namespace, **job: Any) -> Load:
    job.setdefault("timeout_s", args.timeout)
    job.setdefault("mix", [("normal", 1.0)])
    return Load(f"127.0.0.1:{port}", payloads=data, channels=args.channels,
                duration_s=args.duration, **job)


def _memory_mb(server: ServerProcess) -> str:
    """RSS / PSS of the server's process tree, MiB (PSS splits shared library pages)."""
    if not server.pid:
        return "-"
    return f"{tree_rss(server.pid) / 2 ** 20:.0f} / {tree_rss(server.pid, True) / 2 ** 20:.0f}"


def run(args: argparse.Namespace, workdir: str) -> Dict[str, Any]:
    from trainer.warmup_requests import write_warmup_requests

    stats: Dict[str, Any] = {}
    progress(f"building the contract SavedModel ({args.items:,} x 64 items, top-k 100)")
    started = time.perf_counter()
    source = build_model(os.path.join(workdir, "source"), 1, num_items=args.items, dim=64)
    write_warmup_requests(source, MODEL, [f"user{i}" for i in range(64)], num_records=4)
    stats["build_s"] = time.perf_counter() - started
    data = payloads()
    batching = dict(max_batch_size=64, batch_timeout_micros=args.batch_timeout_us,
                    num_batch_threads=args.batch_threads, max_enqueued_batches=2)
    scheduling = dict(urgent_workers=1, urgent_max_batch_size=8, shed_max_class="normal")
    servers: Dict[str, ServerProcess] = {}
    bases = {}
    try:
        for name in SERVERS:
            progress(f"starting {name}")
            if name == "naive":
                servers[name] = ServerProcess("naive", source=source)
                continue
            bases[name] = os.path.join(workdir, f"models-{name}")
            link_install(source, bases[name], 1)
            frontends = int(name[-1])
            servers[name] = ServerProcess("thread", base=bases[name], poll_s=0.2,
                                          frontend_processes=frontends, batching=batching,
                                          scheduling=dict(scheduling, inflight_limit=(
                                              args.inflight_limit // frontends)))
            stats[f"{name}_start_s"] = servers[name].ask("stats")["start_s"]
        stats["rss_idle"] = {name: _memory_mb(server) for name, server in servers.items()}
        for round_index in range(args.rounds):
            progress(f"round {round_index + 1}/{args.rounds}: raw TensorFlow calls, "
                     f"{args.duration:.0f}s each (batch 1, 64, 64 x 2 threads)")
            raw = raw_limit(source, args.duration)
            best_raw = stats.setdefault("raw", raw)
            for key in ("b1", "b64", "b64x2"):
                best_raw[key] = max(best_raw[key], raw[key])
            for name, server in servers.items():
                progress(f"round {round_index + 1}/{args.rounds}: {name}, closed loop "
                         f"x{args.concurrency} for {args.duration:.0f}s")
                result = summarize(_load(server.port, data, args, kind="closed",
                                         concurrency=args.concurrency).result())
                best = stats.get(f"{name}_closed")
                if best is None or result["throughput"] > best["throughput"]:
                    stats[f"{name}_closed"] = result
        naive_cap = stats["naive_closed"]["throughput"]
        stats["rates"] = [0.5 * naive_cap, naive_cap]
        for rate in stats["rates"]:
            for name, server in servers.items():
                progress(f"{name}: fixed rate {rate:.0f}/s for {args.duration:.0f}s")
                stats[f"{name}_open_{rate:.0f}"] = summarize(
                    _load(server.port, data, args, kind="open", rate=rate).result())
        equal_p99(servers, data, args, stats)
        stats["rss_loaded"] = {name: _memory_mb(server) for name, server in servers.items()}
        for name in ("batch2", "batch1"):
            overload(servers[name], data, args, stats, name)
        swaps(servers["batch2"], source, bases["batch2"], data, args, stats)
    finally:
        for server in servers.values():
            server.stop()
    return stats


def equal_p99(servers: Dict[str, ServerProcess], data: List[bytes], args: argparse.Namespace,
              stats: Dict[str, Any]) -> None:
    """The highest fixed rate (steps of 0.5x naive's capacity) each server answers with p99 at
    or under naive's closed-loop p99 and no failure."""
    target = stats["naive_closed"]["p99_ms"]
    step = 0.5 * stats["naive_closed"]["throughput"]
    stats["slo_ms"] = target
    for name, server in servers.items():
        best: Optional[Dict[str, Any]] = None
        for multiple in range(1, args.max_steps + 1):
            rate = step * multiple
            progress(f"{name}: equal-p99 ladder, {rate:.0f}/s (target p99 {target:.0f} ms)")
            result = summarize(_load(server.port, data, args, kind="open", rate=rate).result())
            if result["failed"] or result["p99_ms"] > target:
                break
            best = dict(result, rate=rate)
        stats[f"{name}_slo"] = best


def overload(server: ServerProcess, data: List[bytes], args: argparse.Namespace,
             stats: Dict[str, Any], name: str) -> None:
    """High priority alone at 10% of capacity, then 3x capacity with mixed priorities."""
    capacity = stats[f"{name}_closed"]["throughput"]
    progress(f"[{name}] unloaded: high priority only at {0.1 * capacity:.0f}/s")
    stats[f"{name}_unloaded_high"] = summarize(_load(
        server.port, data, args, kind="open", rate=max(5.0, 0.1 * capacity),
        mix=[("high", 1.0)]).result())
    progress(f"[{name}] overload: 3x capacity = {3 * capacity:.0f}/s, priorities {MIX}")
    result = _load(server.port, data, args, kind="open", rate=3 * capacity, mix=MIX).result()
    stats[f"{name}_overload"] = {"capacity": capacity, "offered": len(result["results"]) / result["elapsed"],
                                 "lag_ms": result["client_lag_p99"] * 1e3,
                                 **{c: summarize(result, c) for c, _ in MIX}}


def swaps(server: ServerProcess, source: str, base: str, data: List[bytes],
          args: argparse.Namespace, stats: Dict[str, Any]) -> None:
    """A new version every ``swap_every`` seconds under a steady load (``swap_load`` of the
    closed-loop capacity);
    the time until each is the only version served is recorded (nan when it was not by the
    next install)."""
    rate = args.swap_load * stats["batch2_closed"]["throughput"]
    progress(f"{args.swaps} version swaps of the {args.items:,}-item model, one every "
             f"{args.swap_every:.0f}s, under {rate:.0f}/s")
    load = Load(f"127.0.0.1:{server.port}", payloads=data, channels=args.channels,
                kind="open", rate=rate, duration_s=args.swaps * args.swap_every + 2.0,
                timeout_s=args.timeout, mix=[("normal", 1.0)])
    time.sleep(1.0)
    times = []
    for version in range(2, 2 + args.swaps):
        started = time.perf_counter()
        link_install(source, base, version)
        took = float("nan")
        while time.perf_counter() - started < args.swap_every:
            if took != took and server.ask("stats")["available"] == [version]:
                took = time.perf_counter() - started
            time.sleep(0.05)
        times.append(took)
    result = load.result()
    time.sleep(2.0)
    info = server.ask("stats")
    stats["swaps"] = dict(summarize(result), times=times, final=info["available"],
                          loads=info["loads"], load_failures=info["load_failures"])


def report(stats: Dict[str, Any], args: argparse.Namespace) -> str:
    raw = stats["raw"]
    parts = [table(f"Raw TensorFlow calls of the {args.items:,} x 64 model (the limit; best of "
                   f"{args.rounds} rounds, interleaved with the servers' closed-loop rounds)",
                   ["call", "queries/s"],
                   [["batch 1, one caller", raw["b1"]], ["batch 64, one caller", raw["b64"]],
                    ["batch 64, two callers", raw["b64x2"]]])]
    rows = [[LABELS[n], f"closed x{args.concurrency}", s["throughput"], s["p50_ms"], s["p99_ms"],
             s["failed"]] for n in SERVERS for s in [stats[f"{n}_closed"]]]
    for rate in stats["rates"]:
        rows += [[LABELS[n], f"fixed {rate:.0f}/s", s["throughput"], s["p50_ms"], s["p99_ms"],
                  s["failed"]] for n in SERVERS for s in [stats[f"{n}_open_{rate:.0f}"]]]
    parts.append(table(f"Single-user requests (closed loop: best of {args.rounds} interleaved "
                       "rounds)", ["server", "load", "answers/s", "p50 ms", "p99 ms", "failed"],
                       rows))
    rows = []
    for name in SERVERS:
        s = stats[f"{name}_slo"]
        rows.append([LABELS[name], "-" if s is None else f"{s['rate']:.0f}",
                     "-" if s is None else f"{s['p99_ms']:.1f}"])
    parts.append(table(f"Throughput at equal p99: the highest fixed rate (steps of half naive's "
                       f"capacity) with p99 <= naive's closed-loop p99 ({stats['slo_ms']:.0f} ms) "
                       "and no failure", ["server", "rate/s", "p99 ms"], rows))
    rows = [[LABELS[n], stats["rss_idle"][n], stats["rss_loaded"][n],
             f"{stats.get(f'{n}_start_s', float('nan')):.1f}"] for n in SERVERS]
    parts.append(table(f"Memory (process tree, MiB) and start time (load + warm-up; raw "
                       f"load {raw['load_s']:.1f}s, first call {raw['first_call_s']:.2f}s)",
                       ["server", "RSS / PSS idle", "RSS / PSS after load", "start s"], rows))
    for name in ("batch2", "batch1"):
        over = stats[f"{name}_overload"]
        base = stats[f"{name}_unloaded_high"]
        parts.append(overload_table(f"{LABELS[name]}: 3x overload", over["capacity"],
                                    over["offered"], over["lag_ms"], base,
                                    {c: over[c] for c, _ in MIX}))
    sw = stats["swaps"]
    times = sorted(sw["times"], key=lambda t: (t != t, t))  # nan (not served in time) last
    parts.append(table("Version swaps under steady load (batching, 2 front-end processes)",
                       ["swaps", "requests", "failed", "codes", "p99 ms", "swap s (median/max)",
                        "serving at end"],
                       [[args.swaps, sw["sent"], sw["failed"], sw["codes"], sw["p99_ms"],
                         f"{times[len(times) // 2]:.1f}/{times[-1]:.1f}", sw["final"]]]))
    return "\n\n".join(parts) + "\n\n" + verdicts(stats)


def verdicts(stats: Dict[str, Any]) -> str:
    naive = stats["naive_closed"]
    lines = []
    for name in ("batch1", "batch2"):
        s = stats[f"{name}_closed"]
        lines.append(f"- {LABELS[name]}: closed loop {s['throughput'] / naive['throughput']:.2f}x "
                     f"naive (p99 {s['p99_ms']:.0f} vs {naive['p99_ms']:.0f} ms), "
                     f"{s['throughput'] / stats['raw']['b64x2']:.2f}x the raw batch-64 call "
                     "(two callers)")
        slo, base = stats[f"{name}_slo"], stats["naive_slo"]
        if slo and base:
            lines.append(f"  at equal p99: {slo['rate'] / base['rate']:.2f}x naive's rate")
        over = stats[f"{name}_overload"]
        high, unloaded = over["high"], stats[f"{name}_unloaded_high"]
        lines.append(f"  3x overload: high {100 * high['success']:.1f}% success, p99 "
                     f"{high['p99_ms'] / unloaded['p99_ms']:.2f}x unloaded; low "
                     f"{100 * over['low']['success']:.1f}%, normal {100 * over['normal']['success']:.1f}%")
    lines.append(f"- swaps: {stats['swaps']['failed']} failed of {stats['swaps']['sent']}")
    return "Ratios:\n\n" + "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_load_options(parser, duration_s=5.0, channels=8)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=float, default=2.0, help="gRPC deadline per request, s")
    parser.add_argument("--max-steps", type=int, default=8, help="equal-p99 ladder steps")
    parser.add_argument("--batch-timeout-us", type=int, default=2000)
    parser.add_argument("--batch-threads", type=int, default=2,
                        help="the batching servers' model worker threads (num_batch_threads)")
    parser.add_argument("--swap-every", type=float, default=8.0, help="seconds between installs")
    parser.add_argument("--swap-load", type=float, default=0.25,
                        help="steady load during swaps, share of the closed-loop capacity")
    parser.add_argument("--inflight-limit", type=int, default=192,
                        help="the batching server's inflight_limit, split over its front ends")
    args, stats, seconds = run_in_workdir(run, parser, argv, "serving-large-")
    print()
    print(report(stats, args))
    print(f"total {seconds:.0f}s on {os.cpu_count()} CPUs, load average at "
          f"the end {os.getloadavg()[0]:.1f}; model built in {stats['build_s']:.0f}s")
    return 0


if __name__ == "__main__":
    if not __package__:
        sys.exit("run as a module from the repository root: python -m benchmarks.serving_large")
    sys.exit(main())
