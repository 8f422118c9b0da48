"""The default pipeline's cost against an earlier revision's, side by side on one machine.

Runs `recsys run` (the embedded synthetic default data, default config) from this checkout and
from a git revision checked out into a temporary worktree, alternating A B A B ... so that both
see the same machine state, each into a fresh output folder, with the same Python environment
(`sys.executable`; the revision's packages are imported first through PYTHONPATH). Prints each
round's wall time, the pipeline's own stage times where it prints them, and the ratio of the
medians.

Usage:
    python -m benchmarks.pipeline_cost --baseline-rev REV [--rounds 2] [--data PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

STAGE_LINE = re.compile(r"\[pipeline\s+\d+/\d+\] (\S+) done \(([\d.]+)s\)")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_pipeline(source_root: str, output: str, data: Optional[str]) -> Dict[str, object]:
    """One `recsys run` with the packages of `source_root`; wall seconds and stage seconds."""
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=source_root)
    # The console script's module: `cli.main` today, `pipeline.cli` in earlier revisions.
    module = "cli.main" if os.path.exists(os.path.join(source_root, "cli", "main.py")) else "pipeline.cli"
    command = [sys.executable, "-m", module, "run", "--output", output]
    if data:
        command += ["--data", data]
    start = time.monotonic()
    done = subprocess.run(command, cwd=source_root, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise RuntimeError(f"recsys run from {source_root} failed ({done.returncode}): {done.stderr[-2000:]}")
    stages = {name: float(seconds) for name, seconds in STAGE_LINE.findall(done.stdout + done.stderr)}
    return {"wall": wall, "stages": stages}


def table(rows: List[List[str]], header: List[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).rjust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", required=True, help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--data", default=None, help="recsys run --data (default: the embedded data)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    work = tempfile.mkdtemp(prefix="pipeline_cost_")
    baseline_root = os.path.join(work, "baseline")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", baseline_root, args.baseline_rev],
                   check=True, capture_output=True)
    revision = subprocess.run(["git", "-C", baseline_root, "rev-parse", "--short", "HEAD"],
                              check=True, capture_output=True, text=True).stdout.strip()
    results: Dict[str, List[Dict[str, object]]] = {"baseline": [], "current": []}
    try:
        for round_ in range(args.rounds):
            for name, root in (("baseline", baseline_root), ("current", ROOT)):
                output = os.path.join(work, f"{name}_{round_}")
                print(f"round {round_ + 1}/{args.rounds}: {name} ...", flush=True)
                result = run_pipeline(root, output, args.data)
                print(f"round {round_ + 1}/{args.rounds}: {name} {result['wall']:.0f}s", flush=True)
                results[name].append(result)
                shutil.rmtree(output, ignore_errors=True)
    finally:
        subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", baseline_root], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    medians = {name: statistics.median(r["wall"] for r in runs) for name, runs in results.items()}
    rows = [[f"baseline ({revision})"] + [f"{r['wall']:.0f}" for r in results["baseline"]] + [f"{medians['baseline']:.0f}"],
            ["current"] + [f"{r['wall']:.0f}" for r in results["current"]] + [f"{medians['current']:.0f}"]]
    print(table(rows, ["tree"] + [f"round {i + 1} (s)" for i in range(args.rounds)] + ["median (s)"]))
    print(f"\ncurrent / baseline (medians): {medians['current'] / medians['baseline']:.2f}x")
    stages = sorted({s for r in results["current"] + results["baseline"] for s in r["stages"]},
                    key=lambda s: -statistics.median(r["stages"].get(s, 0.0) for r in results["current"]))
    stage_rows = [[s] + [f"{statistics.median(r['stages'].get(s, 0.0) for r in results[n]):.1f}"
                         for n in ("baseline", "current")] for s in stages]
    print("\nStage times, medians (s; 0.0: the stage does not exist in that tree)")
    print(table(stage_rows, ["stage", f"baseline ({revision})", "current"]))
    total = sum(statistics.median(r["stages"].get(s, 0.0) for r in results["current"]) for s in stages)
    compress = statistics.median(r["stages"].get("CompressModel", 0.0) for r in results["current"])
    if total:
        print(f"\nCompressModel share of the current run: {compress / total:.1%} of the stage times' sum, "
              f"{compress / medians['current']:.1%} of the median wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
