"""The compression report: compression.json, report.md (a table), report.png (size vs Recall@20).

Every variant is a row with its sizes, parameter counts, quality and latency, relative to the
full model; the selection's choice and reason head the page. TensorBoard scalars are written
with the evaluation step's writer (`evaluation.report.log_to_tensorboard`). Files go
through `tf.io.gfile` (the evaluation report's helpers), so the output folder may be a local
path or a remote artifact URI (`gs://`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Dict, Mapping, Optional, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from compression.config import FULL
from compression.select import Selection
from evaluation import report as evaluation_report

REPORT_JSON = "compression.json"
REPORT_MD = "report.md"
REPORT_PNG = "report.png"
SAVED_MODEL, TFLITE = "saved_model", "tflite"
RECALL, NDCG = "recall_at_20", "ndcg_at_10"


@dataclasses.dataclass(frozen=True)
class VariantRecord:
    """Measurements of one variant.

    Attributes:
      name / description: the variant.
      kind: `saved_model` (a serving SavedModel) or `tflite` (on-device query tower + ranking).
      path: where the export lies.
      disk_bytes / gzip_bytes: size on disk and gzip size (level 9) of the export.
      weights_gzip_bytes: gzip size of the weights alone (the SavedModel's `variables/`, without
        the graph and the per-user / catalog tables embedded in it; TFLite: the whole files).
      parameters / nonzeros: numeric scalars stored, and those not zero.
      latency_ms: batch size -> median latency (serving_default; TFLite: the query tower).
      metrics: quality on the eval split (TFLite: retrieval-only metrics and RMSE).
      bytes_by_group: raw bytes per part of the export (what dominates).
    """

    name: str
    description: str
    kind: str
    path: str
    disk_bytes: int
    gzip_bytes: int
    weights_gzip_bytes: int
    parameters: int
    nonzeros: int
    latency_ms: Mapping[int, float]
    metrics: Mapping[str, float]
    bytes_by_group: Mapping[str, int]

    def quality(self, metric: str) -> float:
        """Two-stage `metric`, or its retrieval-only value for a TFLite export (NaN if absent)."""
        value = self.metrics.get(metric)
        if value is None and self.kind == TFLITE:
            value = self.metrics.get(f"retrieval_{metric}")
        return math.nan if value is None else float(value)


def _ratio(full: float, value: float) -> str:
    return f"{full / value:.1f}x" if value else "-"


def _delta(full: float, value: float) -> str:
    if math.isnan(full) or math.isnan(value) or full == 0:
        return "n/a"
    return f"{(value - full) / full:+.1%}"


def _number(value: Optional[float], digits: int = 4) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def sweep_note(records: Sequence[VariantRecord], not_swept: Sequence[str]) -> str:
    """One sentence: the variants built and measured, and those a sweep would add."""
    built = ", ".join(f"`{r.name}`" for r in records)
    if not not_swept:
        return f"**Built:** {built} (every variant)."
    skipped = ", ".join(f"`{name}`" for name in not_swept)
    return (f"**Built:** {built} (the selection's likely winners). **Not swept:** {skipped}; "
            f"`compression.sweep: true` or `recsys run --compression-sweep` builds and measures them.")


def markdown(records: Sequence[VariantRecord], selection: Selection, not_swept: Sequence[str] = ()) -> str:
    """The report page: the verdict, what was built (and what a sweep would add), the table, then
    what dominates the full model's bytes."""
    full = next(r for r in records if r.name == FULL)
    lines = [
        "# Model compression", "",
        f"**Selected:** `{selection.chosen}`. {selection.reason}.", "",
        sweep_note(records, not_swept), "",
        "| variant | kind | gzip bytes | vs full | weights gzip | vs full | disk bytes | params | "
        "non-zeros | Recall@20 | Δ | NDCG@10 | Δ | RMSE | ms @1 | ms @64 | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        verdict = "reference" if r.name == FULL else selection.verdicts.get(r.name, "-")
        if r.name == selection.chosen:
            verdict = f"**selected** ({verdict})"
        lines.append(
            f"| {r.name} | {r.kind} | {r.gzip_bytes:,} | {_ratio(full.gzip_bytes, r.gzip_bytes)} | "
            f"{r.weights_gzip_bytes:,} | {_ratio(full.weights_gzip_bytes, r.weights_gzip_bytes)} | "
            f"{r.disk_bytes:,} | {r.parameters:,} | {r.nonzeros:,} | "
            f"{_number(r.quality(RECALL))} | {_delta(full.quality(RECALL), r.quality(RECALL))} | "
            f"{_number(r.quality(NDCG))} | {_delta(full.quality(NDCG), r.quality(NDCG))} | "
            f"{_number(r.metrics.get('rmse', math.nan))} | "
            f"{_number(r.latency_ms.get(1), 2)} | {_number(r.latency_ms.get(64), 2)} | {verdict} |"
        )
    lines += ["", "Weights gzip: the SavedModel's `variables/` alone, without the graph and the "
              "per-user and catalog tables it embeds. TFLite rows: the query tower and ranking model "
              "files only (the catalog embeddings stay on the server); their Recall@20 / NDCG@10 are "
              "retrieval-only and their latency is the query tower's.", "",
              "## Bytes of the full model's SavedModel by part", "",
              "| part | bytes | share |", "|---|---:|---:|"]
    total = sum(full.bytes_by_group.values()) or 1
    for part, size in sorted(full.bytes_by_group.items(), key=lambda item: -item[1]):
        lines.append(f"| {part} | {size:,} | {size / total:.1%} |")
    return "\n".join(lines) + "\n"


def write_chart(path: str, records: Sequence[VariantRecord], chosen: str,
                budget: Optional[float] = None) -> None:
    """Writes `chart_png` to `path` (a local path or a remote URI)."""
    evaluation_report.write_bytes(path, chart_png(records, chosen, budget))


def chart_png(records: Sequence[VariantRecord], chosen: str, budget: Optional[float] = None) -> bytes:
    """Scatter of gzip bytes (log x) vs Recall@20, one labelled point per variant, as PNG bytes;
    a dashed line marks the lowest Recall@20 within the quality budget when `budget` is given."""
    figure = Figure(figsize=(8.0, 5.0))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    full = next((r for r in records if r.name == FULL), None)
    if budget is not None and full is not None and not math.isnan(full.quality(RECALL)):
        axes.axhline(full.quality(RECALL) * (1 - budget), linestyle="--", color="grey",
                     label=f"budget: -{budget:.0%} Recall@20")
        axes.legend(loc="lower right")
    for record in records:
        recall = record.quality(RECALL)
        if math.isnan(recall):
            continue
        marker = "s" if record.kind == TFLITE else ("*" if record.name == chosen else "o")
        axes.scatter([record.gzip_bytes], [recall], marker=marker, s=120 if marker == "*" else 50)
        axes.annotate(record.name, (record.gzip_bytes, recall), textcoords="offset points",
                      xytext=(5, 5), fontsize=8)
    axes.set_xscale("log")
    axes.set_xlabel("gzip bytes (log scale)")
    axes.set_ylabel("Recall@20 (TFLite: retrieval only)")
    axes.set_title(f"Model size vs Recall@20 (selected: {chosen})")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    return evaluation_report.figure_png(figure)


def _json_ready(value):
    """NaN and infinities (not JSON) become None, recursively; mapping keys become strings."""
    if isinstance(value, Mapping):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def scalars(records: Sequence[VariantRecord]) -> Dict[str, Dict[str, float]]:
    """variant -> {metric, gzip_bytes, disk_bytes, parameters, nonzeros, latency_ms_at_B}."""
    out: Dict[str, Dict[str, float]] = {}
    for r in records:
        values = {k: float(v) for k, v in r.metrics.items()}
        values.update(gzip_bytes=float(r.gzip_bytes), weights_gzip_bytes=float(r.weights_gzip_bytes),
                      disk_bytes=float(r.disk_bytes),
                      parameters=float(r.parameters), nonzeros=float(r.nonzeros))
        values.update({f"latency_ms_at_{b}": float(ms) for b, ms in r.latency_ms.items()})
        out[r.name] = values
    return out


def write_report(out_dir: str, records: Sequence[VariantRecord], selection: Selection,
                 budget: Optional[float] = None, not_swept: Sequence[str] = ()) -> str:
    """Writes compression.json, report.md, report.png and TensorBoard scalars; returns the markdown.

    Args:
      out_dir: the output folder (created if needed; a local path or a remote URI).
      records: every variant's measurements, the full model's included.
      selection: the selection rule's decision.
      budget: the quality budget, drawn on the chart.
      not_swept: variants (and `tflite_<mode>` exports) a sweep would add, not built this run.

    Raises:
      ValueError: no record of the full model.
    """
    if not any(r.name == FULL for r in records):
        raise ValueError("the report needs the full model's record")
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    tf.io.gfile.makedirs(out_dir)
    payload = {"selection": selection.to_dict(),
               "variants": [dataclasses.asdict(r) for r in records],
               "built": [r.name for r in records], "not_swept": list(not_swept)}
    evaluation_report.write_text(os.path.join(out_dir, REPORT_JSON),
                                 json.dumps(_json_ready(payload), indent=2, sort_keys=True, allow_nan=False))
    text = markdown(records, selection, not_swept)
    evaluation_report.write_text(os.path.join(out_dir, REPORT_MD), text)
    write_chart(os.path.join(out_dir, REPORT_PNG), records, selection.chosen, budget)
    evaluation_report.log_to_tensorboard(os.path.join(out_dir, "tensorboard"), scalars(records), step=0)
    return text


def read_report(out_dir: str) -> dict:
    """The compression.json written by `write_report` (a local path or a remote URI)."""
    return evaluation_report.read_json(os.path.join(out_dir, REPORT_JSON))

