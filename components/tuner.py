"""ReportingTuner: TFX's `Tuner` whose trial report lands in its own `tuner_results` output.

The executor is TFX's Tuner executor with three changes: it hands the tuner module the folder
`<tuner_results>/trials` (custom_config `report_dir`: `trainer.tuning` writes each trial's
TensorBoard logs and the trial table and PNG there), it leaves out KerasTuner's printed search
and results summaries (the trial table replaces them), and it fails with the trials' errors when
no trial completed (TFX's own executor would fail on an empty list instead).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List

from tfx import types
from tfx import v1 as tfx
from tfx.components.tuner import executor as tuner_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils, standard_component_specs

from trainer.tuning import REPORT_DIR_KEY

REPORT_SUBDIR = "trials"


def report_dir(tuner_results_uri: str) -> str:
    """The trial report's folder inside a `tuner_results` artifact."""
    return os.path.join(tuner_results_uri, REPORT_SUBDIR)


class Executor(tuner_executor.Executor):
    """TFX's Tuner executor, writing the trial report into `tuner_results`."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        results_uri = artifact_utils.get_single_uri(output_dict[standard_component_specs.TUNER_RESULTS_KEY])
        custom = json.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "null") or {}
        custom[REPORT_DIR_KEY] = report_dir(results_uri)
        properties = {**exec_properties, standard_component_specs.CUSTOM_CONFIG_KEY: json.dumps(custom)}
        # KerasTuner's own summaries print to stdout; the trial table is the report's
        tuner = tuner_executor.search(input_dict, properties, self._get_tmp_dir(), print_tuning_summary=False)
        if not tuner.oracle.get_best_trials(1):
            messages = [t.message for t in tuner.oracle.trials.values() if t.message]
            raise RuntimeError(f"no tuning trial completed: {messages[-1] if messages else 'no trial ran'}")
        tuner_executor.write_best_hyperparameters(tuner, output_dict)


class ReportingTuner(tfx.components.Tuner):
    """`tfx.components.Tuner` with the trial report in `tuner_results/trials` (same inputs)."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
