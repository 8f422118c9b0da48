"""The version folders of a model base path and the policies that choose which to serve.

A version is a sub-directory named by a non-negative integer, as TF Serving's file-system
source reads them; anything else (temp dirs of an in-progress push, files, symlinks leading
out of the base path) is ignored.  ``fingerprint`` changes whenever a version's files change,
so a version that failed to load is retried only once it has been rewritten.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, Iterable, Set, Tuple

from serving.config import VersionPolicy
from serving.signatures import SAVED_MODEL_PB

_LOG = logging.getLogger(__name__)
_MAX_VERSION = 2 ** 63 - 1


def inside(base_path: str, path: str) -> bool:
    """Whether ``path`` resolves (symlinks followed) to somewhere inside ``base_path``."""
    base = os.path.realpath(base_path)
    target = os.path.realpath(path)
    return target != base and os.path.commonpath([base, target]) == base


def list_versions(base_path: str) -> Dict[int, str]:
    """The integer version directories under ``base_path``.

    Args:
        base_path: the model's base path.

    Returns:
        Version number -> directory path (empty when the base path does not exist).
    """
    try:
        entries = list(os.scandir(base_path))
    except FileNotFoundError:
        return {}
    except OSError as err:
        _LOG.error("cannot list model base path %s: %s", base_path, err)
        return {}
    versions = {}
    for entry in entries:
        name = entry.name
        if not (name.isascii() and name.isdigit()) or int(name) > _MAX_VERSION:
            continue
        if not entry.is_dir():
            continue
        if not inside(base_path, entry.path):
            _LOG.warning("ignoring version %s: it resolves outside %s", entry.path, base_path)
            continue
        versions[int(name)] = entry.path
    return versions


def fingerprint(path: str) -> Tuple:
    """A cheap summary of a version directory that changes when its files change."""
    parts = []
    for sub in ("", SAVED_MODEL_PB, "variables", os.path.join("variables", "variables.index")):
        try:
            stat = os.stat(os.path.join(path, sub))
            parts.append((sub, stat.st_mtime_ns, stat.st_size))
        except OSError:
            parts.append((sub, None, None))
    return tuple(parts)


def aspired_versions(policy: VersionPolicy, candidates: Iterable[int]) -> Set[int]:
    """The versions a policy wants served among ``candidates``.

    Args:
        policy: latest N, specific versions, or all.
        candidates: versions present on disk and not known to be broken.

    Returns:
        The set of versions to serve.
    """
    present = sorted(set(candidates))
    if policy.kind == "latest":
        return set(present[-policy.num_versions:])
    if policy.kind == "specific":
        return set(present) & set(policy.versions)
    return set(present)
