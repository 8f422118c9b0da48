"""CompressModel: the trained networks -> compressed variants, measured; the best one handed on.

Between the Trainer and BuildServingModel. Reads the Trainer's networks, the Transform graph,
the transformed training examples (fine-tuning, distillation, serving tables), the raw
interaction examples (evaluation, same split and metrics as the evaluation step) and the item
catalog. Builds the configured variants (`CompressionConfig.built_variants`: by default only the
selection's likely winners, every variant with `compression.sweep`), exports each as a serving
SavedModel and measures it, exports the configured TFLite models (none by default: they are never
selected), picks the smallest variant within the quality budget (`compression.select`) and
writes:

* `<model>/Format-Serving/`: the chosen networks in the Trainer's layout
  (`trainer.export.save_trained`) plus `compression.json` (the variant and whether its serving
  model stores the candidate embeddings as int8), so BuildServingModel consumes it unchanged;
* `<report>/`: report.md, report.png (size vs Recall@20), compression.json, TensorBoard
  scalars, and every variant's export under `variants/`.

The artifact URIs may be remote (`gs://` on Kubeflow / Vertex). The variants are exported and
measured (sizes walk and tar local files) in a local temporary folder, then copied to
`<report>/variants/` with `tf.io.gfile` (`publish_dir`); the records name their final location.
The report files, the chosen networks and their marker are written through `tf.io.gfile`.
"""

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Sequence

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import io_utils, path_utils

from components.artifact_files import split_files
from compression import measure, records, select, tflite_export, variants
from compression import report as compression_report
from compression.config import FULL, CompressionConfig
from compression.finetune import load_training_data
from compression.serving_variants import ServingContext, write_marker
from core import features as F
from core.config_loader import from_dict
from trainer import export
from trainer.config import TrainerConfig
from trainer.serving_model import ServingOptions

VARIANTS_DIR = "variants"


def publish_dir(local_dir: str, uri: str) -> None:
    """Copies the local folder `local_dir` recursively to `uri` (a local path or a remote URI).

    Whatever `uri` held before is replaced; `<local_dir>/a/b` becomes `<uri>/a/b`.
    """
    io_utils.copy_dir(local_dir, uri)


def relocate(path: str, local_dir: str, uri: str) -> str:
    """`path` under `local_dir` expressed under `uri` (where `publish_dir` copied it)."""
    relative = os.path.relpath(path, local_dir)
    return uri.rstrip("/") if relative == "." else os.path.join(uri, relative)


@dataclasses.dataclass(frozen=True)
class CompressionOutcome:
    """The records of every variant, the selection and the report's markdown."""

    records: Sequence[compression_report.VariantRecord]
    selection: select.Selection
    markdown: str


def compress_model(
    trained_dir: str,
    transform_dir: str,
    transformed_train_patterns: Sequence[str],
    raw_train_patterns: Sequence[str],
    raw_eval_patterns: Sequence[str],
    catalog_patterns: Sequence[str],
    model_dir: str,
    report_dir: str,
    trainer_cfg: TrainerConfig,
    cfg: CompressionConfig,
    options: ServingOptions,
    cutoffs: Sequence[int] = (10, 20, 50, 100),
) -> CompressionOutcome:
    """Builds, measures and selects the variants; writes the chosen networks and the report.

    Args:
      trained_dir: the Trainer's networks (`trainer.export.save_trained` layout).
      transform_dir: the Transform graph.
      transformed_train_patterns: transformed training examples.
      raw_train_patterns / raw_eval_patterns: raw interaction examples of both splits.
      catalog_patterns: raw item catalog examples.
      model_dir: where the chosen networks go.
      report_dir: where the report and every variant's export go.
      trainer_cfg: the Trainer's hyperparameters (losses and learning rates of fine-tuning).
      cfg: the compression settings.
      options: the serving model's top-K and two-stage settings.
      cutoffs: the K of the top-K metrics (must include 10 and 20 for the default budget).

    Returns:
      The records, the selection and the report's markdown.

    Raises:
      ValueError: a budget metric's K is not among the cutoffs (checked before any work).
    """
    uncut = [m for m in cfg.budget_metrics if m.rsplit("_", 1)[-1].isdigit() and int(m.rsplit("_", 1)[-1]) not in cutoffs]
    if uncut:
        raise ValueError(f"budget metrics {uncut} need their K among the cutoffs {list(cutoffs)}")
    full = export.load_trained(trained_dir)
    data = load_training_data(transform_dir, transformed_train_patterns, trainer_cfg, cfg.seed)
    context = ServingContext.load(transform_dir, transformed_train_patterns, catalog_patterns, options)
    catalog_ids = [k.decode() for k in context.tables.item_keys]
    split = measure.EvalSplit.read(raw_train_patterns, raw_eval_patterns, catalog_ids)
    building = [FULL, *cfg.built_variants, *(f"tflite_{m}" for m in cfg.built_tflite_modes)]
    skipped = cfg.not_swept()
    print(f"compression: building {', '.join(building)}"
          + (f"; not swept: {', '.join(skipped)} (compression.sweep builds them)" if skipped else ""), flush=True)
    staging = tempfile.mkdtemp(prefix="compress_model_")
    try:
        local_variants = os.path.join(staging, VARIANTS_DIR)
        made, rows = {}, []
        for variant in variants.produce_variants(full, data, trainer_cfg, cfg):
            made[variant.name] = variant
            rows.append(records.record_serving_variant(
                variant, context, split, os.path.join(local_variants, variant.name), cutoffs, cfg))
        if cfg.built_tflite_modes:
            names = sorted(set(full.query_tower.input_names) | set(full.ranking_model.input_names))
            representative = tflite_export.representative_examples(data.train, names, cfg.representative_examples)
            for mode in cfg.built_tflite_modes:
                rows.append(records.record_tflite(full, representative, mode, context, split,
                                                  local_variants, cutoffs, cfg))
        candidates = [select.Candidate(r.name, r.gzip_bytes, r.metrics, r.kind == compression_report.SAVED_MODEL)
                      for r in rows]
        selection = select.select_variant(candidates, cfg.quality_budget, cfg.budget_metrics)
        print(f"compression: {selection.reason}", flush=True)
        chosen = made[selection.chosen]
        export.save_trained(chosen.networks, model_dir)
        write_marker(model_dir, chosen.name, chosen.int8_candidates, selection.reason)
        final_variants = os.path.join(report_dir, VARIANTS_DIR)
        publish_dir(local_variants, final_variants)
        rows = [dataclasses.replace(r, path=relocate(r.path, local_variants, final_variants)) for r in rows]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    markdown = compression_report.write_report(report_dir, rows, selection, cfg.quality_budget,
                                               not_swept=cfg.not_swept())
    return CompressionOutcome(rows, selection, markdown)


@component
def CompressModel(  # noqa: N802 - TFX component names are CamelCase
    model: InputArtifact[standard_artifacts.Model],
    transform_graph: InputArtifact[standard_artifacts.TransformGraph],
    transformed_examples: InputArtifact[standard_artifacts.Examples],
    examples: InputArtifact[standard_artifacts.Examples],
    items: InputArtifact[standard_artifacts.Examples],
    compressed_model: OutputArtifact[standard_artifacts.Model],
    report: OutputArtifact[standard_artifacts.ModelEvaluation],
    trainer_config: Parameter[str] = "{}",
    compression_config: Parameter[str] = "{}",
    cutoffs: Parameter[str] = "10,20,50,100",
) -> None:
    """TFX component wrapper of `compress_model` (configs as JSON objects of their fields).

    How the serving model combines its stages (`top_k`, `candidates_to_rank`, `ranking_weight`)
    comes from the trainer config, its one source.
    """
    trainer_cfg = from_dict(TrainerConfig, json.loads(trainer_config), "trainer")
    outcome = compress_model(
        trained_dir=path_utils.serving_model_path(model.uri),
        transform_dir=transform_graph.uri,
        transformed_train_patterns=split_files(transformed_examples, F.TRAIN_SPLIT),
        raw_train_patterns=split_files(examples, F.TRAIN_SPLIT),
        raw_eval_patterns=split_files(examples, F.EVAL_SPLIT),
        catalog_patterns=split_files(items, F.CATALOG_SPLIT),
        model_dir=path_utils.serving_model_path(compressed_model.uri),
        report_dir=report.uri,
        trainer_cfg=trainer_cfg,
        cfg=from_dict(CompressionConfig, json.loads(compression_config), "compression"),
        options=ServingOptions.from_trainer_config(trainer_cfg),
        cutoffs=[int(k) for k in cutoffs.split(",")],
    )
    compressed_model.set_string_custom_property("compression_variant", outcome.selection.chosen)
    report.set_string_custom_property("selected_variant", outcome.selection.chosen)
    report.set_string_custom_property("reason", outcome.selection.reason)
