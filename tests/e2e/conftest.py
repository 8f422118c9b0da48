"""The default pipeline's run, shared by the e2e modules: built once per session.

`first_run` is the default pipeline (compression on, with a lighter compression stage) on the
embedded synthetic data, in a temporary output folder laid out as `recsys run --output DIR`.
Tests that run the pipeline again on it compare with the state just before their run, so the
modules and tests pass in any order; tests that change the data put it back.
"""

from __future__ import annotations

import collections

import pytest

from tests.e2e.pipeline_runs import E2E_COMPRESSION, node_states


@pytest.fixture(scope="session")
def first_run(tmp_path_factory):
    from core import version_dirs
    from pipeline import local_run
    from pipeline.config import load_config

    cfg = load_config(None, {"compression": E2E_COMPRESSION}).with_paths(str(tmp_path_factory.mktemp("e2e") / "out"))
    local_run.prepare_data(cfg, None)
    local_run.run_pipeline(cfg)
    states = node_states(cfg.metadata_path, cfg.pipeline_name)
    states["pushed versions"] = collections.Counter(version_dirs.versions(cfg.serving_model_dir))
    return cfg, states
