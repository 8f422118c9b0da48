"""The 2-replica comparison runs: one shared by the retrieval and the ranking tests, one for the
multitask model.

Each runs in its own process (`tests.distributed.replica_check`), since logical devices must be
configured before TensorFlow initialises its devices, and once per session: the retrieval and
the ranking model are compared in the same run.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BATCHES = ("8", "7")  # 8 splits 4 + 4 over the replicas, 7 splits unevenly 4 + 3


MULTITASK_BATCH = "7"  # the uneven split only: it checks the offsets and the global batch size


def _run_check(*args: str) -> dict:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.distributed.replica_check", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def replica_run():
    return _run_check("--global-batches", ",".join(BATCHES))


@pytest.fixture(scope="session")
def multitask_replica_run():
    """The multitask model's comparison, in a run of its own (about half a minute)."""
    return _run_check("--global-batches", MULTITASK_BATCH, "--models", "multitask")
