"""Scale benchmark: the pipeline at growing data sizes, and the trainer's throughput.

    python -m benchmarks.scale [--sizes 100000,1000000,10000000] [--budget-min 40]
                               [--work /tmp/recsys-scale] [--report-dir benchmarks/results]

For each size (ascending) a child process generates the synthetic data and runs the whole
pipeline (`benchmarks.scale_run`) while this process samples the memory of the child's process
tree. The runs share a time budget: a size predicted (from the runs before it) to overrun what
is left is not started, and a run still going when the budget is spent is stopped and reported
with the components it completed; a run that fails (killed for memory, say) is reported with
the components it completed and its exit status, and the next sizes still run. Printed: wall
time and peak memory per component, training examples/second in the pipeline's Trainer, the
memory growth between sizes, and the memory curve (also saved as a PNG). Then
`benchmarks.trainer_throughput` compares the project's trainer with a TFRS-tutorial-style
baseline on the Transform output of the smallest size (target: >= 3x).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from benchmarks.rss import TreeSampler
from benchmarks.scale_run import component_windows

GB = 1024 ** 3
TARGET_RATIO = 3.0


def run_child(args: List[str], log_path: pathlib.Path, timeout_s: float) -> Dict:
    """Runs `python -m <args>` with its output in `log_path`, sampling its memory tree."""
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log_path, "w", encoding="utf-8") as log:
        child = subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
                                 env=env, start_new_session=True)
        with TreeSampler(child.pid) as sampler:
            try:
                code = child.wait(timeout=max(1.0, timeout_s))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, 9)
                child.wait()
                code = None
    return {"returncode": code, "sampler": sampler}


def summarise_size(result: Dict, sampler: TreeSampler, status: str) -> Dict:
    """Per-component wall time and peak memory, total wall, peak, trainer examples/second.

    `status` says how the run ended: "complete", or why it stopped early."""
    windows = sorted(result["windows"].items(), key=lambda item: item[1][0])
    components = {
        name: {"wall_s": end - start, "peak_gb": sampler.peak(start, end) / GB} for name, (start, end) in windows
    }
    trainer = components.get("Trainer", {}).get("wall_s")
    epochs = result["trainer"]["epochs"] + result["trainer"]["ranking_epochs"]
    end = result.get("end", sampler.samples[-1][0])
    return {
        "interactions": result["interactions"],
        "users": result["users"],
        "items": result["items"],
        "complete": result["complete"],
        "status": status,
        "wall_s": end - windows[0][1][0],
        "peak_gb": sampler.peak() / GB,
        "trainer_examples_per_s": result["train_rows"] * epochs / trainer if trainer else None,
        "components": components,
        "timeline": [(t - sampler.samples[0][0], rss / GB) for t, rss in sampler.samples[::4]],
        "pipeline_root": result["pipeline_root"],
        "trainer": result["trainer"],
        "beam_args": result["beam_args"],
        "compress": result.get("compress", False),
        "load_average": os.getloadavg(),
    }


def end_status(returncode: Optional[int]) -> str:
    """How a child run ended, in words: 0 complete, None stopped at the budget, else failed."""
    if returncode == 0:
        return "complete"
    if returncode is None:
        return "stopped at the time budget"
    killed = " (SIGKILL: out of memory?)" if returncode == -9 else ""
    return f"failed, exit {returncode}{killed}"


def component_table(sizes: List[Dict]) -> str:
    """Rows: components; columns: wall seconds and peak GB at each size ('-': not run, or too
    short for a memory sample)."""
    names = list(sizes[0]["components"])
    header = f"{'component':<30}" + "".join(f"{s['interactions']:,} interactions".rjust(24) for s in sizes)
    lines = [header, f"{'':<30}" + "".join(f"{'wall s':>12}{'peak GB':>12}" for _ in sizes)]
    for name in names:
        cells = ""
        for s in sizes:
            c = s["components"].get(name)
            if c is None:
                cells += f"{'-':>12}{'-':>12}"
            else:
                peak = f"{c['peak_gb']:>12.2f}" if c["peak_gb"] > 0 else f"{'-':>12}"
                cells += f"{c['wall_s']:>12.1f}{peak}"
        lines.append(f"{name:<30}{cells}")
    return "\n".join(lines)


def size_table(sizes: List[Dict], skipped: List[str]) -> str:
    """One row per size: users, items, total wall, peak memory, trainer examples/second."""
    lines = [f"{'interactions':>13} {'users':>8} {'items':>7} {'wall s':>9} {'peak GB':>8} {'train ex/s':>11}"
             f" {'load avg':>9}  status"]
    for s in sizes:
        rate = f"{s['trainer_examples_per_s']:>11,.0f}" if s["trainer_examples_per_s"] else f"{'-':>11}"
        status = s["status"] + ("" if s["complete"] else " (completed components only)")
        lines.append(f"{s['interactions']:>13,} {s['users']:>8,} {s['items']:>7,} {s['wall_s']:>9.1f} "
                     f"{s['peak_gb']:>8.2f} {rate} {s['load_average'][1]:>9.1f}  {status}")
    lines += [f"{'(skipped)':>13} {reason}" for reason in skipped]
    return "\n".join(lines)


def memory_growth(sizes: List[Dict]) -> List[Tuple[float, int, int]]:
    """Log-log slope of peak memory against interactions (1: linear growth, 0: flat) between each
    pair of consecutive complete runs, with their sizes. The last pair is the one to judge by:
    at small sizes the fixed memory of the libraries hides the growth."""
    complete = [s for s in sizes if s["complete"]]
    return [
        (math.log(b["peak_gb"] / a["peak_gb"]) / math.log(b["interactions"] / a["interactions"]),
         a["interactions"], b["interactions"])
        for a, b in zip(complete, complete[1:])
    ]


def predict_wall(sizes: List[Dict], n: int) -> Optional[float]:
    """Predicted wall seconds at `n` interactions: per component, fixed + linear cost fitted to
    the two largest complete runs; None with fewer than two."""
    complete = [s for s in sizes if s["complete"]]
    if len(complete) < 2:
        return None
    small, large = complete[-2], complete[-1]
    total = 0.0
    for name, c in large["components"].items():
        before = small["components"].get(name, c)["wall_s"]
        per_row = max(0.0, (c["wall_s"] - before) / (large["interactions"] - small["interactions"]))
        total += c["wall_s"] + per_row * (n - large["interactions"])
    return total


def plot(sizes: List[Dict], path: pathlib.Path) -> None:
    """Peak memory per component against data size, and the memory timeline of each run."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curve, timeline) = plt.subplots(1, 2, figsize=(13, 5))
    complete = [s for s in sizes if s["complete"]]
    xs = [s["interactions"] for s in complete]
    curve.plot(xs, [s["peak_gb"] for s in complete], "o-k", linewidth=2.5, label="whole run")
    for name in complete[0]["components"] if complete else []:
        # 0: the component was shorter than the sampling interval, so no sample fell inside.
        ys = [s["components"].get(name, {}).get("peak_gb") or float("nan") for s in complete]
        if not np.all(np.isnan(ys)) and np.nanmax(ys) > 0.3:
            curve.plot(xs, ys, "o--", label=name)
    for s in sizes:
        if not s["complete"]:
            curve.plot([s["interactions"]], [s["peak_gb"]], "x", color="red", markersize=10,
                       label=f"{s['interactions']:,}: {s['status']} (peak so far)")
    curve.set(xscale="log", xlabel="interactions", ylabel="peak RSS (GB)", title="Peak memory vs data size")
    curve.grid(True, which="both", alpha=0.3)
    curve.legend(fontsize=8)
    for s in sizes:
        t, rss = zip(*s["timeline"])
        timeline.plot(t, rss, label=f"{s['interactions']:,} interactions" + ("" if s["complete"] else f" ({s['status']})"))
    timeline.set(xlabel="seconds since start", ylabel="RSS of the process tree (GB)", title="Memory over a run")
    timeline.grid(True, alpha=0.3)
    timeline.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--budget-min", type=float, default=40.0, help="total time budget (minutes)")
    parser.add_argument("--work", default="/tmp/recsys-scale", help="scratch folder for the runs")
    parser.add_argument("--report-dir", default="benchmarks/results")
    parser.add_argument("--beam-workers", type=int, default=1)
    parser.add_argument("--throughput-rounds", type=int, default=5)
    parser.add_argument("--compress", action="store_true", help="include CompressModel in the runs (off by default)")
    parser.add_argument("--from-json", help="print the report of a saved scale.json instead of running")
    args = parser.parse_args()
    if args.from_json:
        print_report(json.loads(pathlib.Path(args.from_json).read_text()), pathlib.Path(args.report_dir))
        return
    work, report = pathlib.Path(args.work), pathlib.Path(args.report_dir)
    work.mkdir(parents=True, exist_ok=True)
    report.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + args.budget_min * 60
    throughput_reserve = 5 * 60  # seconds kept for the trainer comparison
    sizes: List[Dict] = []
    skipped: List[str] = []
    for n in sorted(int(s) for s in args.sizes.split(",")):
        left = deadline - time.time() - throughput_reserve
        predicted = predict_wall(sizes, n)
        if left < 180 or (predicted is not None and predicted > left):
            guess = "" if predicted is None else f"predicted {predicted / 60:.0f} min (fixed + linear cost per component), "
            skipped.append(f"{n:,}: not started, {guess}{max(0.0, left) / 60:.0f} min of the budget left")
            print(f"[scale] {skipped[-1]}", flush=True)
            continue
        print(f"[scale] {n:,} interactions, up to {left / 60:.0f} min (log: {work / f'{n}.log'}) ...", flush=True)
        result_path = work / f"{n}.json"
        result_path.unlink(missing_ok=True)
        child = run_child(["benchmarks.scale_run", "--interactions", str(n), "--out", str(work / str(n)),
                           "--result", str(result_path), "--beam-workers", str(args.beam_workers)]
                          + (["--compress"] if args.compress else []),
                          work / f"{n}.log", left)
        status = end_status(child["returncode"])
        if not result_path.exists():  # ended while generating the data
            skipped.append(f"{n:,}: {status} while generating the data "
                           f"(peak so far {child['sampler'].peak() / GB:.2f} GB; log {work / f'{n}.log'})")
            print(f"[scale] {skipped[-1]}", flush=True)
            continue
        result = json.loads(result_path.read_text())
        if child["returncode"] != 0:  # stopped or failed: keep what completed
            result["windows"].update(component_windows(result["metadata_path"]))
        sizes.append(summarise_size(result, child["sampler"], status))
        print(f"[scale] {n:,} interactions: {sizes[-1]['wall_s']:.0f}s, peak {sizes[-1]['peak_gb']:.2f} GB, {status}"
              + ("" if child["returncode"] in (0, None) else f" (log: {work / f'{n}.log'})"), flush=True)
    if not any(s["complete"] for s in sizes):
        raise SystemExit("no size completed")
    print("[scale] trainer throughput: project vs TFRS-tutorial baseline ...", flush=True)
    throughput_path = work / "throughput.json"
    child = run_child(["benchmarks.trainer_throughput", "--pipeline-root", sizes[0]["pipeline_root"],
                       "--result", str(throughput_path), "--rounds", str(args.throughput_rounds)],
                      work / "throughput.log", max(60.0, deadline - time.time()))
    if child["returncode"] != 0:
        raise SystemExit(f"throughput run failed; see {work / 'throughput.log'}")
    throughput = json.loads(throughput_path.read_text())
    results = {"sizes": sizes, "skipped": skipped, "throughput": throughput}
    (report / "scale.json").write_text(json.dumps(results, indent=2))
    print_report(results, report)


def print_report(results: Dict, report: pathlib.Path) -> None:
    """Draws the memory curve into `report` and prints the tables and verdicts of `results`."""
    sizes, skipped, throughput = results["sizes"], results["skipped"], results["throughput"]
    plot(sizes, report / "scale_memory.png")
    trainer = sizes[0]["trainer"]
    print(f"\nHardware: {os.cpu_count()} CPU threads, no GPU. Beam: {' '.join(sizes[0]['beam_args'])}. "
          f"Trainer: batch {trainer['batch_size']}, {trainer['epochs']} epoch(s) per model, "
          f"lr rule {trainer['lr_scaling']!r}, {trainer['steps_per_execution']} steps/execution, "
          f"input {trainer.get('input_mode', 'memory')!r}. "
          f"CompressModel: {'on' if sizes[0].get('compress') else 'off (see the compression benchmark)'}.")
    print("\nPer size\n" + size_table(sizes, skipped))
    print("\nPer component (wall seconds, peak RSS of the process tree in the component's window)\n"
          + component_table(sizes))
    segments = memory_growth(sizes)
    if segments:
        print("\nPeak memory growth (log-log slope of peak RSS against interactions; 1: linear, 0: flat)")
        for slope, small, large in segments:
            print(f"  {small:>12,} -> {large:>12,}: {slope:.2f}")
        slope, small, large = segments[-1]
        verdict = "bounded (sublinear)" if slope < 0.5 else "grows with the data"
        print(f"  judged on the largest sizes ({small:,} -> {large:,}): {verdict}")
    print(f"\nTrainer throughput on the {sizes[0]['interactions']:,}-interaction Transform output "
          f"({throughput['examples_per_epoch']:,} training examples per epoch; median of "
          f"{throughput['rounds']} epochs per variant, taken in turn)")
    from benchmarks.trainer_throughput import table as throughput_table

    print("\n".join(throughput_table(throughput).splitlines()[1:]))
    ratio = throughput["ratio_project"]
    print(f"project: {ratio:.1f}x the baseline (target >= {TARGET_RATIO:.0f}x): "
          f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'}")
    print(f"\nMemory curve: {report / 'scale_memory.png'}; raw results: {report / 'scale.json'}")


if __name__ == "__main__":
    main()
