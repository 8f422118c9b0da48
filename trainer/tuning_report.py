"""The Tuner's trial report: a table (trials.md), a PNG of the objective per trial (trials.png)
and TensorBoard scalars (the objective at step = trial number, under `summary/`).

Each trial's own epoch curve is logged by its fit under `trial_<id>/` of the same folder
(`trial_log_dir`). Files are written with `tf.io.gfile` (a local folder or a remote URI); the
chart is drawn with matplotlib's Agg canvas (no pyplot, no display).
"""

from __future__ import annotations

import io
import logging
import math
import os
from typing import Any, Dict, Iterable, List, Sequence

import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

TABLE_FILE = "trials.md"
CHART_FILE = "trials.png"
SUMMARY_SUBDIR = "summary"
SCALAR_TAG = "tuning/objective"

Row = Dict[str, Any]


def trial_log_dir(report_dir: str, trial_id: str) -> str:
    """The TensorBoard folder of trial `trial_id`."""
    return os.path.join(report_dir, f"trial_{trial_id}")


def _order(trial: Any) -> Any:
    """Trials in the order they ran (KerasTuner numbers them '0', '1', ...)."""
    trial_id = str(trial.trial_id)
    return (0, int(trial_id), "") if trial_id.isdigit() else (1, 0, trial_id)


def trial_rows(trials: Iterable[Any], objective: str) -> List[Row]:
    """One row per KerasTuner trial, in trial order.

    Args:
      trials: `keras_tuner` `Trial`s.
      objective: the objective's metric name.

    Returns:
      Rows with `trial`, `status`, the trial's hyperparameter values, `objective` (NaN when the
      trial reported none) and `best_epoch` (when reported).
    """
    rows = []
    for trial in sorted(trials, key=_order):
        metrics = trial.metrics
        score = metrics.get_best_value(objective) if metrics.exists(objective) else None
        epoch = metrics.get_best_value("best_epoch") if metrics.exists("best_epoch") else None
        rows.append({"trial": str(trial.trial_id), "status": str(trial.status), **trial.hyperparameters.values,
                     "objective": math.nan if score is None else float(score),
                     "best_epoch": None if epoch is None else int(epoch)})
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def format_table(rows: Sequence[Row], objective: str) -> str:
    """A Markdown table of `rows`, the objective's column named `objective`, best trial marked."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    scores = [row.get("objective", math.nan) for row in rows]
    finite = [s for s in scores if not math.isnan(s)]
    best = max(finite) if finite else None
    header = [objective if c == "objective" else c for c in columns] + ["best"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, score in zip(rows, scores):
        mark = "*" if best is not None and score == best else ""
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + f" | {mark} |")
    return "\n".join(lines) + "\n"


def chart_png(rows: Sequence[Row], objective: str) -> bytes:
    """PNG bytes of a bar chart: the objective of each trial, the best bar highlighted."""
    labels = [row["trial"] for row in rows]
    scores = [0.0 if math.isnan(row["objective"]) else row["objective"] for row in rows]
    figure = Figure(figsize=(max(4.0, 0.6 * len(rows) + 2.0), 3.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    best = max(range(len(scores)), key=scores.__getitem__) if scores else -1
    axes.bar(range(len(scores)), scores, color=["tab:orange" if i == best else "tab:blue" for i in range(len(scores))])
    axes.set_xticks(range(len(scores)))
    axes.set_xticklabels(labels, rotation=45, ha="right")
    axes.set_xlabel("trial")
    axes.set_ylabel(objective)
    axes.set_title(f"Tuner trials: {objective} (best in orange)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_report(report_dir: str, rows: Sequence[Row], objective: str) -> Dict[str, str]:
    """Writes the table, the chart and the objective scalars of `rows` under `report_dir`.

    Args:
      report_dir: the report folder (local or remote).
      rows: `trial_rows` of the search.
      objective: the objective's metric name.

    Returns:
      Paths written, by kind ('table', 'chart', 'tensorboard').
    """
    tf.io.gfile.makedirs(report_dir)
    table = format_table(rows, objective)
    logging.info("Tuner trials (%d):\n%s", len(rows), table)
    paths = {"table": os.path.join(report_dir, TABLE_FILE), "chart": os.path.join(report_dir, CHART_FILE),
             "tensorboard": os.path.join(report_dir, SUMMARY_SUBDIR)}
    with tf.io.gfile.GFile(paths["table"], "w") as handle:
        handle.write(table)
    with tf.io.gfile.GFile(paths["chart"], "wb") as handle:
        handle.write(chart_png(rows, objective))
    writer = tf.summary.create_file_writer(paths["tensorboard"])
    with writer.as_default():
        for step, row in enumerate(rows):
            tf.summary.scalar(SCALAR_TAG, row["objective"], step=step)
    writer.close()
    return paths
