"""EvaluateModel: judges the exported serving model and the baselines on the eval split.

A thin TFX wrapper of `evaluation.model_eval` (what is pushed is what is measured) and
`evaluation.gate`: the gate blesses the model above an absolute floor and, when a blessed model
exists, within a relative drop of its figures; the blessing carries the reason either way.
"""

import logging
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components.artifact_files import split_files
from core import features as F
from core import tfrecord_columns
from evaluation import gate, model_eval, report


@component
def EvaluateModel(  # noqa: N802 - TFX component names are CamelCase
    serving_model: InputArtifact[standard_artifacts.Model],
    examples: InputArtifact[standard_artifacts.Examples],
    items: InputArtifact[standard_artifacts.Examples],
    evaluation: OutputArtifact[standard_artifacts.ModelEvaluation],
    blessing: OutputArtifact[standard_artifacts.ModelBlessing],
    baseline_blessing: InputArtifact[standard_artifacts.ModelBlessing] = None,
    cutoffs: Parameter[str] = "10,20,50,100",
    gate_metric: Parameter[str] = "recall_at_20",
    min_value: Parameter[float] = 0.0,
    max_relative_drop: Parameter[float] = 0.05,
    max_eval_users: Parameter[int] = 5000,
    gate_baseline: Parameter[str] = "popularity",
    gate_baseline_margin: Parameter[float] = 1.0,
) -> None:
    """TFX component wrapper of `evaluation.model_eval.evaluate` + the blessing gate + the report."""
    catalog_ids = tfrecord_columns.read_columns(split_files(items, F.CATALOG_SPLIT), (F.ITEM_ID,), decode_strings=True)[F.ITEM_ID]
    results, by_slice = model_eval.evaluate(
        path_utils.serving_model_path(serving_model.uri),
        split_files(examples, F.TRAIN_SPLIT),
        split_files(examples, F.EVAL_SPLIT),
        catalog_ids,
        [int(k) for k in cutoffs.split(",")],
        max_eval_users or None,
    )
    previous = model_eval.previous_metrics(baseline_blessing.uri if baseline_blessing else None)
    verdict = gate.decide_blessing(
        results[model_eval.TWO_STAGE], previous, gate_metric, min_value, max_relative_drop,
        baseline=None if gate_baseline == "none" else results[gate_baseline], baseline_name=gate_baseline,
        baseline_margin=gate_baseline_margin)
    logging.info("evaluation gate: %s", verdict.reason)
    for out in (evaluation.uri, blessing.uri):
        report.write_report(out, results, by_slice, verdict.to_dict())
    report.log_to_tensorboard(os.path.join(evaluation.uri, "tensorboard"), results, step=0)
    blessing.set_int_custom_property("blessed", int(verdict.blessed))
    blessing.set_int_custom_property("current_model_id", serving_model.id)
    blessing.set_string_custom_property("reason", verdict.reason)
    model_eval.write_blessing_marker(blessing.uri, verdict.blessed, verdict.reason)
