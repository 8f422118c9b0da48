"""Integer version folders of a model base path (the layout TF Serving reads): list, pick, publish.

A version is a folder named by a decimal integer directly under the base path. Hidden folders
(`.tmp-*`, half-copied versions) are never versions. Publishing copies into a hidden temporary
folder and renames it into place, so no reader ever sees half a version; version numbers only
grow (the Unix time, or the newest + 1 when that is larger).
"""

from __future__ import annotations

import os
import shutil
from typing import Callable, Dict, List, Optional

from core.durable_files import fsync_dir

MAX_VERSION = 2 ** 63 - 1  # TF Serving's versions are int64


def is_version_name(name: str) -> bool:
    """Whether folder name `name` is a version number (ASCII digits, within int64)."""
    return name.isascii() and name.isdigit() and int(name) <= MAX_VERSION


def version_dirs(base_path: str) -> Dict[int, str]:
    """Version number -> folder path of every integer version folder under `base_path`.

    Args:
      base_path: the model base path (missing: no versions).

    Returns:
      The versions found, in no particular order (plain files named like a version are skipped).
    """
    try:
        entries = list(os.scandir(base_path))
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return {int(e.name): e.path for e in entries if is_version_name(e.name) and e.is_dir()}


def versions(base_path: str) -> List[int]:
    """The version numbers under `base_path`, ascending."""
    return sorted(version_dirs(base_path))


def newest_version_dir(base_path: str) -> Optional[str]:
    """The folder of the highest version under `base_path`, or None when there is none."""
    found = version_dirs(base_path)
    return found[max(found)] if found else None


def next_version(base_path: str, now: float) -> int:
    """A version number greater than every existing one: normally the Unix time `now`."""
    existing = versions(base_path)
    return max(int(now), (existing[-1] + 1) if existing else 0)


def publish_atomically(source_dir: str, base_path: str, now: float,
                       prepare: Optional[Callable[[str], None]] = None) -> int:
    """Copies `source_dir` to `<base_path>/<next version>` through a hidden folder and a rename.

    Args:
      source_dir: the SavedModel folder to publish.
      base_path: the model base path (created if needed).
      now: the clock (Unix seconds) for the version number.
      prepare: called with the temporary copy before it is renamed into place (to add markers).

    Returns:
      The published version number.
    """
    os.makedirs(base_path, exist_ok=True)
    version = next_version(base_path, now)
    publish_as(source_dir, base_path, version, prepare)
    return version


def publish_as(source_dir: str, base_path: str, version: int,
               prepare: Optional[Callable[[str], None]] = None) -> str:
    """Copies `source_dir` to `<base_path>/<version>` through a hidden folder and a rename.

    Returns:
      The published folder.
    """
    target = os.path.join(base_path, str(version))
    tmp = os.path.join(base_path, f".tmp-{version}-{os.getpid()}")
    try:
        shutil.copytree(source_dir, tmp)
        if prepare is not None:
            prepare(tmp)
        os.rename(tmp, target)
        fsync_dir(base_path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    return target
