"""Writes evaluation results: metrics.json, report.md, report.png, and TensorBoard scalars.

The chart is drawn with matplotlib's Agg canvas directly (no pyplot, no display, no global
backend switch) and rendered to PNG bytes in memory. Every file is written and read with
``tf.io.gfile``, so the output folder may be a local path or a remote artifact URI (``gs://``);
TensorFlow is imported inside the functions that touch files, not at module import.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from typing import Any, Dict, List, Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evaluation.protocol import compare_side_by_side

Results = Mapping[str, Mapping[str, float]]
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
CHART_FILE = "report.png"


def _json_ready(value: Any) -> Any:
    """Replaces NaN and infinities (not valid JSON) with None, recursively."""
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _chart_metrics(results: Results) -> List[str]:
    """recall_at_K metrics by ascending K, then ndcg_at_10, as far as any model has them."""
    names = {name for values in results.values() for name in values}
    recalls = sorted((name for name in names if re.fullmatch(r"recall_at_\d+", name)),
                     key=lambda name: int(name.rsplit("_", 1)[1]))
    return recalls + (["ndcg_at_10"] if "ndcg_at_10" in names else [])


def _gfile():
    """``tf.io.gfile`` (TensorFlow imported on first use)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return tf.io.gfile


def write_text(path: str, text: str) -> None:
    """Writes `text` (UTF-8) to `path`, a local path or a remote URI."""
    with _gfile().GFile(path, "w") as handle:
        handle.write(text)


def write_bytes(path: str, content: bytes) -> None:
    """Writes `content` to `path`, a local path or a remote URI."""
    with _gfile().GFile(path, "wb") as handle:
        handle.write(content)


def read_json(path: str) -> Any:
    """The JSON document at `path`, a local path or a remote URI."""
    with _gfile().GFile(path, "r") as handle:
        return json.loads(handle.read())


def figure_png(figure: Figure) -> bytes:
    """A figure rendered as PNG bytes (100 dpi)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _chart_png(results: Results) -> bytes:
    """A grouped bar chart: one group per metric, one bar per model (NaN/missing drawn as 0)."""
    names = _chart_metrics(results)
    models = list(results)
    figure = Figure(figsize=(max(6.0, 1.2 * max(len(names), 1) * max(len(models), 1) / 2), 4.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    positions = np.arange(len(names))
    width = 0.8 / max(len(models), 1)
    for number, model in enumerate(models):
        heights = [results[model].get(name, math.nan) for name in names]
        heights = [0.0 if value is None or math.isnan(value) else value for value in heights]
        axes.bar(positions + (number - (len(models) - 1) / 2) * width, heights, width,
                 label=model)
    axes.set_xticks(positions)
    axes.set_xticklabels(names, rotation=20)
    axes.set_ylabel("value")
    axes.set_title("Recall@K and NDCG@10 per model")
    if models:
        axes.legend()
    figure.tight_layout()
    return figure_png(figure)


def _markdown(results: Results, slices: Mapping[str, Results], blessing: Mapping[str, Any]) -> str:
    verdict = "blessed" if blessing.get("blessed") else "not blessed"
    parts = ["# Model evaluation", "",
             f"**Verdict:** {verdict}. {blessing.get('reason', '')}".rstrip(), "",
             "## All users", "", compare_side_by_side(results)]
    for name, per_model in slices.items():
        parts += [f"## Slice: {name}", "", compare_side_by_side(per_model)]
    return "\n".join(parts)


def write_report(out_dir: str, results: Results, slices: Mapping[str, Results],
                 blessing: Mapping[str, Any]) -> None:
    """Writes metrics.json, report.md and report.png into out_dir (created if needed).

    out_dir may be a local path or a remote URI (``gs://``, ``ram://``): files go through
    ``tf.io.gfile``.

    metrics.json holds ``{"results": ..., "slices": ..., "blessing": ...}`` with NaN written as
    null.

    Args:
        out_dir: the output folder.
        results: model name -> metric name -> value.
        slices: slice name -> model name -> metric name -> value.
        blessing: the gate's verdict as a dict with "blessed" and "reason"
            (``Blessing.to_dict()``).
    """
    _gfile().makedirs(out_dir)
    payload = _json_ready({"results": results, "slices": slices, "blessing": blessing})
    write_text(os.path.join(out_dir, METRICS_FILE),
               json.dumps(payload, indent=2, sort_keys=True, allow_nan=False))
    write_text(os.path.join(out_dir, REPORT_FILE), _markdown(results, slices, blessing))
    write_bytes(os.path.join(out_dir, CHART_FILE), _chart_png(results))


def read_metrics(out_dir: str) -> Dict[str, Any]:
    """Reads back the metrics.json written by :func:`write_report` (local path or remote URI)."""
    return read_json(os.path.join(out_dir, METRICS_FILE))


def log_to_tensorboard(logdir: str, results: Results, step: int) -> None:
    """Writes every value as a TensorBoard scalar tagged ``<model>/<metric>`` at ``step``.

    Args:
        logdir: the event file folder.
        results: model name -> metric name -> value.
        step: the global step recorded with the values.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    writer = tf.summary.create_file_writer(logdir)
    try:
        with writer.as_default():
            for model, values in results.items():
                for metric, value in values.items():
                    tf.summary.scalar(f"{model}/{metric}", float(value), step=step)
        writer.flush()
    finally:
        writer.close()
