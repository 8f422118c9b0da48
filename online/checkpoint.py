"""Learner checkpoints: the state behind each exported version, for exactly-once restarts.

Before the learner publishes version V it writes ``<state>/ckpt-V/`` (the tower weights and the
optimiser state as a TF checkpoint, its tables, and ``meta.json`` with the log offset of the
last applied event) through a temp folder renamed into place, then points ``latest.json`` at
it. A restarted learner restores the newest checkpoint and reads the log from its offset, so an
event is in the learner's state once: either inside the checkpoint or read again after it.
"""

from __future__ import annotations

import os
import pickle
import shutil
from typing import Dict, Optional, Tuple

import tensorflow as tf

from core import durable_files
from online.online_tables import OnlineTables

LATEST_FILE = "latest.json"
_PREFIX = "ckpt-"


def _path(state_dir: str, version: int) -> str:
    return os.path.join(state_dir, f"{_PREFIX}{version}")


def save(state_dir: str, version: int, meta: Dict, objects: Dict[str, tf.Module], tables: OnlineTables,
         keep: int) -> str:
    """Writes the checkpoint of `version` and makes it the latest.

    Args:
      state_dir: the learner's state folder.
      version: the version about to be published with this state.
      meta: JSON-compatible facts (applied offset, base id); `version` is added.
      objects: the trackable objects whose variables are saved (towers, optimiser).
      tables: the learner's tables.
      keep: checkpoints kept (older ones are deleted).

    Returns:
      The checkpoint folder.
    """
    path = _path(state_dir, version)
    tmp = f"{path}.tmp-{os.getpid()}"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    tf.train.Checkpoint(**objects).write(os.path.join(tmp, "weights"))
    with open(os.path.join(tmp, "tables.pkl"), "wb") as handle:
        pickle.dump(tables, handle, protocol=pickle.HIGHEST_PROTOCOL)
        handle.flush()
        os.fsync(handle.fileno())
    durable_files.write_json_atomically(os.path.join(tmp, "meta.json"), {**meta, "version": version})
    if os.path.exists(path):
        shutil.rmtree(path)
    os.rename(tmp, path)
    durable_files.write_json_atomically(os.path.join(state_dir, LATEST_FILE), {**meta, "version": version})
    _prune(state_dir, keep, version)
    return path


def _prune(state_dir: str, keep: int, current: int) -> None:
    versions = sorted(int(n[len(_PREFIX):]) for n in os.listdir(state_dir)
                      if n.startswith(_PREFIX) and n[len(_PREFIX):].isdigit())
    for version in versions[:-keep]:
        if version != current:
            shutil.rmtree(_path(state_dir, version))


def latest(state_dir: str) -> Optional[Dict]:
    """Meta of the latest checkpoint, or None."""
    meta = durable_files.read_json(os.path.join(state_dir, LATEST_FILE))
    if meta is None or not os.path.isdir(_path(state_dir, meta["version"])):
        return None
    return meta


def find(state_dir: str, version: int) -> Optional[Dict]:
    """Meta of the checkpoint of `version`, or None when it was not kept."""
    return durable_files.read_json(os.path.join(_path(state_dir, version), "meta.json"))


def versions(state_dir: str) -> set:
    """Versions that have a checkpoint."""
    if not os.path.isdir(state_dir):
        return set()
    return {int(n[len(_PREFIX):]) for n in os.listdir(state_dir) if n.startswith(_PREFIX) and n[len(_PREFIX):].isdigit()}


def restore(state_dir: str, version: int, objects: Dict[str, tf.Module], transform_layer) -> Tuple[OnlineTables, Dict]:
    """Loads the checkpoint of `version` into `objects`; returns its tables and meta.

    Raises:
      AssertionError: the saved variables do not match the objects (another configuration).
    """
    path = _path(state_dir, version)
    tf.train.Checkpoint(**objects).read(os.path.join(path, "weights")).assert_existing_objects_matched()
    with open(os.path.join(path, "tables.pkl"), "rb") as handle:
        tables: OnlineTables = pickle.load(handle)
    tables.attach(transform_layer)
    return tables, durable_files.read_json(os.path.join(path, "meta.json"))
