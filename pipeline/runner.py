"""Runs the pipeline locally: prepares the data, runs the DAG with stage progress, summarises.

Used by `recsys run` and by `pipeline/local_runner.py` (the file the `tfx` CLI runs).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import time
from typing import Dict, List, Optional

from pipeline.config import PipelineConfig

SOURCE_STAMP = "source.json"


def prepare_data(cfg: PipelineConfig, data: Optional[str]) -> Dict[str, object]:
    """Writes the canonical spans under `cfg.data_root` unless the same source is there already.

    Args:
      cfg: the pipeline config (its `synthetic` section sizes the default data).
      data: a MovieLens folder or an interactions CSV, or None for the embedded synthetic data.

    Returns:
      The data report as a dict (read back when the data was already prepared).
    """
    from pipeline import data as data_layer
    from pipeline.data.report import REPORT_FILE

    root = pathlib.Path(cfg.data_root)
    source = {"data": os.path.abspath(data) if data else None, "synthetic": dataclasses.asdict(cfg.synthetic)}
    if data:
        stat = os.stat(data)
        source["mtime"] = stat.st_mtime
    stamp = root / SOURCE_STAMP
    report_file = root / REPORT_FILE
    if stamp.exists() and report_file.exists() and json.loads(stamp.read_text()) == source:
        print(f"[data] {root} is up to date; reusing it")
        return json.loads(report_file.read_text())
    if root.exists():
        import shutil

        shutil.rmtree(root)
    if data:
        print(f"[data] importing {data} into {root}")
        report = data_layer.import_any(data, str(root))
    else:
        print(f"[data] generating the synthetic default data into {root}")
        report = data_layer.generate_synthetic(str(root), cfg.synthetic)
    print(report.summary())
    stamp.write_text(json.dumps(source, indent=2, sort_keys=True))
    return json.loads(report_file.read_text())


class _StageProgress(logging.Handler):
    """Prints one line when each TFX component starts and finishes, with its duration."""

    def __init__(self, total: int) -> None:
        super().__init__(logging.INFO)
        self._total = total
        self._done = 0
        self._started: Dict[str, float] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith("Component ") or not (message.endswith(" is running.") or message.endswith(" is finished.")):
            return
        node = message.split(" ")[1]
        if message.endswith("running."):
            self._started[node] = time.time()
            print(f"[pipeline {self._done + 1:2d}/{self._total}] {node} ...", flush=True)
        else:
            self._done += 1
            took = time.time() - self._started.get(node, time.time())
            print(f"[pipeline {self._done:2d}/{self._total}] {node} done in {took:.1f}s", flush=True)


def run_pipeline(cfg: PipelineConfig) -> float:
    """Runs `create_pipeline(cfg)` with TFX's LocalDagRunner; returns the wall time in seconds."""
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(cfg)
    handler = _StageProgress(len(pipeline.components))
    # TFX logs component starts and ends through absl's logger at INFO; only those lines print.
    absl_logger = logging.getLogger("absl")
    previous_level = absl_logger.level
    absl_logger.addHandler(handler)
    absl_logger.setLevel(logging.INFO)
    start = time.time()
    try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    finally:
        absl_logger.removeHandler(handler)
        absl_logger.setLevel(previous_level)
    return time.time() - start


def latest_versions(serving_model_dir: str) -> List[int]:
    """Integer versions under the serving directory, ascending."""
    if not os.path.isdir(serving_model_dir):
        return []
    return sorted(int(v) for v in os.listdir(serving_model_dir) if v.isdigit())
