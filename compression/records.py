"""Export + measure: one `VariantRecord` per serving variant and per TFLite mode.

`record_serving_variant` writes a variant's serving SavedModel and measures it (sizes,
parameters, latency, quality); `record_tflite` converts the full model's query tower and
ranking model, writes both files, and measures and evaluates them the same way.
"""

from __future__ import annotations

import os
import time
from typing import List, Optional, Sequence

import numpy as np
import tensorflow as tf

from compression import measure, tflite_export, tflite_quality
from compression.config import CompressionConfig
from compression.report import SAVED_MODEL, TFLITE, VariantRecord
from compression.serving_variants import ServingContext, export_variant
from compression.variants import Variant
from core import features as F
from core.custom_ops import load_saved_model
from trainer import export, tables

LATENCY_BATCHES = (1, 64)


def latency_users(context: ServingContext, count: int = 64) -> List[str]:
    """Known user ids used to time the serving model."""
    keys = context.tables.user_keys[:count]
    return [k.decode() if isinstance(k, bytes) else str(k) for k in keys]


def record_serving_variant(variant: Variant, context: ServingContext, split: measure.EvalSplit,
                           export_dir: str, cutoffs: Sequence[int],
                           cfg: CompressionConfig) -> VariantRecord:
    """Exports `variant` as a serving SavedModel under `export_dir` and measures it.

    The export is loaded once, for both the latency and the quality measurement.
    """
    clock = _PhaseClock()
    export_variant(variant.networks, context, export_dir, variant.int8_candidates)
    clock.lap("export")
    stats = measure.parameter_stats(export_dir)
    sizes = (measure.disk_bytes(export_dir), measure.gzip_bytes(export_dir),
             measure.gzip_bytes(os.path.join(export_dir, "variables")))
    clock.lap("sizes")
    loaded = load_saved_model(export_dir)
    clock.lap("load")
    latency = measure.serving_latency(loaded, latency_users(context), LATENCY_BATCHES, cfg.latency_repeats)
    clock.lap("latency")
    metrics = measure.evaluate_serving(loaded, split, cutoffs, cfg.max_eval_users)
    clock.lap("evaluation")
    record = VariantRecord(
        name=variant.name, description=variant.description, kind=SAVED_MODEL, path=export_dir,
        disk_bytes=sizes[0], gzip_bytes=sizes[1], weights_gzip_bytes=sizes[2],
        parameters=stats.parameters, nonzeros=stats.nonzeros, latency_ms=latency, metrics=metrics,
        bytes_by_group=stats.bytes_by_group,
    )
    print(f"compression: {variant.name}: {record.gzip_bytes:,} gzip bytes, "
          f"recall_at_20 {record.metrics.get('recall_at_20', float('nan')):.4f}, "
          f"ndcg_at_10 {record.metrics.get('ndcg_at_10', float('nan')):.4f} ({clock})", flush=True)
    return record


class _PhaseClock:
    """Wall seconds of consecutive phases, for the progress line."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self._laps: List[str] = []

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self._laps.append(f"{name} {now - self._last:.1f}s")
        self._last = now

    def __str__(self) -> str:
        return ", ".join(self._laps)


def _tflite_parameters(path: str) -> tuple:
    """(scalars, non-zeros) of the constant tensors (weights) of a TFLite file."""
    interpreter = tf.lite.Interpreter(model_path=path)
    parameters = nonzeros = 0
    for detail in interpreter.get_tensor_details():
        try:
            value = interpreter.get_tensor(detail["index"])
        except ValueError:  # activations have no data before an invocation; not parameters
            continue
        if value.size and detail["name"] and np.issubdtype(value.dtype, np.number):
            parameters += value.size
            nonzeros += int(np.count_nonzero(value))
    return parameters, nonzeros


def record_tflite(full: export.Networks, representative: Sequence[dict], mode: str,
                  context: ServingContext, split: measure.EvalSplit, out_dir: str,
                  cutoffs: Sequence[int], cfg: CompressionConfig,
                  embeddings: Optional[np.ndarray] = None) -> VariantRecord:
    """Converts the query tower and ranking model in `mode`, writes, measures and evaluates them."""
    folder = os.path.join(out_dir, f"tflite_{mode}")
    paths = {}
    for name, network in ((export.QUERY_TOWER, full.query_tower),
                          (export.RANKING_MODEL, full.ranking_model)):
        content = tflite_export.convert(network, mode, representative)
        paths[name] = tflite_export.write(content, os.path.join(folder, f"{name}.tflite"))
    if embeddings is None:
        embeddings = tables.embed_catalog(full.candidate_tower, context.item_features)
    query = tflite_export.TFLiteNetwork(paths[export.QUERY_TOWER])
    latency = {}
    for size in LATENCY_BATCHES:
        rows = np.arange(size) % max(len(context.tables.user_keys), 1)
        feats = {n: c[rows] for n, c in context.tables.user_features.items()}
        feats[F.TIMESTAMP_XF] = np.full(size, context.options.context_timestamp, np.float32)
        latency[size] = measure.median_latency_ms(lambda f=feats: query(f), cfg.latency_repeats)
    counts = [_tflite_parameters(p) for p in paths.values()]
    record = VariantRecord(
        name=f"tflite_{mode}", description=f"TFLite {mode.replace('_', '-')} query tower + ranking model",
        kind=TFLITE, path=folder, disk_bytes=measure.disk_bytes(folder),
        gzip_bytes=measure.gzip_bytes(folder), weights_gzip_bytes=measure.gzip_bytes(folder),
        parameters=sum(c[0] for c in counts),
        nonzeros=sum(c[1] for c in counts), latency_ms=latency,
        metrics=tflite_quality.evaluate_tflite(paths[export.QUERY_TOWER], paths[export.RANKING_MODEL],
                                               embeddings, context, split, cutoffs, cfg.max_eval_users),
        bytes_by_group={f"{n}.tflite": os.path.getsize(p) for n, p in paths.items()},
    )
    print(f"compression: tflite {mode}: {record.gzip_bytes:,} gzip bytes, retrieval recall_at_20 "
          f"{record.metrics.get('retrieval_recall_at_20', float('nan')):.4f}", flush=True)
    return record
