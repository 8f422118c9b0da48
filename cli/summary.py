"""What `recsys run` prints at the end: the pushed version, the evaluation, sample lists."""

from __future__ import annotations

import glob
import json
import os
from typing import Dict, List, Optional

import numpy as np

from components.tuner import REPORT_SUBDIR
from compression.report import REPORT_PNG
from pipeline.config import PipelineConfig
from trainer.tuner_config import HYPERPARAMETERS_FILE_NAME
from trainer.tuning_report import CHART_FILE, TABLE_FILE

EVALUATION_GLOB = os.path.join("EvaluateModel", "evaluation", "*", "metrics.json")
COMPRESSION_GLOB = os.path.join("CompressModel", "report", "*", "report.md")
TUNING_GLOB = os.path.join("Tuner", "tuner_results", "*", REPORT_SUBDIR, TABLE_FILE)
BEST_HYPERPARAMETERS = os.path.join("Tuner", "best_hyperparameters", "{execution}", HYPERPARAMETERS_FILE_NAME)
SUMMARY_METRICS = ("recall_at_10", "recall_at_20", "ndcg_at_10", "recall_at_100", "top100_interaction_hit_rate", "coverage_at_100", "rmse")


def latest_evaluation(pipeline_root: str) -> Optional[Dict[str, object]]:
    """metrics.json of the newest EvaluateModel execution, or None."""
    paths = glob.glob(os.path.join(pipeline_root, EVALUATION_GLOB))
    if not paths:
        return None
    newest = max(paths, key=lambda p: int(p.split(os.sep)[-2]))
    with open(newest, encoding="utf-8") as handle:
        metrics = json.load(handle)
    metrics["path"] = os.path.dirname(newest)
    return metrics


def latest_blessing(pipeline_root: str) -> Optional[Dict[str, object]]:
    """The gate's verdict ({"blessed", "reason"}) of the newest EvaluateModel execution, or None."""
    evaluation = latest_evaluation(pipeline_root)
    return evaluation["blessing"] if evaluation else None


def latest_compression_report(pipeline_root: str) -> Optional[str]:
    """Path of the newest CompressModel report.md, or None (no compression ran)."""
    paths = glob.glob(os.path.join(pipeline_root, COMPRESSION_GLOB))
    return max(paths, key=lambda p: int(p.split(os.sep)[-2])) if paths else None


def tuning_lines(pipeline_root: str) -> List[str]:
    """The newest Tuner execution's trial table, where its plot and best hyperparameters lie, and
    how to reuse them; [] when no Tuner ran."""
    paths = glob.glob(os.path.join(pipeline_root, TUNING_GLOB))
    if not paths:
        return []
    newest = max(paths, key=lambda p: int(p.split(os.sep)[-3]))
    report = os.path.dirname(newest)
    best = os.path.join(pipeline_root, BEST_HYPERPARAMETERS.format(execution=newest.split(os.sep)[-3]))
    with open(newest, encoding="utf-8") as handle:
        table = handle.read().strip()
    return [f"Tuner trials ({report}):", table,
            f"(plot: {os.path.join(report, CHART_FILE)}; TensorBoard: {report})",
            f"Best hyperparameters: {best}",
            f'Reuse them without tuning: config "tuner": {{"hyperparameters_file": "{best}"}}', ""]


def evaluation_table(results: Dict[str, Dict[str, float]]) -> str:
    """Models as rows, the headline metrics as columns."""
    widths = [max(8, len(m)) + 2 for m in SUMMARY_METRICS]
    header = f"{'model':<16}" + "".join(f"{m:>{w}}" for m, w in zip(SUMMARY_METRICS, widths))
    lines = [header]
    for model, values in results.items():
        cells = "".join(
            f"{values[m]:>{w}.4f}" if values.get(m) is not None else f"{'-':>{w}}"
            for m, w in zip(SUMMARY_METRICS, widths)
        )
        lines.append(f"{model:<16}{cells}")
    return "\n".join(lines)


def _sample_users(data_root: str, n: int) -> List[str]:
    from evaluation.model_eval import read_interactions

    columns = read_interactions([os.path.join(data_root, "interactions", "span-*", "train", "*.gz")])
    users, counts = np.unique(columns["user_id"], return_counts=True)
    return [str(u) for u in users[counts.argsort()[::-1][:n]]]


def run_summary(cfg: PipelineConfig, wall_s: float, data_report: Dict[str, object], sample_users: int) -> str:
    """The closing summary of a pipeline run."""
    from cli import recommend
    from core import version_dirs

    lines = ["", f"Pipeline {cfg.pipeline_name!r} finished in {wall_s:.0f}s."]
    report = latest_compression_report(cfg.pipeline_root) if cfg.compress else None
    if report:
        with open(report, encoding="utf-8") as handle:
            lines += ["", handle.read().strip(), f"(plot: {os.path.join(os.path.dirname(report), REPORT_PNG)})", ""]
    if cfg.tuner.enabled:
        lines += tuning_lines(cfg.pipeline_root)
    evaluation = latest_evaluation(cfg.pipeline_root)
    if evaluation:
        blessing = evaluation["blessing"]
        lines += [
            f"Evaluation ({evaluation['path']}):",
            evaluation_table(evaluation["results"]),
            f"Gate: {'BLESSED' if blessing['blessed'] else 'NOT BLESSED'} - {blessing['reason']}",
            "These figures are the evaluated model's: its tables (histories, seen items, neighbours, "
            "popularity) hold the train split only. The pushed model has the same weights and ranker, "
            "with tables from every interaction (train and eval splits).",
        ]
    versions = version_dirs.versions(cfg.serving_model_dir)
    if not versions:
        lines.append(f"No model has been pushed to {cfg.serving_model_dir}.")
        return "\n".join(lines)
    newest = os.path.join(cfg.serving_model_dir, str(versions[-1]))
    lines.append(f"Serving model: {newest} ({len(versions)} version(s) in {cfg.serving_model_dir})")
    for user in _sample_users(cfg.data_root, sample_users):
        lines += ["", recommend.format_table(user, recommend.recommend_from_saved_model(newest, user, 5))]
    lines += [
        "",
        f"Next: recsys recommend --model {cfg.serving_model_dir} --user <id>",
        f"      recsys serve --model-base-path {cfg.serving_model_dir} --model-name {cfg.pipeline_name}",
        f"      tensorboard --logdir {cfg.pipeline_root}",
    ]
    return "\n".join(lines)


def tensorboard_logdir(output_dir: str) -> str:
    """The directory whose subtree holds every TensorBoard event file of a run."""
    return os.path.join(output_dir, "pipeline")
