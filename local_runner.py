"""Runner file for TFX's own CLI (local engine):

    tfx pipeline create --engine local --pipeline_path local_runner.py
    tfx run create --engine local --pipeline_name recsys

Paths come from RECSYS_OUTPUT (default ./output), the optional config from RECSYS_CONFIG and the
optional input data from RECSYS_DATA; read in main() only.
"""

import os


def main() -> None:
    from core.process import set_up_process

    set_up_process()
    from tfx import v1 as tfx

    from pipeline import local_run
    from pipeline.config import load_config
    from pipeline.pipeline import create_pipeline

    cfg = load_config(os.environ.get("RECSYS_CONFIG")).with_paths(
        os.path.abspath(os.environ.get("RECSYS_OUTPUT", "output"))
    )
    local_run.prepare_data(cfg, os.environ.get("RECSYS_DATA"))
    tfx.orchestration.LocalDagRunner().run(create_pipeline(cfg))


if __name__ == "__main__":
    main()
