"""Runner file for TFX's own CLI (local engine):

    tfx pipeline create --engine local --pipeline_path local_runner.py
    tfx run create --engine local --pipeline_name recsys

Paths come from RECSYS_OUTPUT (default ./output), the optional config from RECSYS_CONFIG and the
optional input data from RECSYS_DATA; read in main() only.
"""

import os


def main() -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from tfx import v1 as tfx

    from pipeline import runner
    from pipeline.config import load_config
    from pipeline.pipeline import create_pipeline

    cfg = load_config(os.environ.get("RECSYS_CONFIG")).with_paths(
        os.path.abspath(os.environ.get("RECSYS_OUTPUT", "output"))
    )
    runner.prepare_data(cfg, os.environ.get("RECSYS_DATA"))
    tfx.orchestration.LocalDagRunner().run(create_pipeline(cfg))


if __name__ == "__main__":
    main()
