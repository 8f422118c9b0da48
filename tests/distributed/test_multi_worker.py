"""Two worker processes on loopback train what one process trains (MultiWorkerMirroredStrategy).

A chief and a worker, each its own process with its own TF_CONFIG, fit the retrieval model
(in-batch negatives gathered across the workers) and the ranking model for 5 steps through
`trainer.train.train` on the cluster input of the Trainer's fit part (`trainer.multi_worker`), in
memory and streamed; a third process fits them with the default strategy at the same global
batch and seed. Every step's loss and every final weight agree (issue targets: 1e-4 relative on the losses, 1e-4 on the weights).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.distributed import loopback
from tests.trainer.conftest import transformed_tiny  # noqa: F401  (the session fixture)

STEPS = 5
TIMEOUT_S = 600  # the processes share the machine's cores with whatever else runs


def _result(out, name):
    run = json.loads((out / f"{name}.json").read_text())
    with np.load(out / f"{name}.npz") as weights:
        run["weights"] = [weights[f"arr_{i}"] for i in range(len(weights.files))]
    return run


@pytest.mark.slow
@pytest.mark.timeout(1200)  # three processes tracing the train steps: about 8 minutes each on a loaded 2-core machine
@pytest.mark.parametrize("input_mode", ["memory", "stream"])
def test_chief_and_worker_processes_train_what_one_process_trains(transformed_tiny, tmp_path, input_mode):  # noqa: F811
    out = tmp_path / "out"
    args = ["--transform-dir", transformed_tiny.transform_dir, "--train-pattern", transformed_tiny.train_pattern,
            "--input-mode", input_mode, "--steps", str(STEPS), "--out", str(out)]
    spec = loopback.cluster_spec(chief=1, worker=1)
    with loopback.Cluster(tmp_path) as cluster:
        cluster.start("chief", [*args, "--strategy", "multi_worker"], loopback.tf_config(spec, "chief", 0))
        cluster.start("worker", [*args, "--strategy", "multi_worker"], loopback.tf_config(spec, "worker", 0))
        cluster.start("single", [*args, "--strategy", "default"])
        cluster.wait(["chief", "worker", "single"], TIMEOUT_S)
    chief, worker, single = (_result(out, name) for name in ("chief", "worker", "single"))
    assert (chief["replicas"], single["replicas"]) == (2, 1)
    for stage in ("retrieval", "ranking"):
        assert len(chief["losses"][stage]) == len(single["losses"][stage]) == STEPS
        np.testing.assert_allclose(chief["losses"][stage], single["losses"][stage], rtol=1e-4, err_msg=stage)
    assert single["max_weight_change"] > 1e-2  # it trained
    assert len(chief["weights"]) == len(single["weights"]) > 10
    for mine, theirs, other in zip(chief["weights"], single["weights"], worker["weights"]):
        np.testing.assert_allclose(mine, theirs, atol=1e-4)
        np.testing.assert_array_equal(mine, other)  # the workers' mirrored copies are one model
