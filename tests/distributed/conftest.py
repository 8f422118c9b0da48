"""The 2-replica comparison run, shared by the retrieval and the ranking tests.

It runs in its own process (`tests.distributed.replica_check`), since logical devices must be
configured before TensorFlow initialises its devices, and once per session: both models are
compared in the same run.
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


@pytest.fixture(scope="session")
def replica_run():
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.distributed.replica_check", "--global-batches", ",".join(BATCHES)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
