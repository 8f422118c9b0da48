"""A worker killed (SIGKILL) mid-epoch: the restarted cluster resumes from the last backup.

A chief and a worker process (MultiWorkerMirroredStrategy on 127.0.0.1) fit the retrieval model
for 2 epochs of `STEPS` steps (no ranking fit: the retrieval fit is the one interrupted),
backing up every `BACKUP_STEPS` steps
(`trainer.fault_tolerance`). The worker stops after step `KILL_AT` of the retrieval fit (in the
second epoch) and the test kills it with SIGKILL; the chief, whose next collective has lost its
peer, fails (or is killed when it hangs, as a cluster manager's health check would). Both are
started again with the same arguments and TF_CONFIG, as Vertex AI or Kubernetes restarts a job:
the retrieval fit starts at the step counter of the last backup (not 0), runs only the steps
left, and the final loss over the whole fit part is within 2 % of an uninterrupted run's
(issue target). Three cluster starts, each tracing the train step: minutes on a loaded machine.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.distributed import loopback
from tests.trainer.conftest import transformed_tiny  # noqa: F401  (the session fixture)

STEPS = 8  # per epoch; 2 epochs
BACKUP_STEPS = 2
KILL_AT = 11  # the worker is killed after step 11: the last backup is step 10's
TIMEOUT_S = 600
CHIEF_FAILS_WITHIN_S = 120  # how long the chief may take to notice the dead worker before it is killed too


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_killed_worker_resumes_from_the_last_backup(transformed_tiny, tmp_path):  # noqa: F811
    common = ["--transform-dir", transformed_tiny.transform_dir, "--train-pattern", transformed_tiny.train_pattern,
              "--strategy", "multi_worker", "--epochs", "2", "--ranking-epochs", "0", "--steps", str(STEPS),
              "--backup-steps", str(BACKUP_STEPS)]
    clean_out, killed_out = tmp_path / "clean", tmp_path / "killed"
    with loopback.Cluster(tmp_path) as cluster:
        spec = loopback.cluster_spec(chief=1, worker=1)
        for name, kind in (("clean-chief", "chief"), ("clean-worker", "worker")):
            cluster.start(name, [*common, "--backup-dir", str(tmp_path / "clean-backup"), "--out", str(clean_out)],
                          loopback.tf_config(spec, kind, 0))
        cluster.wait(["clean-chief", "clean-worker"], TIMEOUT_S)

        spec = loopback.cluster_spec(chief=1, worker=1)
        killed = [*common, "--backup-dir", str(tmp_path / "backup"), "--out", str(killed_out)]
        cluster.start("chief", killed, loopback.tf_config(spec, "chief", 0))
        cluster.start("worker", [*killed, "--pause-at-step", str(KILL_AT)], loopback.tf_config(spec, "worker", 0))
        paused = killed_out / "worker.paused"
        deadline = time.monotonic() + TIMEOUT_S
        while not paused.exists():
            assert cluster.exit_code("worker", 1.0) is None, cluster.log_tail("worker")
            assert time.monotonic() < deadline, cluster.log_tail("worker")
        assert int(paused.read_text()) == KILL_AT
        assert cluster.kill("worker") == -9  # SIGKILL
        chief_code = cluster.exit_code("chief", CHIEF_FAILS_WITHIN_S)
        if chief_code is None:
            chief_code = cluster.kill("chief")
        assert chief_code != 0 and not (killed_out / "chief.json").exists()  # the job did not finish

        cluster.start("chief", killed, loopback.tf_config(spec, "chief", 0))
        cluster.start("worker", killed, loopback.tf_config(spec, "worker", 0))
        cluster.wait(["chief", "worker"], TIMEOUT_S)
    clean = json.loads((clean_out / "clean-chief.json").read_text())
    resumed = json.loads((killed_out / "chief.json").read_text())
    last_backup = KILL_AT // BACKUP_STEPS * BACKUP_STEPS
    assert clean["counters"]["retrieval"] == [0, 2 * STEPS]
    assert resumed["counters"]["retrieval"] == [last_backup, 2 * STEPS]  # the step counter did not reset
    assert len(resumed["losses"]["retrieval"]) == 2 * STEPS - last_backup  # only the steps left ran
    assert resumed["data_loss"]["retrieval"] == pytest.approx(clean["data_loss"]["retrieval"], rel=0.02)
    assert clean["losses"]["retrieval"][-1] < 0.9 * clean["losses"]["retrieval"][0]  # it trained
