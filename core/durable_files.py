"""Small durable-file helpers: atomic JSON state files and exclusive lock files."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from typing import Any, Iterator, Optional


def write_json_atomically(path: str, value: Any) -> None:
    """Writes `value` as JSON to `path` via a temp file, fsync and rename (never half written)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(directory)


def fsync_dir(directory: str) -> None:
    """Makes a new, renamed or removed entry of `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: str, default: Optional[Any] = None) -> Any:
    """The JSON value of `path`, or `default` when the file does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default


@contextlib.contextmanager
def exclusive_lock(path: str) -> Iterator[None]:
    """Holds an exclusive flock on `path` (created if needed) for the block."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
