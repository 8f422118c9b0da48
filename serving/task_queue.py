"""The waiting room of the scheduler: priority classes, earliest deadline first, bounded size.

Tasks wait in one heap per (priority class, batch key), ordered by (deadline, arrival).  The
next batch is built from the highest non-empty class, on the key whose head is most urgent,
then filled from that key in every class, highest first.  Each model may hold at most
``capacity`` rows; a new task that does not fit evicts queued tasks of strictly lower
classes (lowest class, latest deadline, newest first) or is refused.  Not thread-safe: the
scheduler holds its lock around every call.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import heapq
import itertools
import math
from typing import Any, Callable, Dict, Hashable, List, Mapping, Optional, Tuple

import numpy as np


class QueueFull(Exception):
    """The model's queue has no room and nothing of lower priority can be evicted."""


@dataclasses.dataclass(eq=False)
class Task:
    """One request waiting for a batch.  ``deadline`` is a ``time.monotonic()`` instant."""

    key: Hashable
    model: str
    version: int
    signature: str
    inputs: Mapping[str, np.ndarray]
    rows: int
    priority: int
    deadline: float = math.inf
    enqueued: float = 0.0
    batchable: bool = True
    future: concurrent.futures.Future = dataclasses.field(default_factory=concurrent.futures.Future)
    context: Any = None
    seq: int = 0
    removed: bool = False


class TaskQueue:
    """Bounded multi-class queue.

    Args:
        num_priorities: number of classes (index 0 is the lowest).
        capacity: rows a model may hold waiting, as a function of the model name.
    """

    def __init__(self, num_priorities: int, capacity: Callable[[str], int]) -> None:
        self._num = num_priorities
        self._capacity = capacity
        self._heaps: List[Dict[Hashable, List[Tuple[float, int, Task]]]] = [
            {} for _ in range(num_priorities)]
        self._rows_by_model: Dict[str, int] = {}
        self._rows_by_key: Dict[Hashable, int] = {}
        self._opened: Dict[Hashable, float] = {}
        self._seq = itertools.count()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def rows(self, model: str) -> int:
        """Rows waiting for ``model``."""
        return self._rows_by_model.get(model, 0)

    def key_rows(self, key: Hashable) -> int:
        """Rows waiting for batch ``key``."""
        return self._rows_by_key.get(key, 0)

    def models(self) -> Mapping[str, int]:
        """Rows waiting per model."""
        return dict(self._rows_by_model)

    def push(self, task: Task, now: float) -> List[Task]:
        """Enqueue ``task``, evicting lower-priority tasks of its model if needed.

        Args:
            task: the task (its ``rows`` must not exceed the capacity).
            now: the current monotonic time (the task's arrival).

        Returns:
            The evicted tasks (their futures are not touched).

        Raises:
            QueueFull: no room and not enough lower-priority rows to evict.
        """
        capacity = self._capacity(task.model)
        need = self.rows(task.model) + task.rows - capacity
        evicted: List[Task] = []
        if need > 0:
            victims = self._victims(task.model, task.priority, need)
            if victims is None:
                raise QueueFull(f"queue of model '{task.model}' is full "
                                f"({self.rows(task.model)} of {capacity} rows waiting)")
            for victim in victims:
                self._discard(victim)
            evicted = victims
        task.seq = next(self._seq)
        task.enqueued = now
        heap = self._heaps[task.priority].setdefault(task.key, [])
        heapq.heappush(heap, (task.deadline, task.seq, task))
        self._add(task, +1)
        self._opened.setdefault(task.key, now)
        return evicted

    def _victims(self, model: str, priority: int, need: int) -> Optional[List[Task]]:
        victims: List[Task] = []
        for level in range(priority):
            candidates = [entry[2] for heap in self._heaps[level].values() for entry in heap
                          if not entry[2].removed and entry[2].model == model]
            candidates.sort(key=lambda t: (t.deadline, t.seq), reverse=True)
            for task in candidates:
                victims.append(task)
                need -= task.rows
                if need <= 0:
                    return victims
        return None

    def _add(self, task: Task, sign: int) -> None:
        self._count += sign
        self._rows_by_model[task.model] = self._rows_by_model.get(task.model, 0) + sign * task.rows
        self._rows_by_key[task.key] = self._rows_by_key.get(task.key, 0) + sign * task.rows
        if not self._rows_by_model[task.model]:
            del self._rows_by_model[task.model]
        if not self._rows_by_key[task.key]:
            del self._rows_by_key[task.key]
            self._opened.pop(task.key, None)

    def _discard(self, task: Task) -> None:
        task.removed = True
        self._add(task, -1)

    def _head(self, level: int, key: Hashable) -> Optional[Task]:
        heap = self._heaps[level].get(key)
        while heap and heap[0][2].removed:
            heapq.heappop(heap)
        if not heap:
            self._heaps[level].pop(key, None)
            return None
        return heap[0][2]

    def select(self) -> Optional[Tuple[Hashable, int, float, Task]]:
        """The most urgent batch key.

        Returns:
            ``(key, rows waiting for it, time its oldest batch opened, its most urgent task)``
            or None when empty.
        """
        for level in range(self._num - 1, -1, -1):
            best: Optional[Task] = None
            for key in list(self._heaps[level]):
                head = self._head(level, key)
                if head is None:
                    continue
                if best is None or (head.deadline, head.seq) < (best.deadline, best.seq):
                    best = head
            if best is not None:
                return (best.key, self._rows_by_key.get(best.key, 0),
                        self._opened.get(best.key, 0.0), best)
        return None

    def take(self, key: Hashable, max_rows: int, single: bool, now: float,
             expired: Callable[[Task, float], bool], min_priority: int = 0
             ) -> Tuple[List[Task], List[Task]]:
        """Remove up to ``max_rows`` rows of ``key``, classes highest first, EDF within a class.

        Args:
            key: the batch key from ``select``.
            max_rows: the batch size limit.
            single: take exactly one task (unbatchable signature or batching disabled).
            now: the current monotonic time.
            expired: whether a task can no longer meet its deadline.
            min_priority: the lowest class the batch may take.

        Returns:
            ``(batch, dropped)``: the tasks to run, and tasks removed because they expired or
            were cancelled (their futures are not touched).
        """
        batch: List[Task] = []
        dropped: List[Task] = []
        rows = 0
        for level in range(self._num - 1, min_priority - 1, -1):
            while True:
                head = self._head(level, key)
                if head is None:
                    break
                if expired(head, now) or head.future.cancelled():
                    heapq.heappop(self._heaps[level][key])
                    self._discard(head)
                    dropped.append(head)
                    continue
                if batch and (single or rows + head.rows > max_rows):
                    break
                heapq.heappop(self._heaps[level][key])
                self._discard(head)
                batch.append(head)
                rows += head.rows
            if batch and (single or rows >= max_rows):
                break
        if self._rows_by_key.get(key):
            self._opened[key] = now
        return batch, dropped

    def remove_expired(self, now: float, expired: Callable[[Task, float], bool]) -> List[Task]:
        """Remove every waiting task that expired or was cancelled; returns them."""
        gone = []
        for level in range(self._num):
            for key in list(self._heaps[level]):
                for entry in self._heaps[level][key]:
                    task = entry[2]
                    if not task.removed and (expired(task, now) or task.future.cancelled()):
                        self._discard(task)
                        gone.append(task)
                self._head(level, key)
        return gone

    def drain_all(self) -> List[Task]:
        """Remove and return every waiting task."""
        gone = []
        for level in range(self._num):
            for heap in self._heaps[level].values():
                for _, _, task in heap:
                    if not task.removed:
                        self._discard(task)
                        gone.append(task)
            self._heaps[level].clear()
        return gone
