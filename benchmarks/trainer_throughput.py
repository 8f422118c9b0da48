"""Training examples/second: the project's trainer against a TFRS-tutorial-style baseline.

    python -m benchmarks.trainer_throughput --pipeline-root RUN/pipeline [--result OUT.json]

All variants fit the same two-tower retrieval model (same towers and sizes, the same features
with the users' histories, logQ correction and accidental-hit removal) on the Transform output
of a pipeline run, loaded into memory as the Trainer does (`trainer.inputs.load_arrays`):

* baseline, as in the TFRS tutorials: a plain `model.fit` on an untuned `tf.data` pipeline,
  `from_tensor_slices` over the feature dict, batches of 256, no prefetch, one train step per
  call;
* project: the Trainer's input (`trainer.inputs.array_dataset`: shuffled index batches, one
  gather per feature, prefetched) and batch size, the 'sqrt' learning-rate rule, and
  `steps_per_execution` fusing train steps into one call;
* project_per_example: the same with the previous `array_dataset` (`per_example_dataset`
  below: per-example slices, a 200,000-example shuffle buffer, batched, prefetched).

Each variant first fits one warm-up epoch (tracing); then the variants fit one epoch each in
turn for a few rounds, so that a change in the machine's load hits them alike, and the median
rate counts. A table of the rates is printed at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import statistics
import time
from typing import Dict

import numpy as np


def _latest(pattern: str) -> str:
    found = sorted(glob.glob(pattern), key=lambda p: int(p.rstrip("/").split(os.sep)[-1]))
    if not found:
        raise FileNotFoundError(f"nothing matches {pattern}: run the pipeline first")
    return found[-1]


def transform_outputs(pipeline_root: str) -> Dict[str, str]:
    """The newest Transform graph and transformed train / eval files of a pipeline run."""
    examples = _latest(os.path.join(pipeline_root, "Transform", "transformed_examples", "*"))
    return {
        "transform_graph": _latest(os.path.join(pipeline_root, "Transform", "transform_graph", "*")),
        "train_files": os.path.join(examples, "Split-train", "*"),
        "eval_files": os.path.join(examples, "Split-eval", "*"),
    }


def baseline_dataset(arrays: Dict[str, np.ndarray], batch_size: int, seed: int):
    """TFRS-tutorial style: per-example slices of the feature dict, shuffled, batched."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(arrays).shuffle(10_000, seed=seed).batch(batch_size)


def per_example_dataset(arrays: Dict[str, np.ndarray], batch_size: int, shuffle: bool = False, seed: int = 0):
    """The previous `trainer.inputs.array_dataset`: per-example slices, shuffled, batched, prefetched."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(arrays)
    if shuffle:
        dataset = dataset.shuffle(min(len(next(iter(arrays.values()))), 200_000), seed=seed,
                                  reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _epoch_seconds(model, dataset) -> float:
    start = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0)
    return time.perf_counter() - start


def measure(pipeline_root: str, rounds: int, baseline_batch: int, project_batch: int, steps_per_execution: int,
            jit_compile: bool = False) -> Dict:
    """Fits every variant and returns its median rate (examples/second) and settings."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from core import features as F
    from trainer import inputs, train
    from trainer.config import TrainerConfig

    paths = transform_outputs(pipeline_root)
    tft_output = tft.TFTransformOutput(paths["transform_graph"])
    vocab = inputs.vocabularies(tft_output)
    arrays = inputs.load_arrays(paths["train_files"], tft_output)
    inputs.add_histories(arrays, inputs.load_arrays(paths["eval_files"], tft_output), vocab.users - F.OOV_BUCKETS)
    examples = len(arrays[F.ITEM_ID_XF])
    probabilities = inputs.item_probabilities(inputs.array_dataset(arrays, 16384), vocab.items)
    project_cfg = TrainerConfig(batch_size=project_batch, lr_scaling="sqrt", steps_per_execution=steps_per_execution,
                                jit_compile=jit_compile)
    variants = {
        "baseline": (TrainerConfig(batch_size=baseline_batch), baseline_dataset(arrays, baseline_batch, 1)),
        "project": (project_cfg, inputs.array_dataset(arrays, project_batch, shuffle=True, seed=1)),
        "project_per_example": (project_cfg, per_example_dataset(arrays, project_batch, shuffle=True, seed=1)),
    }
    results: Dict = {"examples_per_epoch": examples, "rounds": rounds, "threads": os.cpu_count()}
    models = {}
    for name, (cfg, dataset) in variants.items():
        tf.keras.utils.set_random_seed(cfg.seed)
        models[name] = train.build_retrieval(vocab, cfg, probabilities)
        warmup = _epoch_seconds(models[name], dataset)
        results[name] = {"config": dataclasses.asdict(cfg), "warmup_epoch_s": warmup, "epoch_s": [],
                         "learning_rate": float(models[name].optimizer.learning_rate.numpy())}
        print(f"[throughput] {name}: batch {cfg.batch_size}, steps/execution {cfg.steps_per_execution}, "
              f"warm-up epoch {warmup:.1f}s", flush=True)
    for round_ in range(rounds):
        for name, (_, dataset) in variants.items():
            results[name]["epoch_s"].append(_epoch_seconds(models[name], dataset))
        print(f"[throughput] round {round_ + 1}/{rounds}: " + ", ".join(
            f"{name} {examples / results[name]['epoch_s'][-1]:,.0f}/s" for name in variants), flush=True)
    for name in variants:
        results[name]["examples_per_s"] = examples / statistics.median(results[name]["epoch_s"])
    for name in ("project", "project_per_example"):
        results[f"ratio_{name}"] = results[name]["examples_per_s"] / results["baseline"]["examples_per_s"]
    return results


VARIANTS = ("baseline", "project", "project_per_example")


def table(results: Dict) -> str:
    """The rates of every variant side by side, as printed at the end of a run."""
    lines = [
        f"Trainer throughput: {results['examples_per_epoch']:,} training examples per epoch, median of "
        f"{results['rounds']} epochs per variant taken in turn, {results['threads']} CPU threads",
        f"{'variant':<21} {'batch':>6} {'steps/exec':>10} {'lr':>7} {'warm-up s':>9} {'examples/s':>11} "
        f"{'vs baseline':>11}",
    ]
    base = results["baseline"]["examples_per_s"]
    for name in VARIANTS:
        if name not in results:
            continue
        v = results[name]
        lines.append(
            f"{name:<21} {v['config']['batch_size']:>6} {v['config']['steps_per_execution']:>10} "
            f"{v['learning_rate']:>7.3f} {v['warmup_epoch_s']:>9.1f} {v['examples_per_s']:>11,.0f} "
            f"{v['examples_per_s'] / base:>10.2f}x"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline-root", required=True)
    parser.add_argument("--result", help="JSON file for the results (default: only print them)")
    parser.add_argument("--rounds", type=int, default=3, help="measured epochs per variant, in turn")
    parser.add_argument("--baseline-batch", type=int, default=256)
    parser.add_argument("--project-batch", type=int, default=512, help="default: TrainerConfig's")
    parser.add_argument("--steps-per-execution", type=int, default=16)
    parser.add_argument("--jit-compile", action="store_true", help="XLA-compile the project's train step")
    args = parser.parse_args()
    from core.process import set_up_process

    set_up_process()
    results = measure(args.pipeline_root, args.rounds, args.baseline_batch, args.project_batch,
                      args.steps_per_execution, args.jit_compile)
    print(table(results), flush=True)
    if args.result:
        with open(args.result, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
