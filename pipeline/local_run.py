"""Runs the pipeline locally: prepares the data, runs the DAG with stage progress, summarises.

Used by `recsys run` and by `local_runner.py` (the file the `tfx` CLI runs).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from typing import Dict, Optional

from pipeline.config import PipelineConfig
from pipeline.progress import StageProgress

SOURCE_STAMP = "source.json"


def prepare_data(cfg: PipelineConfig, data: Optional[str]) -> Dict[str, object]:
    """Writes the canonical spans under `cfg.data_root` unless the same source is there already.

    Args:
      cfg: the pipeline config (its `synthetic` section sizes the default data).
      data: a MovieLens folder or an interactions CSV, or None for the embedded synthetic data.

    Returns:
      The data report as a dict (read back when the data was already prepared).
    """
    import ingest as data_layer
    from ingest.report import REPORT_FILE

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


def run_pipeline(cfg: PipelineConfig) -> float:
    """Runs `create_pipeline(cfg)` with TFX's LocalDagRunner; returns the wall time in seconds."""
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    pipeline = create_pipeline(cfg)
    os.makedirs(os.path.dirname(os.path.abspath(cfg.metadata_path)), exist_ok=True)
    start = time.time()
    with StageProgress(cfg.metadata_path, cfg.pipeline_name, len(pipeline.components)):
        tfx.orchestration.LocalDagRunner().run(pipeline)
    return time.time() - start

