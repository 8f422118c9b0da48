"""Online learning: freshness, failed requests during continuous swaps, quality vs a full retrain.

Set-up: the synthetic data set; its training interactions sorted by time are cut in two. A base
model is trained on the older part (Transform analysis and Trainer code as in the pipeline) and
published as version 1. The newer part (`--stream-fraction`) is then sent as events through
`POST /v1/events` (`online.http_handler`) while three processes run: the model server
(`python -m serving.cli serve`, hot reload polling every `--poll-s`), the online learner
(`python -m online.cli learn`) and this script, which keeps a steady load of recommendation
requests (`--rps`, gRPC) on the server the whole time.

Measured:

* freshness: for each probe, the time from the acknowledgement of an event to the first served
  answer reflecting it; probes alternate between a new item (until `lookup_items` knows it)
  and a user consuming their top recommendation (until it leaves their list);
* failed requests of the steady load while the learner publishes versions and the server swaps;
* Recall@20 (seen items excluded, `evaluation.protocol`) on the eval split of the
  base model, the online model after the stream, and a model retrained from scratch on the same
  interactions (base + stream) with the same hyperparameters.

Targets: p50 freshness <= 10 s, 0 failed requests, online within 2% (relative) of the full
retrain on Recall@20.

Usage:
    python -m benchmarks.online [--workdir DIR] [--users N] [--items N] [--interactions N]
        [--probes N] [--rps R] [--poll-s S]
"""

from __future__ import annotations

import argparse
import dataclasses
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Dict, List, Optional

import numpy as np

MODEL = "recsys"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _write_span(root: str, train_rows: List[dict], eval_rows: List[dict], catalog_src: str) -> None:
    from core import features as F
    from ingest import encoding, writer

    encoder = encoding.InteractionEncoder()

    def encode(row: dict) -> bytes:
        return encoder.encode(
            encoding.user_block(row[F.USER_ID], row[F.USER_AGE], row[F.USER_GENDER], row[F.USER_OCCUPATION]),
            encoding.item_block(row[F.ITEM_ID], row[F.ITEM_TITLE], row[F.ITEM_GENRES], row[F.ITEM_YEAR]),
            row[F.RATING], row[F.TIMESTAMP])

    with writer.SpanWriter(root, 0) as span:
        span.write_all(F.TRAIN_SPLIT, (encode(r) for r in train_rows))
        span.write_all(F.EVAL_SPLIT, (encode(r) for r in eval_rows))
    os.makedirs(os.path.dirname(writer.catalog_path(root)), exist_ok=True)
    shutil.copy(catalog_src, writer.catalog_path(root))


def _analyse_and_train(data_root: str, out: str, trainer) -> None:
    """Transform analysis and training of the base networks, as the pipeline does them."""
    import tensorflow_transform as tft
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import schema_utils

    from core import features as F
    from ingest import writer
    from online import base_data
    from pipeline import curated_schema
    from trainer import export, inputs, preprocessing, train

    rows = list(writer.read_examples(writer.split_pattern(data_root, 0, F.TRAIN_SPLIT)))
    spec = schema_utils.schema_as_feature_spec(curated_schema.build_schema()).feature_spec
    with tft_beam.Context(temp_dir=os.path.join(out, "tmp"), force_tf_compat_v1=False):
        transform_fn = ([{k: [v] for k, v in r.items()} for r in rows], tft.DatasetMetadata.from_feature_spec(spec)) \
            | tft_beam.AnalyzeDataset(preprocessing.preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(out, "transform"))
    tft_output = tft.TFTransformOutput(os.path.join(out, "transform"))
    layer = tft_output.transform_features_layer()
    vocab = inputs.vocabularies(tft_output)
    arrays = {s: base_data.transform(base_data.read_raw([writer.split_pattern(data_root, 0, s)]), layer)
              for s in (F.TRAIN_SPLIT, F.EVAL_SPLIT)}
    inputs.add_histories(arrays[F.TRAIN_SPLIT], arrays[F.EVAL_SPLIT], num_users=vocab.users - F.OOV_BUCKETS)
    data = inputs.array_dataset(arrays[F.TRAIN_SPLIT], trainer.batch_size, shuffle=True, seed=trainer.seed)
    nets = train.train(data, None, vocab, trainer, item_probabilities=inputs.item_probabilities(data, vocab.items))
    export.save_trained(export.Networks(nets.query_tower, nets.candidate_tower, nets.ranking_model), os.path.join(out, "trained"))


def _export_serving_model(data_root: str, out: str, export_dir: str, options) -> None:
    import tensorflow_transform as tft

    from online import base_data
    from trainer import export, tables
    from trainer.serving_model import ServingModel

    tft_output = tft.TFTransformOutput(os.path.join(out, "transform"))
    layer = tft_output.transform_features_layer()
    nets = export.load_trained(os.path.join(out, "trained"))
    base = base_data.load(data_root, [0], layer)
    item_features = tables.transform_catalog(base.catalog, tft_output)
    table = tables.build_tables([base.train], tft_output, base.catalog, item_features)
    module = ServingModel(nets.query_tower, nets.ranking_model, tables.embed_catalog(nets.candidate_tower, item_features),
                          table, layer, options)
    export.export_serving(module, export_dir)


class _Process:
    """A child process whose output lines are kept (and echoed with a prefix)."""

    def __init__(self, args: List[str], prefix: str, log_path: str) -> None:
        env = dict(os.environ, PYTHONPATH=ROOT, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
        self.lines: List[str] = []
        self._log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, text=True, cwd=ROOT, env=env)
        self._thread = threading.Thread(target=self._read, args=(prefix,), daemon=True)
        self._thread.start()

    def _read(self, prefix: str) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._log.write(line)
            if line.startswith("[learn] started") or "BLOCKED" in line:
                print(line.rstrip(), flush=True)
            elif line.startswith("serving "):
                print(f"{prefix} {line.rstrip()}", flush=True)

    def wait_for(self, predicate, timeout_s: float, what: str) -> str:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            for line in list(self.lines):
                if predicate(line):
                    return line
            if self.process.poll() is not None:
                raise RuntimeError(f"{what}: the process exited with {self.process.returncode} (see {self._log.name})")
            time.sleep(0.1)
        raise TimeoutError(f"{what}: not seen within {timeout_s:.0f}s (see {self._log.name})")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._thread.join(timeout=10)
        self._log.close()


class _EventsFront:
    """`POST /v1/events` on a loopback port, backed by `online.http_handler.EventsHandler`."""

    def __init__(self, log_dir: str) -> None:
        from online.event_log import EventLog
        from online.http_handler import ROUTE, EventsHandler

        handler = EventsHandler(EventLog(log_dir))

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, reply = handler.handle(body) if self.path == ROUTE else (404, {"error": "not found"})
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{ROUTE}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def post(self, events: List[dict]) -> float:
        """Sends a batch; returns the time of the acknowledgement."""
        request = urllib.request.Request(self.url, data=json.dumps({"events": events}).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            reply = json.loads(response.read())
        if reply["acknowledged"] != len(events):
            raise RuntimeError(f"events not acknowledged: {reply}")
        return time.monotonic()


class _Load:
    """A steady stream of recommendation requests; every failure is counted."""

    def __init__(self, target: str, users: List[str], rps: float) -> None:
        self.ok, self.failed, self.errors = 0, 0, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(target, users, rps), daemon=True)
        self._thread.start()

    def _run(self, target: str, users: List[str], rps: float) -> None:
        from serving.client import RecommendationClient

        rng = np.random.default_rng(0)
        with RecommendationClient(target, timeout_s=10.0) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                try:
                    client.recommend([users[rng.integers(len(users))]], MODEL)
                    self.ok += 1
                except Exception as err:  # noqa: BLE001 - counted and reported, not swallowed
                    self.failed += 1
                    self.errors.append(repr(err))
                next_at += 1.0 / rps
                time.sleep(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _event(row: dict, event_id: str) -> dict:
    from core import features as F

    return {"event_id": event_id, F.USER_ID: row[F.USER_ID], F.ITEM_ID: row[F.ITEM_ID], F.RATING: row[F.RATING],
            F.TIMESTAMP: row[F.TIMESTAMP]}


def _probe(front: _EventsFront, client, n: int, user: str, timeout_s: float) -> Optional[float]:
    """One freshness probe; returns seconds from acknowledgement to a reflecting answer."""
    from core import features as F

    if n % 2 == 0:
        item = f"probe-item-{n}"
        acked = front.post([{"event_id": f"probe-{n}", F.USER_ID: user, F.ITEM_ID: item, F.RATING: 5.0,
                             F.ITEM_TITLE: f"Probe {n} (2024)", F.ITEM_GENRES: "Drama", F.ITEM_YEAR: 2024}])

        def reflected() -> bool:
            out = client.predict(MODEL, {F.ITEM_ID: np.array([item.encode()], dtype=object)}, signature="lookup_items")
            return bool(out[F.ITEM_TITLE][0])
    else:
        top = client.recommend([user], MODEL)[0][0][0]
        acked = front.post([{"event_id": f"probe-{n}", F.USER_ID: user, F.ITEM_ID: top, F.RATING: 5.0}])

        def reflected() -> bool:
            return top not in client.recommend([user], MODEL)[0][0]
    while time.monotonic() - acked < timeout_s:
        if reflected():
            return time.monotonic() - acked
        time.sleep(0.05)
    return None


def _recall(model_dir: str, train_cols, eval_cols, catalog_ids) -> float:
    import tensorflow as tf

    from core import features as F
    from evaluation import protocol
    from evaluation.model_eval import index_splits, signature_recommender

    train, eval_ = index_splits(train_cols, eval_cols, catalog_ids)
    loaded = tf.saved_model.load(model_dir)
    recommend = signature_recommender(loaded, F.SERVING_SIGNATURE, train.user_index, train.item_index)
    return protocol.evaluate_top_k(recommend, train, eval_, cutoffs=(20,))["recall_at_20"]


def _columns(rows: List[dict]) -> Dict[str, np.ndarray]:
    from core import features as F

    return {F.USER_ID: np.array([r[F.USER_ID] for r in rows], str), F.ITEM_ID: np.array([r[F.ITEM_ID] for r in rows], str),
            F.RATING: np.array([r[F.RATING] for r in rows], np.float32), F.TIMESTAMP: np.array([r[F.TIMESTAMP] for r in rows])}


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="output/bench_online")
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--items", type=int, default=800)
    parser.add_argument("--interactions", type=int, default=40_000)
    parser.add_argument("--stream-fraction", type=float, default=0.2, help="newest share of training sent as events")
    parser.add_argument("--stream-rate", type=float, default=500.0, help="events per second while streaming")
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument("--rps", type=float, default=20.0, help="steady recommendation requests per second")
    parser.add_argument("--poll-s", type=float, default=0.5, help="the server's version poll interval")
    args = parser.parse_args(argv)
    from core.process import set_up_process

    set_up_process()
    from core import features as F
    from ingest import catalog_path, generate_synthetic, read_examples, split_pattern
    from ingest.config import SyntheticDataConfig
    from serving.client import RecommendationClient
    from trainer.config import TrainerConfig
    from trainer.serving_model import ServingOptions

    started = time.time()
    work = os.path.abspath(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    paths = {name: os.path.join(work, name) for name in ("generated", "base", "full", "log", "serving", "state", "logs")}
    os.makedirs(paths["logs"])
    generate_synthetic(paths["generated"], SyntheticDataConfig(num_users=args.users, num_items=args.items,
                                                               num_interactions=args.interactions))
    train_rows = sorted(read_examples(split_pattern(paths["generated"], 0, F.TRAIN_SPLIT)), key=lambda r: r[F.TIMESTAMP])
    eval_rows = list(read_examples(split_pattern(paths["generated"], 0, F.EVAL_SPLIT)))
    cut = int(len(train_rows) * (1.0 - args.stream_fraction))
    base_rows, stream_rows = train_rows[:cut], train_rows[cut:]
    for name, rows in (("base", base_rows), ("full", train_rows)):
        _write_span(os.path.join(paths[name], "data"), rows, eval_rows, str(catalog_path(paths["generated"])))
    trainer = TrainerConfig()  # the pipeline's defaults; every model is served as the pipeline serves it
    options = ServingOptions(top_k=trainer.top_k, candidates_to_rank=trainer.candidates_to_rank,
                             ranking_weight=trainer.ranking_weight)
    print(f"[bench] base model: Transform + training on {len(base_rows)} interactions; {len(stream_rows)} to stream", flush=True)
    _analyse_and_train(os.path.join(paths["base"], "data"), paths["base"], trainer)
    _export_serving_model(os.path.join(paths["base"], "data"), paths["base"], os.path.join(paths["serving"], "1"), options)
    print(f"[bench] base model published as version 1 after {time.time() - started:.0f}s", flush=True)

    with open(os.path.join(work, "online.json"), "w", encoding="utf-8") as handle:
        json.dump({"learner": {"export_interval_s": 1.0, "export_every_events": 5000, "poll_interval_s": 0.1,
                               "reserve_users": 2000, "reserve_items": 1000,
                               "learning_rate": 0.01}}, handle)  # the rate BENCHMARKS.md "Online learning" was measured at
    with open(os.path.join(work, "pipeline.json"), "w", encoding="utf-8") as handle:
        json.dump({"trainer": dataclasses.asdict(trainer)}, handle)
    server = _Process([sys.executable, "-m", "serving.cli", "serve", "--model-base-path", paths["serving"],
                       "--model-name", MODEL, "--grpc-port", "0", "--rest-port", "0", "--poll-interval-s", str(args.poll_s)],
                      "[server]", os.path.join(paths["logs"], "server.log"))
    learner = load = None
    try:
        ports = server.wait_for(lambda line: line.startswith("serving grpc="), 600, "server start")
        target = f"127.0.0.1:{ports.split()[1].split('=')[1]}"
        learner = _Process([sys.executable, "-m", "online.cli", "learn", "--output", work, "--log", paths["log"],
                            "--data", os.path.join(paths["base"], "data"), "--serving-model-dir", paths["serving"],
                            "--state", paths["state"], "--trained-dir", os.path.join(paths["base"], "trained"),
                            "--transform-dir", os.path.join(paths["base"], "transform"), "--config",
                            os.path.join(work, "online.json"), "--pipeline-config", os.path.join(work, "pipeline.json"),
                            "--model-name", MODEL], "[learn]", os.path.join(paths["logs"], "learner.log"))
        learner.wait_for(lambda line: line.startswith("[learn] started"), 900, "learner start")
        front = _EventsFront(paths["log"])
        users = sorted({r[F.USER_ID] for r in base_rows})
        load = _Load(target, users, args.rps)
        stream_start = time.monotonic()
        for start in range(0, len(stream_rows), 100):
            front.post([_event(r, f"stream-{start + i}") for i, r in enumerate(stream_rows[start:start + 100])])
            time.sleep(max(0.0, stream_start + (start + 100) / args.stream_rate - time.monotonic()))
        learner.wait_for(lambda line: f"(log offset {len(stream_rows)})" in line, 900, "stream applied")
        stream_s = time.monotonic() - stream_start
        exported = [int(line.split()[2].rstrip(":")) for line in learner.lines if line.startswith("[learn] version")]
        online_version = max(exported)
        print(f"[bench] {len(stream_rows)} events applied in {stream_s:.0f}s; online model is version {online_version}", flush=True)
        rng = np.random.default_rng(1)
        freshness: Dict[str, List[float]] = {"new item": [], "consumed item": []}
        missed = 0
        with RecommendationClient(target, timeout_s=10.0) as client:
            for n in range(args.probes):
                took = _probe(front, client, n, str(rng.choice(users)), timeout_s=60.0)
                kind = "new item" if n % 2 == 0 else "consumed item"
                if took is None:
                    missed += 1
                else:
                    freshness[kind].append(took)
                print(f"[bench] probe {n + 1}/{args.probes} ({kind}): "
                      f"{'not reflected within 60 s' if took is None else f'{took:.2f}s'}", flush=True)
                time.sleep(float(rng.uniform(0.2, 1.0)))
        load.stop()
        swaps = sum(line.startswith("[learn] version") for line in learner.lines)
    finally:
        if load is not None:
            load.stop()
        if learner is not None:
            learner.stop()
        server.stop()

    print(f"[bench] full retrain on {len(train_rows)} interactions", flush=True)
    _analyse_and_train(os.path.join(paths["full"], "data"), paths["full"], trainer)
    _export_serving_model(os.path.join(paths["full"], "data"), paths["full"], os.path.join(paths["full"], "serving", "1"), options)
    from trainer.tables import read_catalog

    catalog_ids = read_catalog([str(catalog_path(paths["generated"]))])[F.ITEM_ID].astype(str)
    train_cols, eval_cols = _columns(train_rows), _columns(eval_rows)
    recall = {name: _recall(path, train_cols, eval_cols, catalog_ids) for name, path in (
        ("base (older 80%)", os.path.join(paths["serving"], "1")),
        ("online (base + stream)", os.path.join(paths["serving"], str(online_version))),
        ("full retrain", os.path.join(paths["full"], "serving", "1")))}
    values = sorted(freshness["new item"] + freshness["consumed item"])
    p50, p95 = (float(np.percentile(values, q)) for q in (50, 95)) if values else (float("nan"),) * 2
    relative = recall["online (base + stream)"] / recall["full retrain"] - 1.0
    print(f"\n## Online learning ({args.users} users, {args.items} items, {args.interactions} interactions; "
          f"{len(stream_rows)} streamed events; {args.rps:g} req/s steady load; server poll {args.poll_s:g}s; "
          f"{time.time() - started:.0f}s total)\n")
    print("| measure | value | target | verdict |\n|---|---:|---:|---|")
    print(f"| freshness p50, all probes | {p50:.2f} s | <= 10 s | {_verdict(p50 <= 10.0)} |")
    print(f"| freshness p95, all probes | {p95:.2f} s | - | - |")
    for kind, taken in freshness.items():
        if taken:
            print(f"| freshness p50, {kind} ({len(taken)} probes) | {np.percentile(taken, 50):.2f} s | - | - |")
    print(f"| probes not reflected within 60 s | {missed} of {args.probes} | 0 | {_verdict(missed == 0)} |")
    print(f"| failed requests during {swaps} swaps | {load.failed} of {load.ok + load.failed} | 0 | {_verdict(load.failed == 0)} |")
    for name, value in recall.items():
        print(f"| Recall@20, {name} | {value:.4f} | - | - |")
    print(f"| online vs full retrain (Recall@20) | {100 * relative:+.2f}% | >= -2% | {_verdict(relative >= -0.02)} |")
    if load.errors:
        print(f"\nfirst failures: {load.errors[:3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
