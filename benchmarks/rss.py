"""Samples the resident memory of a process and all its descendants while it runs.

`TreeSampler(pid)` polls `/proc` (through psutil) every `interval` seconds in a thread and
keeps the timeline of summed RSS, so that peaks can be attributed to time windows (pipeline
components) afterwards.
"""

from __future__ import annotations

import threading
import time
from typing import List, Tuple

import psutil


def tree_rss(pid: int, proportional: bool = False) -> int:
    """Summed RSS in bytes of `pid` and its live descendants (0 when it has exited); with
    `proportional`, PSS instead (shared pages split among the processes mapping them)."""
    try:
        root = psutil.Process(pid)
        processes = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_full_info().pss if proportional else process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue  # exited between listing and reading: it holds no memory any more
    return total


class TreeSampler:
    """Background sampler of `tree_rss(pid)`; use as a context manager."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.samples: List[Tuple[float, int]] = []  # (unix time, bytes)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), tree_rss(self._pid)))
            self._stop.wait(self._interval)

    def __enter__(self) -> "TreeSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float = 0.0, end: float = float("inf")) -> int:
        """Largest sample in [start, end] (bytes; 0 when no sample falls inside)."""
        return max((rss for t, rss in self.samples if start <= t <= end), default=0)
