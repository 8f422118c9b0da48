"""Recommendation quality: the pipeline's models against popularity and EASE, side by side.

Runs the whole pipeline (LocalDagRunner) on MovieLens latest-small with the temporal and the
random 80/20 split, and on the synthetic default data, then prints one table of the evaluation
that the pipeline's EvaluateModel component computed (the served model, each of its sources
alone, and the baselines), one table of Recall@20 by user activity (``cold``: users without a
train interaction, who get the unknown users' list), and checks the targets:

* every run: two-stage Recall@20 >= EASE; rating RMSE <= the bias model's;
* ml-latest-small, random split: NDCG@10 >= EASE; Recall@20 >= 1.05x the best single source
  (popularity, EASE, the two-tower alone, the item-item source alone);
* ml-latest-small, temporal split: Recall@20 >= 1.05x popularity; top-100 hit rate (TFRS
  protocol) >= 1.3x popularity.

Usage:
    python -m benchmarks.quality [--output DIR] [--datasets ml-time,ml-random,synthetic]
        [--config FILE] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from typing import Dict, List, Optional

ML_LATEST_SMALL = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ml-latest-small"
MODELS = ("popularity", "ease", "retrieval_only", "item_item_only", "two_stage", "bias_model")
METRICS = ("recall_at_10", "recall_at_20", "recall_at_100", "ndcg_at_10", "top100_interaction_hit_rate", "rmse")
DATASETS = {
    "ml-time": ("ml-latest-small", "time"),
    "ml-random": ("ml-latest-small", "random"),
    "synthetic": (None, "time"),
}


def run_one(name: str, output: pathlib.Path, config_file: Optional[str], reuse: bool = False) -> Dict[str, Dict]:
    """Runs the pipeline for one dataset/split; returns the evaluation ({"results", "slices"}).

    With `reuse`, an evaluation already in `output / name` is read instead of running again."""
    from cli.summary import latest_evaluation
    from pipeline import local_run
    from pipeline.config import load_config

    source, split = DATASETS[name]
    if reuse:
        earlier = latest_evaluation(str(output / name / "pipeline"))
        if earlier is not None:
            print(f"[{name}] reusing {earlier['path']}; gate: {earlier['blessing']['reason']}", flush=True)
            return {"results": earlier["results"], "slices": earlier.get("slices", {})}
    data = None
    if source == "ml-latest-small":
        if not (ML_LATEST_SMALL / "ratings.csv").exists():
            print(f"[{name}] skipped: {ML_LATEST_SMALL} not found")
            return {"results": {}, "slices": {}}
        data = str(ML_LATEST_SMALL)
    cfg = load_config(config_file, {"split": split}).with_paths(str(output / name))
    print(f"[{name}] running the pipeline ({split} split) into {output / name}", flush=True)
    start = time.time()
    local_run.prepare_data(cfg, data)
    local_run.run_pipeline(cfg)
    evaluation = latest_evaluation(cfg.pipeline_root)
    print(f"[{name}] done in {time.time() - start:.0f}s; gate: {evaluation['blessing']['reason']}", flush=True)
    return {"results": evaluation["results"], "slices": evaluation.get("slices", {})}


def table(all_results: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """One row per (dataset, model), one column per metric."""
    widths = [max(9, len(m)) + 2 for m in METRICS]
    lines = [f"| {'dataset':<10} | {'model':<15} |" + "|".join(f"{m:>{w}}" for m, w in zip(METRICS, widths)) + "|"]
    lines.append("|" + "-" * 12 + "|" + "-" * 17 + "|" + "|".join("-" * w for w in widths) + "|")
    for dataset, results in all_results.items():
        for model in MODELS:
            values = results.get(model, {})
            cells = "|".join(
                f"{values[m]:>{w}.4f}" if values.get(m) is not None else f"{'':>{w}}"
                for m, w in zip(METRICS, widths)
            )
            lines.append(f"| {dataset:<10} | {model:<15} |{cells}|")
    return "\n".join(lines)


SINGLE_SOURCES = ("popularity", "ease", "retrieval_only", "item_item_only")
USER_SLICES = ("cold", "light", "medium", "heavy")
SLICE_MODELS = ("popularity", "ease", "item_item_only", "two_stage")


def slice_table(all_slices: Dict[str, Dict[str, Dict[str, Dict[str, float]]]]) -> str:
    """Recall@20 per (dataset, user-activity slice) and model, with the slice's eval users."""
    lines = [f"| {'dataset':<10} | {'users':<7} | {'n_users':>7} |" + "|".join(f"{m:>15}" for m in SLICE_MODELS) + "|",
             "|" + "-" * 12 + "|" + "-" * 9 + "|" + "-" * 9 + "|" + "|".join("-" * 15 for _ in SLICE_MODELS) + "|"]
    for dataset, slices in all_slices.items():
        for name in USER_SLICES:
            models = slices.get(name, {})
            if not models:
                continue
            users = next(iter(models.values())).get("n_users", 0)
            values = [models.get(m, {}).get("recall_at_20") for m in SLICE_MODELS]
            cells = "|".join(f"{float('nan') if v is None else v:>15.4f}" for v in values)
            lines.append(f"| {dataset:<10} | {name:<7} | {users:>7.0f} |{cells}|")
    return "\n".join(lines)


def verdicts(all_results: Dict[str, Dict[str, Dict[str, float]]]) -> List[str]:
    """The issue's quality targets per run, met or missed by how much."""
    lines = []
    for dataset, results in all_results.items():
        if not results:
            continue
        model, ease, pop, bias = results["two_stage"], results["ease"], results["popularity"], results["bias_model"]
        checks = [("recall_at_20 >= EASE", model["recall_at_20"], ease["recall_at_20"])]
        if dataset == "ml-random":
            best = max((results[m] for m in SINGLE_SOURCES if m in results), key=lambda r: r["recall_at_20"])
            checks += [("ndcg_at_10 >= EASE", model["ndcg_at_10"], ease["ndcg_at_10"]),
                       ("recall_at_20 >= 1.05x best single source", model["recall_at_20"], 1.05 * best["recall_at_20"])]
        if dataset == "ml-time":
            checks += [("recall_at_20 >= 1.05x popularity", model["recall_at_20"], 1.05 * pop["recall_at_20"]),
                       ("top100 hit rate >= 1.3x popularity", model["top100_interaction_hit_rate"],
                        1.3 * pop["top100_interaction_hit_rate"])]
        for label, value, target in checks:
            ratio = value / target if target else float("nan")
            lines.append(f"{dataset:<10} {label:<42} {value:.4f} vs {target:.4f} ({ratio:.2f}x)  "
                         f"{'MET' if value >= target else 'MISSED'}")
        met = model["rmse"] <= bias["rmse"]  # lower is better
        lines.append(f"{dataset:<10} {'rmse <= bias model':<42} {model['rmse']:.4f} vs {bias['rmse']:.4f} "
                     f"({model['rmse'] / bias['rmse']:.2f}x)  {'MET' if met else 'MISSED'}")
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    from core.process import set_up_process

    set_up_process()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="output/benchmarks/quality")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--config", help="JSON pipeline config applied to every run")
    parser.add_argument("--reuse", action="store_true",
                        help="read the evaluation of an earlier run in --output instead of running again")
    args = parser.parse_args(argv)
    output = pathlib.Path(args.output).resolve()
    names = [n for n in args.datasets.split(",") if n]
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; choose from {list(DATASETS)}")
    runs = {name: run_one(name, output, args.config, args.reuse) for name in names}
    all_results = {name: run["results"] for name, run in runs.items()}
    print()
    print(table(all_results))
    print()
    print("Recall@20 by user activity in the train split:")
    print(slice_table({name: run["slices"] for name, run in runs.items()}))
    print()
    print("\n".join(verdicts(all_results)))
    output.mkdir(parents=True, exist_ok=True)
    (output / "quality.json").write_text(json.dumps(runs, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
