"""The Trainer's peak memory and wall time with its input held in memory and streamed.

    python -m benchmarks.trainer_memory --pipeline-roots ROOT1,ROOT2 [--modes memory,stream]

For every pipeline root (the output of a run, e.g. `benchmarks.scale`'s) and input mode, a child
process calls the Trainer's own `trainer.entry.run_fn` on the root's newest Transform output with
the scale benchmark's training settings (batch 512, one retrieval and one ranking epoch, 'sqrt'
learning-rate rule, 16 steps per execution) and `trainer.input_mode` set, while this process
samples the memory of the child's process tree. Printed: a table of peak RSS, wall time and
training examples per second per root and mode.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import tempfile
import time
from typing import Dict, List

GB = 1024 ** 3


def trainer_config(mode: str):
    from trainer.config import TrainerConfig
    return TrainerConfig(batch_size=512, epochs=1, ranking_epochs=1, lr_scaling="sqrt", steps_per_execution=16,
                         input_mode=mode)


def child(pipeline_root: str, mode: str, out_dir: str, result_path: str) -> None:
    """Runs `run_fn` once and writes its wall time and example count to `result_path`."""
    from tfx import v1 as tfx

    from benchmarks.trainer_throughput import transform_outputs
    from trainer import entry, streaming

    paths = transform_outputs(pipeline_root)
    cfg = trainer_config(mode)
    fn_args = tfx.components.FnArgs(
        train_files=[paths["train_files"]],
        eval_files=[paths["eval_files"]],
        transform_output=paths["transform_graph"],
        serving_model_dir=str(pathlib.Path(out_dir) / "model"),
        model_run_dir=str(pathlib.Path(out_dir) / "logs"),
        custom_config={entry.HPARAMS_KEY: json.loads(json.dumps(dataclasses.asdict(cfg)))},
    )
    start = time.time()
    entry.run_fn(fn_args)
    wall = time.time() - start
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump({"wall_s": wall, "examples": streaming.count_records(paths["train_files"])}, handle)


def measure(roots: List[str], modes: List[str], work: pathlib.Path) -> List[Dict]:
    from benchmarks.scale import run_child

    rows = []
    for root in roots:
        for mode in modes:
            print(f"[trainer memory] {root}: input {mode} ...", flush=True)
            result_path = work / f"{len(rows)}.json"
            ran = run_child(["benchmarks.trainer_memory", "--child", "--pipeline-roots", root, "--modes", mode,
                             "--work", str(work / str(len(rows))), "--result", str(result_path)],
                            work / f"{len(rows)}.log", timeout_s=3 * 3600)
            if ran["returncode"] != 0:
                raise SystemExit(f"the {mode} run on {root} failed (exit {ran['returncode']}); "
                                 f"see {work / f'{len(rows)}.log'}")
            result = json.loads(result_path.read_text())
            rows.append({"root": root, "mode": mode, "peak_gb": ran["sampler"].peak() / GB, **result})
            print(f"[trainer memory] {result['examples']:,} examples, {mode}: {result['wall_s']:.0f}s, "
                  f"peak {rows[-1]['peak_gb']:.2f} GB", flush=True)
    return rows


def table(rows: List[Dict]) -> str:
    lines = [f"{'training examples':>17} {'input':>7} {'wall s':>8} {'peak GB':>8} {'examples/s':>11}"]
    for row in rows:
        rate = 2 * row["examples"] / row["wall_s"]  # one retrieval and one ranking epoch
        lines.append(f"{row['examples']:>17,} {row['mode']:>7} {row['wall_s']:>8.0f} {row['peak_gb']:>8.2f} "
                     f"{rate:>11,.0f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline-roots", required=True, help="comma-separated pipeline roots")
    parser.add_argument("--modes", default="memory,stream")
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--result", help="JSON file for the results")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.pipeline_roots, args.modes, args.work, args.result)
        return
    work = pathlib.Path(args.work or tempfile.mkdtemp(prefix="trainer-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = measure(args.pipeline_roots.split(","), args.modes.split(","), work)
    print("\nThe Trainer (run_fn: input, one retrieval and one ranking epoch, export), "
          "peak RSS of its process\n" + table(rows), flush=True)
    if args.result:
        pathlib.Path(args.result).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    sys.exit(main())
