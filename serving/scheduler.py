"""The scheduler: admission, dynamic batching, priorities, deadlines and load balancing.

``submit`` admits a task at once or refuses it (RESOURCE_EXHAUSTED when the model's queue is
full, DEADLINE_EXCEEDED when its deadline has passed or cannot be met given the recent batch
latency).  One dispatcher thread forms a batch whenever a worker has room: the most urgent
key (highest class, earliest deadline), closed when it reaches ``max_batch_size`` or its
oldest task has waited ``batch_timeout_micros``, and sends it to the live worker with the
least outstanding rows.  A batch is also capped so that its most urgent task's deadline holds
at the recent cost per row.  Optional lane workers take only batches of the highest class,
capped at ``urgent_max_batch_size``, so urgent work does not wait for a full heavy batch to
finish; regular workers take the highest class in full batches, so that a flood of urgent work
keeps the throughput of full batches (without lanes the cap applies on every worker).  Tasks that expire while waiting are dropped
before compute.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Dict, Hashable, List, Optional, Sequence, Tuple

from serving.batching import merge_inputs, padded_size, split_outputs
from serving.config import BatchingConfig
from serving.errors import ServingError, deadline_exceeded, internal, invalid_argument, resource_exhausted, unavailable
from serving.metrics import ServingMetrics
from serving.task_queue import QueueFull, Task, TaskQueue
from serving.workers import WorkerPool

_LOG = logging.getLogger(__name__)
_SWEEP_INTERVAL_S = 0.02
_EWMA = 0.2


class Scheduler:
    """Batches tasks onto the workers of a pool.

    Args:
        pool: the model workers.
        batching: batching parameters (TF Serving's names).
        enable_batching: when False every task runs alone (still scheduled by priority).
        priority_names: class names, lowest first (for metric labels).
        metrics: where counts and histograms go.
        worker_queue_depth: batches a worker may hold at once.
        urgent_workers: the last this many workers of the pool are lanes that only take
            batches led by the highest class, so urgent work never waits behind full heavy
            batches on every worker.
        urgent_max_batch_size: rows a batch led by the highest class may take (0: no cap).
    """

    def __init__(self, pool: WorkerPool, batching: BatchingConfig, enable_batching: bool,
                 priority_names: Sequence[str], metrics: ServingMetrics,
                 worker_queue_depth: int = 1, urgent_workers: int = 0,
                 urgent_max_batch_size: int = 0) -> None:
        if not 0 <= urgent_workers < pool.num_workers:
            raise ValueError(f"urgent_workers {urgent_workers} must leave a regular worker of "
                             f"the pool's {pool.num_workers}")
        self._pool = pool
        self._lanes = urgent_workers
        self._urgent_cap = urgent_max_batch_size
        self._top = len(priority_names) - 1
        self._batching = batching
        self._enable_batching = enable_batching
        self._names = tuple(priority_names)
        self._metrics = metrics
        self._depth = worker_queue_depth
        self._queue = TaskQueue(len(self._names), lambda model: batching.queue_capacity_rows)
        self._cond = threading.Condition()
        self._outstanding = [0] * pool.num_workers
        self._inflight = [0] * pool.num_workers
        self._latency: Dict[Hashable, float] = {}
        self._row_cost: Dict[Hashable, float] = {}  # seconds per row of recent batches
        self._running = False
        self._thread: Optional[threading.Thread] = None
        self._last_sweep = 0.0

    # ---- admission ------------------------------------------------------------------------
    def submit(self, task: Task) -> None:
        """Admit ``task`` or refuse it at once.

        Raises:
            ServingError: INVALID_ARGUMENT (larger than a batch), DEADLINE_EXCEEDED (passed or
                cannot be met), RESOURCE_EXHAUSTED (queue full), UNAVAILABLE (stopped).
        """
        if task.batchable and task.rows > self._batching.max_batch_size:
            raise invalid_argument(f"request has {task.rows} rows, more than max_batch_size "
                                   f"{self._batching.max_batch_size}")
        now = time.monotonic()
        with self._cond:
            if not self._running:
                raise unavailable("the scheduler is not running")
            if not any(self._pool.alive(i) for i in range(self._pool.num_workers)):
                raise unavailable("no model worker is available")
            if self._expired(task, now):
                self._count_deadline(task)
                raise deadline_exceeded("deadline passed or cannot be met "
                                        f"(recent batch latency {self._estimate(task.key) * 1e3:.1f} ms)")
            was_empty = not len(self._queue)
            try:
                evicted = self._queue.push(task, now)
            except QueueFull as err:
                self._metrics.shed.inc(task.model, self._names[task.priority])
                raise resource_exhausted(str(err)) from None
            # wake the dispatcher only when it has something new to decide: a first task (a
            # batch opens) or a full batch; otherwise its own timeout or a finishing worker does
            if was_empty or evicted or self._queue.key_rows(task.key) >= self._batching.max_batch_size \
                    or not self._enable_batching or not task.batchable \
                    or (task.priority == self._top and (self._lanes or self._urgent_cap)):
                self._cond.notify()
        for victim in evicted:
            self._metrics.shed.inc(victim.model, self._names[victim.priority])
            _fail(victim, resource_exhausted(
                "request was shed from a full queue to admit a higher-priority request"))

    def _estimate(self, key: Hashable) -> float:
        return self._latency.get(key, 0.0)

    def _expired(self, task: Task, now: float) -> bool:
        return task.deadline != math.inf and now + self._estimate(task.key) > task.deadline

    def _count_deadline(self, task: Task) -> None:
        self._metrics.deadline.inc(task.model, self._names[task.priority])

    @property
    def queued_tasks(self) -> int:
        """Tasks waiting (not yet in a batch)."""
        with self._cond:
            return len(self._queue)

    def outstanding(self) -> List[int]:
        """Rows assigned to each worker and not yet finished."""
        with self._cond:
            return list(self._outstanding)

    # ---- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the dispatcher thread."""
        with self._cond:
            self._running = True
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop dispatching; waiting tasks fail with UNAVAILABLE."""
        with self._cond:
            self._running = False
            left = self._queue.drain_all()
            self._cond.notify_all()
        for task in left:
            _fail(task, unavailable("the server is shutting down"))
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)

    # ---- dispatching ----------------------------------------------------------------------
    def _pick_worker(self, urgent: bool) -> Optional[int]:
        """The live worker with room and the least outstanding rows; lanes only for urgent work
        (a free lane first: it runs the urgent batch capped, beside the heavy ones)."""
        best = None
        regular = self._pool.num_workers - self._lanes
        order = (list(range(regular, self._pool.num_workers)) + list(range(regular))) if urgent \
            else list(range(regular))
        for index in order:
            if self._inflight[index] >= self._depth or not self._pool.alive(index):
                continue
            if urgent and index >= regular and self._outstanding[index] == 0:
                return index
            if best is None or (self._outstanding[index], self._inflight[index]) < \
                    (self._outstanding[best], self._inflight[best]):
                best = index
        return best

    def _loop(self) -> None:
        while True:
            dropped: List[Task] = []
            batch: List[Task] = []
            worker = -1
            with self._cond:
                if not self._running:
                    return
                now = time.monotonic()
                if now - self._last_sweep > _SWEEP_INTERVAL_S:
                    self._last_sweep = now
                    dropped = self._queue.remove_expired(now, self._expired)
                selected = self._queue.select()
                picked = None
                if selected is not None:
                    urgent = selected[3].priority == self._top
                    picked = self._pick_worker(urgent)
                if picked is None or selected is None:
                    if not dropped:
                        self._cond.wait(timeout=_SWEEP_INTERVAL_S)
                else:
                    key, rows, opened, head = selected
                    single = not self._enable_batching or not _batchable(key)
                    lane = picked >= self._pool.num_workers - self._lanes
                    limit = self._batch_limit(key, head, urgent and (lane or not self._lanes), now)
                    close_at = opened + self._batching.batch_timeout_micros / 1e6
                    if not single and rows < limit and now < close_at:
                        if not dropped:
                            self._cond.wait(timeout=min(close_at - now, _SWEEP_INTERVAL_S))
                    else:
                        batch, more = self._queue.take(key, limit, single, now, self._expired,
                                                       self._top if lane else 0)
                        dropped += more
                        if batch:
                            worker = picked
                            self._outstanding[worker] += sum(t.rows for t in batch)
                            self._inflight[worker] += 1
                for model, rows in self._queue.models().items():
                    self._metrics.queue_depth.set(rows, model)
                if dropped or batch:
                    touched = {t.model for t in dropped + batch} - set(self._queue.models())
                    for model in touched:
                        self._metrics.queue_depth.set(0, model)
            self._drop(dropped)
            if batch:
                self._dispatch(worker, batch)

    def _batch_limit(self, key: Hashable, head: Task, urgent: bool, now: float) -> int:
        """Rows the next batch of ``key`` may take: ``max_batch_size``, capped for urgent work
        (``urgent``: led by the highest class and bound for a lane, or for any worker when there
        are no lanes) and so that the most urgent task's deadline still holds at the recent cost
        per row."""
        limit = self._batching.max_batch_size
        if urgent and self._urgent_cap:
            limit = min(limit, self._urgent_cap)
        per_row = self._row_cost.get(key)
        if head.deadline != math.inf and per_row:
            limit = min(limit, max(1, int((head.deadline - now) / per_row)))
        return limit

    def _drop(self, tasks: List[Task]) -> None:
        for task in tasks:
            if task.future.cancelled():
                continue
            self._count_deadline(task)
            _fail(task, deadline_exceeded("deadline exceeded while waiting in the queue"))

    def _dispatch(self, worker: int, batch: List[Task]) -> None:
        live = [t for t in batch if t.future.set_running_or_notify_cancel()]
        rows = sum(t.rows for t in batch)
        if not live:
            self._finish(worker, rows, batch[0].key, None)
            return
        first = live[0]
        sizes = [t.rows for t in live]
        started = time.monotonic()
        try:
            if first.batchable:
                total = sum(sizes)
                target = padded_size(total, self._batching.allowed_batch_sizes)
                inputs = merge_inputs([t.inputs for t in live], pad_to=target)
            else:
                inputs = dict(first.inputs)
            servable = (first.model, first.version)
            future = self._pool.run(worker, servable, first.signature, inputs)
        except Exception as err:  # logged and counted; the batch's requests get INTERNAL
            _LOG.exception("dispatching a batch of %d requests failed", len(live))
            self._metrics.errors.inc("scheduler")
            for task in live:
                task.future.set_exception(internal(f"dispatch failed: {err}"))
            self._finish(worker, rows, first.key, None)
            return
        self._metrics.batch_size.observe(sum(sizes), first.model, first.signature)
        future.add_done_callback(
            lambda done: self._complete(done, worker, rows, live, sizes, started))

    def _complete(self, done, worker: int, rows: int, live: List[Task], sizes: List[int],
                  started: float) -> None:
        elapsed = time.monotonic() - started
        error = done.exception()
        if error is None:
            try:
                parts = split_outputs(done.result(), sizes) if live[0].batchable else [done.result()]
            except ServingError as err:
                error = err
        if error is not None:
            if not isinstance(error, ServingError):
                _LOG.error("model %s signature %s failed on a batch of %d: %s", live[0].model,
                           live[0].signature, sum(sizes), error)
                self._metrics.errors.inc("model")
                error = internal(f"model execution failed: {error}")
            for task in live:
                task.future.set_exception(error)
        else:
            for task, part in zip(live, parts):
                task.future.set_result(part)
        self._finish(worker, rows, live[0].key, elapsed)

    def _finish(self, worker: int, rows: int, key: Hashable, elapsed: Optional[float]) -> None:
        with self._cond:
            self._outstanding[worker] -= rows
            self._inflight[worker] -= 1
            if elapsed is not None:
                previous = self._latency.get(key)
                self._latency[key] = elapsed if previous is None else (
                    (1 - _EWMA) * previous + _EWMA * elapsed)
                per_row = elapsed / max(1, rows)
                previous = self._row_cost.get(key)
                self._row_cost[key] = per_row if previous is None else (
                    (1 - _EWMA) * previous + _EWMA * per_row)
            self._cond.notify()


def _batchable(key: Hashable) -> bool:
    return bool(key[-1])  # type: ignore[index]  # keys come from make_key


def _fail(task: Task, error: ServingError) -> None:
    if task.future.set_running_or_notify_cancel():
        task.future.set_exception(error)


def make_key(model: str, version: int, signature: str, shape_key: Tuple, batchable: bool
             ) -> Tuple[str, int, str, Tuple, bool]:
    """The batch key: requests with equal keys may share a batch."""
    return (model, version, signature, shape_key, batchable)

