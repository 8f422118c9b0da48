"""Fault tolerance of the Trainer's fits: back up the training state, resume after a failure.

Every fit gets a Keras `BackupAndRestore` callback writing to `<run dir>/backup/<fit>`
(`TrainerConfig.backup_steps`: every N steps, or at every epoch's end when 0). When a task of a
cluster dies (a preempted VM, a killed pod), MultiWorkerMirroredStrategy cannot go on with the
survivors: the other tasks fail on their next collective, and the cluster manager (Vertex AI,
Kubernetes) restarts the tasks with the same arguments. Each fit then restores the weights, the
optimizer state (its step counter too) and the epoch and step counters from its last backup and
continues from there instead of starting over (tested on loopback with a worker killed by
SIGKILL: `tests/distributed/test_resume.py`). Under MultiWorkerMirroredStrategy every worker
writes the backup (it runs collectives), the chief to the backup directory and the others to
temporary directories beside it, as Keras arranges.

Keras deletes a fit's backup when the fit completes. The Trainer fits the retrieval model and
then the ranking model, so a failure during the ranking fit resumes the ranking fit from its
backup but runs the retrieval fit again from its start (same seed and input order, so the same
networks).

What a resumed fit does not restore: the input's position within the interrupted epoch (the
epoch's remaining steps are drawn from a freshly started input) and the state of other
callbacks (early stopping's best epoch so far), so a resumed run is close to, not bit-identical
with, an uninterrupted one. On one process the backups change nothing but the files written.
"""

from __future__ import annotations

import os
from typing import List, Union

import tensorflow as tf

BACKUP_SUBDIR = "backup"  # under the Trainer's model_run_dir


def backup_dir(root: str, fit: str) -> str:
    """The backup directory of one fit (e.g. 'fit_part/retrieval') under `root`."""
    return os.path.join(root, BACKUP_SUBDIR, fit)


def save_frequency(backup_steps: int) -> Union[int, str]:
    """Keras' `save_freq` for `TrainerConfig.backup_steps` (>= 0): N steps, or 'epoch' when 0."""
    return backup_steps or "epoch"


def backup_callbacks(root: str, fit: str, backup_steps: int) -> List[tf.keras.callbacks.Callback]:
    """The callbacks that back up and restore one fit (put them first: they restore at train begin).

    Args:
      root: the Trainer's run directory (the same on every restart of the job).
      fit: the fit's name, a path under `root`'s backup directory.
      backup_steps: `TrainerConfig.backup_steps`.

    Returns:
      [a `BackupAndRestore` writing to `backup_dir(root, fit)`].
    """
    return [tf.keras.callbacks.BackupAndRestore(backup_dir(root, fit), save_freq=save_frequency(backup_steps))]
