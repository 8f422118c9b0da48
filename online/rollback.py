"""`recsys rollback --to VERSION`: serve an earlier model version again, without downtime.

Rule: the chosen version is republished as a new, higher version (a copy through a hidden
temporary folder renamed into place, as every publish), and nothing is deleted. A model server
with the "latest" version policy (TF Serving's default, and this project's server) picks the
copy up with its hot reload like any new version, so serving never stops, and the history
stays on disk (a rollback can itself be rolled back).

Each rollback is recorded in ``<serving_model_dir>/.rollbacks.json`` (hidden, so servers
ignore it). The online learner reads it: when the newest version is a rollback copy, it
continues from its checkpoint of the restored version (or from its base model) instead of
exporting on top of the state that was rolled back.

Version numbers follow the Pusher's rule (`core.version_dirs.next_version`: the Unix time,
or the newest version + 1 if that is not larger); it is restated here so that this command and
the learner do not load TFX.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional

from core import durable_files, version_dirs

MARKER_FILE = ".rollbacks.json"


def rollbacks(serving_model_dir: str) -> List[Dict]:
    """The recorded rollbacks, oldest first: {"restored", "published", "time"}."""
    return durable_files.read_json(os.path.join(serving_model_dir, MARKER_FILE), [])


def latest_rollback(serving_model_dir: str) -> Optional[Dict]:
    """The newest recorded rollback, or None."""
    recorded = rollbacks(serving_model_dir)
    return recorded[-1] if recorded else None


def rollback(serving_model_dir: str, to_version: int, now: float) -> int:
    """Republishes `to_version` as the newest version and records it.

    Args:
      serving_model_dir: the model base path.
      to_version: the version to serve again.
      now: the clock (Unix seconds) for the new version number.

    Returns:
      The new version number.

    Raises:
      ValueError: `to_version` is not published (the message lists what is).
    """
    versions = version_dirs.versions(serving_model_dir)
    if to_version not in versions:
        raise ValueError(f"version {to_version} is not in {serving_model_dir} (published: {versions or 'none'})")
    if versions[-1] == to_version:
        raise ValueError(f"version {to_version} is already the newest version")
    version = version_dirs.next_version(serving_model_dir, now)
    marker = os.path.join(serving_model_dir, MARKER_FILE)
    before = rollbacks(serving_model_dir)
    # Recorded first, so that a learner never mistakes the new version for a foreign one.
    durable_files.write_json_atomically(marker, before + [{"restored": to_version, "published": version, "time": now}])
    try:
        version_dirs.publish_as(os.path.join(serving_model_dir, str(to_version)), serving_model_dir, version)
    except BaseException:
        durable_files.write_json_atomically(marker, before)
        raise
    return version
