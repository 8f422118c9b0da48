"""Training throughput of one process vs a 2-worker MultiWorkerMirroredStrategy cluster on loopback.

    python -m benchmarks.distributed [--examples 32768] [--batch 1024] [--steps 20] [--warmup 3] [--out r.json]

Self-contained (no pipeline run needed): random transformed features with MovieLens-1M-like
vocabulary sizes, held in memory (the same arrays, same seed, in every process). Each variant
runs as real processes on 127.0.0.1 with their own TF_CONFIG (`tests.distributed.loopback`),
every task reading its share of each global batch through the Trainer's cluster input
(`trainer.multi_worker.dataset_creator`; the one process reads its only pipeline the same way).
Each task fits the retrieval model (in-batch negatives gathered across the replicas) and then
the ranking model for `--warmup` + `--steps` steps at the global batch `--batch`; the
throughput is `--steps` x `--batch` examples over the wall time of the steps after the warm-up
(the chief's clock). Prints a table with the speed-up over one process.

Variants: 1 process (default strategy), 2 workers (chief + worker, MultiWorkerMirrored). The
parameter-server run (1 chief, 2 workers, 2 PS: asynchronous steps coordinated by the chief,
timed per epoch of a Keras fit) is measured by `benchmarks/distributed_ps.py`; its row here
points there.

What the numbers can say: the cost of MultiWorkerMirrored's per-step all-reduce and gather over
gRPC next to the step's compute, for these models at this batch, when the workers share one
machine's cores. What they cannot say: the speed-up of a real cluster. Here both workers share
the same 2 cores (a second worker adds no compute, only communication), and loopback has no
network latency or bandwidth limit; on separate machines each worker brings its own cores and
every step pays a real network round trip.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import tempfile
import time
from typing import Dict, List, Optional

import numpy as np

FITS = ("retrieval", "ranking")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row: its name, the strategy its tasks use and the cluster's tasks ({} for one process)."""

    name: str
    strategy: str
    tasks: Dict[str, int]


VARIANTS = (
    Variant("1 process", "default", {}),
    Variant("2 workers, MultiWorkerMirrored", "multi_worker", {"chief": 1, "worker": 1}),
)
# The parameter-server row: its tasks (ps and worker serve, the chief coordinates the fits
# through a ClusterCoordinator) are timed differently, by `benchmarks.distributed_ps`.
PARAMETER_SERVER = Variant("1 chief + 2 workers + 2 PS, ParameterServer", "parameter_server",
                           {"chief": 1, "worker": 2, "ps": 2})
PARAMETER_SERVER_NOTE = "measured by python -m benchmarks.distributed_ps (examples/s per epoch of a Keras fit)"


def run_task(args: argparse.Namespace) -> None:
    """One task of a variant: fits both models and writes `<out>/<name>.json` (steps' end times)."""
    from core.process import set_up_process

    set_up_process()
    from trainer import distribution

    strategy = distribution.choose_strategy(args.strategy)  # first: a cluster strategy configures the runtime
    import tensorflow as tf

    from benchmarks.gpu_mirrored import random_features
    from core import features as F
    from trainer import holdout, inputs, multi_worker, train
    from trainer.config import TrainerConfig
    from trainer.towers import Vocabularies

    vocab = Vocabularies(users=6041, items=3707, genders=3, occupations=22, genres=19, title_tokens=5001,
                         age_buckets=7, year_buckets=12)
    arrays = random_features(args.examples, vocab, seed=0)
    arrays[F.RATING_XF] = np.random.default_rng(1).integers(1, 6, args.examples).astype(np.float32)
    cfg = TrainerConfig(batch_size=args.batch, epochs=1, ranking_epochs=1, seed=3, strategy=args.strategy)
    source = holdout.ExampleSource(arrays=arrays, examples=args.examples)
    counts = np.bincount(arrays[F.ITEM_ID_XF], minlength=vocab.items)[: vocab.items]
    ends: Dict[str, List[float]] = {}

    class Clock(tf.keras.callbacks.Callback):
        def __init__(self, fit: str) -> None:
            super().__init__()
            self.fit = fit

        def on_train_batch_end(self, batch, logs=None):
            ends.setdefault(self.fit, []).append(time.perf_counter())

    train.train(multi_worker.dataset_creator(source, None, cfg), None, vocab, cfg,
                item_probabilities=inputs.probabilities_from_counts(counts.astype(np.float64)), strategy=strategy,
                callbacks=lambda fit: [Clock(fit)], steps_per_epoch=args.warmup + args.steps)
    with open(os.path.join(args.out, f"{args.name}.json"), "w") as handle:
        json.dump({"ends": ends, "replicas": strategy.num_replicas_in_sync}, handle)


def _throughput(ends: List[float], warmup: int, steps: int, batch: int) -> float:
    return steps * batch / (ends[warmup + steps - 1] - ends[warmup - 1])


def run_variant(variant: Variant, args: argparse.Namespace, work: pathlib.Path) -> Dict[str, object]:
    """Runs `variant`'s processes to the end; returns its row (examples/s of each fit)."""
    from tests.distributed import loopback

    out = work / variant.strategy
    out.mkdir(parents=True)
    task_args = ["--task", "--strategy", variant.strategy, "--examples", str(args.examples), "--batch",
                 str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup), "--out", str(out)]
    spec = loopback.cluster_spec(**variant.tasks) if variant.tasks else {}
    tasks = [(kind, index) for kind, count in variant.tasks.items() for index in range(count)] or [("chief", 0)]
    with loopback.Cluster(out) as cluster:
        names = []
        for kind, index in tasks:
            name = f"{kind}-{index}"
            config = loopback.tf_config(spec, kind, index) if spec else None
            cluster.start(name, task_args, config, module="benchmarks.distributed")
            names.append(name)
        cluster.wait(names, args.timeout)
    result = json.loads((out / "chief-0.json").read_text())
    row: Dict[str, object] = {"variant": variant.name, "processes": len(tasks), "replicas": result["replicas"]}
    for fit in FITS:
        row[fit] = _throughput(result["ends"][fit], args.warmup, args.steps, args.batch)
    return row


def _table(rows: List[Dict[str, object]]) -> str:
    lines = ["| variant | processes | replicas | retrieval examples/s | ranking examples/s | retrieval vs 1 process "
             "| ranking vs 1 process |", "|---|---|---|---|---|---|---|"]
    base = rows[0]
    for row in rows:
        lines.append(f"| {row['variant']} | {row['processes']} | {row['replicas']} | {row['retrieval']:,.0f} | "
                     f"{row['ranking']:,.0f} | {row['retrieval'] / base['retrieval']:.2f}x | "
                     f"{row['ranking'] / base['ranking']:.2f}x |")
    lines.append(f"| {PARAMETER_SERVER.name} | {sum(PARAMETER_SERVER.tasks.values())} | - | see below | see below | - | - |")
    lines.append(f"\n{PARAMETER_SERVER.name}: {PARAMETER_SERVER_NOTE}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=32768)
    parser.add_argument("--batch", type=int, default=1024, help="global batch (split over the replicas)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each fit")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (tracing, collective set-up)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a variant may run")
    parser.add_argument("--out", help="write the rows as JSON here")
    parser.add_argument("--task", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", default="default", help=argparse.SUPPRESS)
    parser.add_argument("--name", default="chief-0", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.task:
        run_task(args)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="distributed-bench-") as work:
        for variant in VARIANTS:
            print(f"running {variant.name} ...", file=sys.stderr, flush=True)
            rows.append(run_variant(variant, args, pathlib.Path(work)))
    print(f"global batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up steps, "
          f"{os.cpu_count()} CPU cores, all processes on 127.0.0.1")
    print(_table(rows))
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
