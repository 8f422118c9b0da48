"""One point of the scale benchmark: N synthetic interactions through the whole pipeline.

    python -m benchmarks.scale_run --interactions 100000 --out DIR --result RESULT.json

Generates the synthetic data (users and items grow with N), runs `create_pipeline` with the
LocalDagRunner (cache off) and writes the wall-clock window of data generation and of every
component, read from the ML Metadata store, to RESULT.json. `benchmarks.scale` runs this in a
child process and samples its memory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from typing import Dict, List

from ingest.config import SyntheticDataConfig
from pipeline.config import BeamConfig, PipelineConfig
from trainer.config import TrainerConfig


def synthetic_config(interactions: int) -> SyntheticDataConfig:
    """MovieLens-like proportions: ~50 interactions per user, items growing as 5 sqrt(N)."""
    return SyntheticDataConfig(
        num_users=max(200, interactions // 50),
        num_items=min(20_000, max(1_000, int(5 * math.sqrt(interactions)))),
        num_interactions=interactions,
    )


def bench_config(
    interactions: int, out_dir: str, beam_workers: int, batch_size: int, epochs: int, compress: bool = False
) -> PipelineConfig:
    """The pipeline config of one benchmark point (cache off, bounded training; CompressModel
    only when `compress`: its cost is measured by `benchmarks.compression`)."""
    beam = BeamConfig()
    if beam_workers > 1:
        beam = BeamConfig(direct_num_workers=beam_workers, direct_running_mode="multi_processing")
    trainer = TrainerConfig(
        batch_size=batch_size, epochs=epochs, ranking_epochs=epochs, lr_scaling="sqrt", steps_per_execution=16
    )
    return PipelineConfig(
        enable_cache=False, trainer=trainer, beam=beam, synthetic=synthetic_config(interactions), compress=compress
    ).with_paths(out_dir)


def component_windows(metadata_path: str) -> Dict[str, List[float]]:
    """Component id -> [start, end] (unix seconds) of its completed execution, from ML Metadata."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(connection)
    node_type = store.get_context_type("node").id
    windows = {}
    for execution in store.get_executions():
        if execution.last_known_state != metadata_store_pb2.Execution.COMPLETE:
            continue
        nodes = [c.name for c in store.get_contexts_by_execution(execution.id) if c.type_id == node_type]
        for node in nodes:
            windows[node.split(".", 1)[1]] = [
                execution.create_time_since_epoch / 1000.0, execution.last_update_time_since_epoch / 1000.0
            ]
    return windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interactions", type=int, required=True)
    parser.add_argument("--out", required=True, help="output folder of the run")
    parser.add_argument("--result", required=True, help="JSON file for the timings")
    parser.add_argument("--beam-workers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=TrainerConfig.batch_size)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--compress", action="store_true", help="include CompressModel (off by default)")
    args = parser.parse_args()
    from core.process import set_up_process

    set_up_process()
    import ingest as data_layer
    from pipeline import local_run

    cfg = bench_config(args.interactions, args.out, args.beam_workers, args.batch_size, args.epochs, args.compress)
    start = time.time()
    print(f"[scale {args.interactions:,}] generating {cfg.synthetic}", flush=True)
    report = data_layer.generate_synthetic(cfg.data_root, cfg.synthetic)
    generated = time.time()
    result = {
        "interactions": args.interactions,
        "users": cfg.synthetic.num_users,
        "items": cfg.synthetic.num_items,
        "train_rows": report.rows_written["train"],
        "eval_rows": report.rows_written["eval"],
        "trainer": dataclasses.asdict(cfg.trainer),
        "beam_args": list(cfg.beam.pipeline_args()),
        "compress": cfg.compress,
        "windows": {"generate_data": [start, generated]},
        "pipeline_root": cfg.pipeline_root,
        "metadata_path": cfg.metadata_path,
        "complete": False,
    }
    _write(args.result, result)  # read back if the run is stopped before the end
    print(f"[scale {args.interactions:,}] data in {generated - start:.1f}s; running the pipeline", flush=True)
    local_run.run_pipeline(cfg)
    result["windows"].update(component_windows(cfg.metadata_path))
    result.update(complete=True, end=time.time())
    _write(args.result, result)


def _write(path: str, result: Dict) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=2)

if __name__ == "__main__":
    main()
