"""Examples/second of the retrieval fit under the parameter-server strategy, on loopback.

    python -m benchmarks.distributed_ps [--workers 2] [--ps 2] [--steps 40] [--rounds 3] [--result OUT.json]

Starts the parameter servers and workers as `python -m trainer.parameter_server` processes on
127.0.0.1, then a chief process that fits the two-tower retrieval model (`trainer.train`
`build_retrieval`, its tables split over the parameter servers as under
`trainer.strategy: parameter_server`) on synthetic transformed features with large id
vocabularies, through the same per-worker input (`trainer.ps_training.dataset_creator`). One fit
runs a warm-up epoch (tracing, per-worker datasets) and `rounds` timed epochs of `steps` steps; each
step is one `batch_size` batch on some worker, so the rate is steps x batch / seconds. The same
model, data and batch size are then fitted in one process with the default strategy as the
baseline. A table of the median rates is printed.

On one machine every process shares the same cores and the parameter servers are reached over
loopback gRPC: the numbers show the per-step overhead of the parameter-server round trips, not
what a cluster of separate machines would gain.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np

from core.process import child_env

VOCAB = {"users": 100_000, "items": 20_000, "genders": 4, "occupations": 25, "genres": 21, "title_tokens": 5_000,
         "age_buckets": 8, "year_buckets": 12}
EXAMPLES = 100_000


def synthetic_arrays(vocab, examples: int, seed: int) -> Dict[str, np.ndarray]:
    """Transformed-feature arrays of `examples` random interactions over the vocabularies `vocab`."""
    from core import features as F

    rng = np.random.default_rng(seed)
    sizes = {F.USER_ID_XF: (vocab.users, ()), F.USER_AGE_XF: (vocab.age_buckets, ()),
             F.USER_GENDER_XF: (vocab.genders, ()), F.USER_OCCUPATION_XF: (vocab.occupations, ()),
             F.USER_HISTORY: (vocab.items + 1, (F.HISTORY_LENGTH,)), F.ITEM_ID_XF: (vocab.items, ()),
             F.ITEM_YEAR_XF: (vocab.year_buckets, ()), F.ITEM_GENRES_XF: (vocab.genres, (F.MAX_GENRES,)),
             F.ITEM_TITLE_XF: (vocab.title_tokens, (F.MAX_TITLE_TOKENS,))}
    arrays = {name: rng.integers(0, high, (examples, *shape)) for name, (high, shape) in sizes.items()}
    arrays[F.TIMESTAMP_XF] = rng.random(examples).astype(np.float32)
    arrays[F.RATING_XF] = rng.integers(1, 11, examples).astype(np.float32) / 2.0
    return arrays


def _config(batch_size: int, min_shard_bytes: int):
    from trainer.config import TrainerConfig

    return TrainerConfig(embedding_dim=32, tower_layers=(64,), batch_size=batch_size, optimizer="adagrad",
                         learning_rate=0.1, user_id_embedding=True, ps_min_shard_bytes=min_shard_bytes)


def measure(role: str, steps: int, rounds: int, batch_size: int, min_shard_bytes: int) -> Dict[str, object]:
    """Rates of the retrieval fit in this process: 'chief' under the parameter-server strategy of
    TF_CONFIG, 'single' with the default strategy.

    Returns:
      {"role", "examples_per_s" (one per timed epoch), "sharded_tables" (chief only)}.
    """
    import tensorflow as tf

    from trainer import inputs, parameter_server, ps_training, train
    from trainer.towers import Vocabularies

    vocab = Vocabularies(**VOCAB)
    cfg = _config(batch_size, min_shard_bytes)
    arrays = synthetic_arrays(vocab, EXAMPLES, cfg.seed)
    probabilities = inputs.probabilities_from_counts(np.bincount(arrays["item_id_xf"], minlength=vocab.items)
                                                     .astype(np.float64))
    tf.keras.utils.set_random_seed(cfg.seed)
    result: Dict[str, object] = {"role": role}
    if role == "chief":
        strategy = parameter_server.make_strategy(parameter_server.read_tf_config(), min_shard_bytes)
        data = ps_training.dataset_creator(arrays, batch_size, cfg.seed)
    else:
        strategy = tf.distribute.get_strategy()
        data = inputs.array_dataset(arrays, batch_size, shuffle=True, seed=cfg.seed).repeat()
    with strategy.scope():
        model = train.build_retrieval(vocab, cfg, probabilities)
    if role == "chief":
        layout = parameter_server.shard_layout({"query_tower": model.query_tower,
                                                "candidate_tower": model.candidate_tower})
        result["sharded_tables"] = {key: value["rows"] for key, value in layout.items()}
    timer = epoch_timer()
    # One fit, so that the workers' datasets are made once; epoch 0 is the warm-up (tracing).
    model.fit(data, epochs=rounds + 1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    result["examples_per_s"] = [steps * batch_size / seconds for seconds in timer.seconds[1:]]
    return result


def epoch_timer():
    """A Keras callback that records each epoch's wall-clock seconds in `seconds`."""
    import tensorflow as tf

    class _EpochTimer(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: List[float] = []
            self._start = 0.0

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None) -> None:
            self.seconds.append(time.perf_counter() - self._start)

    return _EpochTimer()


def _child(args: List[str], tf_config: str = "") -> subprocess.CompletedProcess:
    env = child_env()
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = tf_config
    return subprocess.run([sys.executable, "-m", "benchmarks.distributed_ps", *args], env=env, capture_output=True,
                          text=True, timeout=1800)


def _last_json(done: subprocess.CompletedProcess) -> Dict[str, object]:
    if done.returncode != 0:
        raise RuntimeError(f"benchmark process failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(workers: int, ps: int, steps: int, rounds: int, batch_size: int, min_shard_bytes: int) -> Dict[str, object]:
    """Both measurements, each in processes of its own; the cluster processes are ended after."""
    from trainer import ps_local_cluster

    cluster = ps_local_cluster.loopback_cluster(workers, ps)
    common = ["--steps", str(steps), "--rounds", str(rounds), "--batch-size", str(batch_size),
              "--min-shard-bytes", str(min_shard_bytes)]
    with ps_local_cluster.servers(cluster):
        chief = _last_json(_child(["--role", "chief", *common], ps_local_cluster.task_config(cluster, "chief", 0)))
    single = _last_json(_child(["--role", "single", *common]))
    return {"workers": workers, "ps": ps, "steps": steps, "batch_size": batch_size, "chief": chief, "single": single}


def table(results: Dict[str, object]) -> str:
    """The median rates as a text table."""
    rows = [("1 process, default strategy", results["single"]),
            (f"parameter servers: {results['workers']} workers, {results['ps']} ps", results["chief"])]
    lines = [f"{'run':<42} {'examples/s (median)':>20} {'epochs timed':>13}"]
    for label, result in rows:
        rates = result["examples_per_s"]
        lines.append(f"{label:<42} {statistics.median(rates):>20,.0f} {len(rates):>13}")
    lines.append(f"tables split (rows per ps): {results['chief'].get('sharded_tables')}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ps", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40, help="train steps per timed epoch")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--min-shard-bytes", type=int, default=1 << 20)
    parser.add_argument("--role", choices=("chief", "single"), help=argparse.SUPPRESS)
    parser.add_argument("--result", help="JSON file for the results (default: only print them)")
    args = parser.parse_args()
    if min(args.workers, args.ps, args.steps, args.rounds, args.batch_size, args.min_shard_bytes) < 1:
        parser.error("--workers, --ps, --steps, --rounds, --batch-size and --min-shard-bytes must be >= 1")
    if args.role:
        print(json.dumps(measure(args.role, args.steps, args.rounds, args.batch_size, args.min_shard_bytes)))
        return
    results = run(args.workers, args.ps, args.steps, args.rounds, args.batch_size, args.min_shard_bytes)
    if args.result:
        with open(args.result, "w") as handle:
            json.dump(results, handle, indent=2)
    print(table(results))


if __name__ == "__main__":
    main()
