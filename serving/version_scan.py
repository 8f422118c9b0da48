"""Scanning a model base path: its version folders, each version's files, the serving policies.

A version is a sub-directory named by a non-negative integer, as TF Serving's file-system
source reads them; anything else (temp dirs of an in-progress push, files) is ignored, and so
is a version folder that resolves outside the base path.  ``VersionScanner.scan`` walks every
file of one version: its ``fingerprint`` (path, size and mtime of each file) changes whenever
any file changes, data files included, so the version manager can wait until a version's files
are stable and retry a failed version once it has been rewritten; ``outside`` lists the
entries (e.g. a symlinked ``variables/``) that resolve outside the base path, and such a
version is refused.  Each refusal is logged once per path, not on every poll.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from typing import Dict, Iterable, List, Set, Tuple

from serving.config import VersionPolicy

_LOG = logging.getLogger(__name__)
_MAX_VERSION = 2 ** 63 - 1

Fingerprint = Tuple[Tuple[str, int, int], ...]  # (relative path, size, mtime ns) per file


def inside(base_path: str, path: str) -> bool:
    """Whether ``path`` resolves (symlinks followed) to somewhere inside ``base_path``."""
    base = os.path.realpath(base_path)
    target = os.path.realpath(path)
    return target != base and os.path.commonpath([base, target]) == base


@dataclasses.dataclass(frozen=True)
class VersionFiles:
    """What one scan of a version folder found.

    ``fingerprint``: one (relative path, size, mtime) entry per file, sorted; a file that
    vanished during the scan appears with size and mtime -1.  ``outside``: relative paths of
    entries that resolve outside the base path (empty for a servable version).
    """

    path: str
    fingerprint: Fingerprint
    outside: Tuple[str, ...]


class VersionScanner:
    """Lists the versions of one base path and scans their files, warning once per bad path.

    Args:
        base_path: the model's base path.
    """

    def __init__(self, base_path: str) -> None:
        self.base_path = base_path
        self._warned: Set[str] = set()
        self._lock = threading.Lock()

    def _warn_once(self, path: str, message: str) -> None:
        with self._lock:
            if path in self._warned:
                return
            self._warned.add(path)
        _LOG.warning("%s", message)

    def forget_missing(self) -> None:
        """Forget warnings about paths that are gone, so a path that comes back is reported."""
        with self._lock:
            self._warned = {p for p in self._warned if os.path.lexists(p)}

    def list_versions(self) -> Dict[int, str]:
        """The integer version directories under the base path.

        Returns:
            Version number -> directory path (empty when the base path does not exist).
        """
        try:
            entries = list(os.scandir(self.base_path))
        except FileNotFoundError:
            return {}
        except OSError as err:
            self._warn_once(self.base_path, f"cannot list model base path {self.base_path}: {err}")
            return {}
        versions = {}
        for entry in entries:
            name = entry.name
            if not (name.isascii() and name.isdigit()) or int(name) > _MAX_VERSION:
                continue
            if not entry.is_dir():
                continue
            if not inside(self.base_path, entry.path):
                self._warn_once(entry.path, f"ignoring version {entry.path}: it resolves outside "
                                            f"{self.base_path}")
                continue
            versions[int(name)] = entry.path
        return versions

    def scan(self, path: str) -> VersionFiles:
        """Walk every file of one version folder (symlinks followed only inside the base path).

        Args:
            path: the version directory.

        Returns:
            Its fingerprint and the entries that resolve outside the base path (each logged
            once).
        """
        files: List[Tuple[str, int, int]] = []
        outside: List[str] = []
        seen = {os.path.realpath(path)}
        for root, dirs, names in os.walk(path, followlinks=True):
            kept = []
            for name in sorted(dirs):
                full = os.path.join(root, name)
                real = os.path.realpath(full)
                if not inside(self.base_path, full):
                    outside.append(os.path.relpath(full, path))
                elif real not in seen:  # a symlink loop is walked once
                    seen.add(real)
                    kept.append(name)
            dirs[:] = kept
            for name in names:
                full = os.path.join(root, name)
                relative = os.path.relpath(full, path)
                if not inside(self.base_path, full):
                    outside.append(relative)
                    continue
                try:
                    stat = os.stat(full)
                    files.append((relative, stat.st_size, stat.st_mtime_ns))
                except OSError:  # removed or a dangling link: part of the fingerprint
                    files.append((relative, -1, -1))
        for relative in outside:
            full = os.path.join(path, relative)
            self._warn_once(full, f"refusing version {path}: {relative} resolves to "
                                  f"{os.path.realpath(full)}, outside the base path {self.base_path}")
        return VersionFiles(path=path, fingerprint=tuple(sorted(files)), outside=tuple(sorted(outside)))


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
