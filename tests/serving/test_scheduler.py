"""Scheduler and queue behaviour with a fake worker pool (no TensorFlow, deterministic)."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Dict, List, Tuple

import grpc
import numpy as np
import pytest

from serving.config import BatchingConfig
from serving.errors import ServingError
from serving.metrics import ServingMetrics
from serving.scheduler import Scheduler, make_key
from serving.task_queue import QueueFull, Task, TaskQueue
from serving.workers import WorkerPool

CLASSES = ("low", "normal", "high")
LOW, NORMAL, HIGH = range(3)


class GatedPool(WorkerPool):
    """Workers that echo ``x * 2`` once ``gate`` is open, recording every batch they run."""

    shares_models = True

    def __init__(self, num_workers: int, delay_s: float = 0.0, per_row_s: float = 0.0,
                 worker_delay_s: Dict[int, float] | None = None) -> None:
        self.num_workers = num_workers
        self.gate = threading.Event()
        self.delay_s = delay_s
        self.worker_delay_s = dict(worker_delay_s or {})
        self.per_row_s = per_row_s
        self.batches: List[Tuple[int, List[int]]] = []
        self._lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=num_workers)

    def load(self, servable, path) -> None:
        pass

    def unload(self, servable) -> None:
        pass

    def run(self, worker, servable, signature, inputs):
        def work() -> Dict[str, np.ndarray]:
            assert self.gate.wait(timeout=10)
            with self._lock:
                self.batches.append((worker, inputs["x"].tolist()))
            time.sleep(self.delay_s + self.worker_delay_s.get(worker, 0.0)
                       + self.per_row_s * len(inputs["x"]))
            return {"y": inputs["x"] * 2}

        return self._executor.submit(work)

    def close(self) -> None:
        self.gate.set()
        self._executor.shutdown(wait=True)


def _task(value: int, priority: int = NORMAL, deadline: float = float("inf"), rows: int = 1) -> Task:
    return Task(key=make_key("m", 1, "sig", (("x", ()),), True), model="m", version=1,
                signature="sig", inputs={"x": np.full(rows, value)}, rows=rows,
                priority=priority, deadline=deadline)


@pytest.fixture
def scheduler_for():
    made = []

    def _make(pool: GatedPool, lanes=None, **batching) -> Scheduler:
        settings = dict(max_batch_size=4, batch_timeout_micros=0, num_batch_threads=pool.num_workers,
                        max_enqueued_batches=2)
        settings.update(batching)
        scheduler = Scheduler(pool, BatchingConfig(**settings), True, CLASSES, ServingMetrics(),
                              **(lanes or {}))
        scheduler.start()
        made.append((scheduler, pool))
        return scheduler

    yield _make
    for scheduler, pool in made:
        pool.gate.set()
        scheduler.stop()
        pool.close()


def _wait(predicate, timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.005)


def test_results_are_split_back_per_request(scheduler_for) -> None:
    pool = GatedPool(1)
    scheduler = scheduler_for(pool)
    pool.gate.set()
    tasks = [_task(i, rows=2) for i in range(3)]
    for task in tasks:
        scheduler.submit(task)
    for i, task in enumerate(tasks):
        assert task.future.result(timeout=5)["y"].tolist() == [2 * i, 2 * i]


def test_higher_priority_runs_first_on_a_saturated_worker(scheduler_for) -> None:
    pool = GatedPool(1)
    scheduler = scheduler_for(pool, max_batch_size=1, max_enqueued_batches=10)
    blocker = _task(0)
    scheduler.submit(blocker)
    _wait(lambda: scheduler.outstanding() == [1])  # the worker is busy with the blocker
    order = [(1, LOW), (2, NORMAL), (3, HIGH), (4, LOW), (5, HIGH)]
    tasks = [_task(v, p) for v, p in order]
    for task in tasks:
        scheduler.submit(task)
    pool.gate.set()
    for task in tasks:
        task.future.result(timeout=5)
    assert [values[0] for _, values in pool.batches] == [0, 3, 5, 2, 1, 4]


def test_an_urgent_lane_runs_high_priority_beside_full_heavy_batches(scheduler_for) -> None:
    pool = GatedPool(3, delay_s=1.0)  # workers 0 and 1 regular, worker 2 the urgent lane
    scheduler = scheduler_for(pool, max_batch_size=4, max_enqueued_batches=2,
                              batch_timeout_micros=200_000, lanes={"urgent_workers": 1})
    pool.gate.set()
    heavy = [_task(i, LOW) for i in range(12)]  # a saturated queue: two full batches run, 4 wait
    for task in heavy[:8]:
        scheduler.submit(task)
    _wait(lambda: scheduler.outstanding()[:2] == [4, 4])
    for task in heavy[8:]:
        scheduler.submit(task)
    urgent = _task(100, HIGH)
    scheduler.submit(urgent)
    _wait(lambda: any(values == [100] for _, values in pool.batches))
    assert not any(task.future.done() for task in heavy)  # it did not wait for a heavy batch
    for task in heavy + [urgent]:
        task.future.result(timeout=10)
    assert [(w, v) for w, v in pool.batches if v == [100]] == [(2, [100])]
    assert all(worker < 2 for worker, values in pool.batches if values != [100])  # lane: urgent only


def test_batches_led_by_the_highest_class_are_capped(scheduler_for) -> None:
    pool = GatedPool(1)
    scheduler = scheduler_for(pool, max_batch_size=4, max_enqueued_batches=4,
                              lanes={"urgent_max_batch_size": 2})
    scheduler.submit(_task(0, LOW))
    _wait(lambda: scheduler.outstanding() == [1])
    tasks = [_task(v, HIGH) for v in (1, 2, 3, 4)] + [_task(5, LOW), _task(6, LOW)]
    for task in tasks:
        scheduler.submit(task)
    pool.gate.set()
    for task in tasks:
        task.future.result(timeout=5)
    assert [values for _, values in pool.batches] == [[0], [1, 2], [3, 4], [5, 6]]


def test_with_a_lane_regular_workers_take_the_highest_class_in_full_batches(scheduler_for) -> None:
    """A flood of urgent work keeps full batches' throughput: only the lane's batches are capped."""
    # worker 0 regular, worker 1 the urgent lane; the lane's batches are slow, so the regular
    # worker is free first once the gate opens, with six or more urgent tasks still queued
    pool = GatedPool(2, worker_delay_s={1: 0.3})
    scheduler = scheduler_for(pool, max_batch_size=4, max_enqueued_batches=4,
                              lanes={"urgent_workers": 1, "urgent_max_batch_size": 2})
    scheduler.submit(_task(0, LOW))
    _wait(lambda: scheduler.outstanding()[0] == 1)  # the regular worker is busy
    urgent = [_task(v, HIGH) for v in range(1, 9)]
    for task in urgent:
        scheduler.submit(task)
    pool.gate.set()
    for task in urgent:
        task.future.result(timeout=5)
    regular = [values for worker, values in pool.batches if worker == 0 and values != [0]]
    lane = [values for worker, values in pool.batches if worker == 1]
    assert lane and all(len(values) <= 2 for values in lane), pool.batches
    assert any(len(values) == 4 for values in regular), pool.batches


def test_batch_size_shrinks_to_fit_the_most_urgent_deadline(scheduler_for) -> None:
    pool = GatedPool(1, per_row_s=0.05)
    scheduler = scheduler_for(pool, max_batch_size=8, max_enqueued_batches=2)
    pool.gate.set()
    first = _task(0, rows=2)
    scheduler.submit(first)
    first.future.result(timeout=5)  # the scheduler has seen ~0.05 s per row
    blocker = _task(1, rows=2)
    scheduler.submit(blocker)
    _wait(lambda: scheduler.outstanding() == [2])
    deadline = time.monotonic() + 0.35  # after the blocker, about 5 rows' time is left
    tasks = [_task(10 + i, deadline=deadline) for i in range(8)]
    for task in tasks:
        scheduler.submit(task)
    concurrent.futures.wait([t.future for t in tasks], timeout=10)
    after = [values for _, values in pool.batches[2:]]
    assert after and 1 <= len(after[0]) <= 6  # a full batch of 8 would take 0.4 s


def test_earliest_deadline_first_within_a_class(scheduler_for) -> None:
    pool = GatedPool(1)
    scheduler = scheduler_for(pool, max_batch_size=1, max_enqueued_batches=10)
    scheduler.submit(_task(0))
    _wait(lambda: scheduler.outstanding() == [1])
    now = time.monotonic()
    tasks = [_task(1, deadline=now + 30), _task(2), _task(3, deadline=now + 10)]
    for task in tasks:
        scheduler.submit(task)
    pool.gate.set()
    for task in tasks:
        task.future.result(timeout=5)
    assert [values[0] for _, values in pool.batches] == [0, 3, 1, 2]


def test_batches_fill_up_to_max_batch_size(scheduler_for) -> None:
    pool = GatedPool(1)
    scheduler = scheduler_for(pool, max_batch_size=4, max_enqueued_batches=4)
    scheduler.submit(_task(0))
    _wait(lambda: scheduler.outstanding() == [1])
    tasks = [_task(v) for v in range(1, 7)]
    for task in tasks:
        scheduler.submit(task)
    pool.gate.set()
    for task in tasks:
        task.future.result(timeout=5)
    assert [values for _, values in pool.batches] == [[0], [1, 2, 3, 4], [5, 6]]


def test_batch_timeout_waits_for_more_requests(scheduler_for) -> None:
    pool = GatedPool(1)
    pool.gate.set()
    scheduler = scheduler_for(pool, max_batch_size=4, batch_timeout_micros=300_000)
    first, second = _task(1), _task(2)
    scheduler.submit(first)
    time.sleep(0.05)
    scheduler.submit(second)
    first.future.result(timeout=5)
    assert [values for _, values in pool.batches] == [[1, 2]]


def test_full_queue_refuses_at_once_and_high_priority_evicts_low(scheduler_for) -> None:
    pool = GatedPool(1)
    scheduler = scheduler_for(pool, max_batch_size=1, max_enqueued_batches=2)
    scheduler.submit(_task(0))
    _wait(lambda: scheduler.outstanding() == [1])
    low = [_task(1, LOW), _task(2, LOW)]
    for task in low:
        scheduler.submit(task)
    started = time.monotonic()
    with pytest.raises(ServingError) as caught:
        scheduler.submit(_task(3, LOW))
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert time.monotonic() - started < 0.5
    high = _task(4, HIGH)
    scheduler.submit(high)
    with pytest.raises(ServingError) as caught:
        low[1].future.result(timeout=5)  # the newest low request was shed
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    pool.gate.set()
    assert high.future.result(timeout=5)["y"].tolist() == [8]
    assert low[0].future.result(timeout=5)["y"].tolist() == [2]


def test_deadlines_passed_or_expiring_in_queue_never_run(scheduler_for) -> None:
    pool = GatedPool(1)
    scheduler = scheduler_for(pool, max_batch_size=1, max_enqueued_batches=10)
    with pytest.raises(ServingError) as caught:
        scheduler.submit(_task(1, deadline=time.monotonic() - 0.001))
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    scheduler.submit(_task(0))
    _wait(lambda: scheduler.outstanding() == [1])
    doomed = _task(2, deadline=time.monotonic() + 0.05)
    scheduler.submit(doomed)
    with pytest.raises(ServingError) as caught:
        doomed.future.result(timeout=5)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    pool.gate.set()
    survivor = _task(3)
    scheduler.submit(survivor)
    survivor.future.result(timeout=5)
    assert [values[0] for _, values in pool.batches] == [0, 3]


def test_cancelled_requests_are_skipped(scheduler_for) -> None:
    pool = GatedPool(1)
    scheduler = scheduler_for(pool, max_batch_size=1, max_enqueued_batches=10)
    scheduler.submit(_task(0))
    _wait(lambda: scheduler.outstanding() == [1])
    cancelled, kept = _task(1), _task(2)
    scheduler.submit(cancelled)
    scheduler.submit(kept)
    assert cancelled.future.cancel()
    pool.gate.set()
    kept.future.result(timeout=5)
    assert [values[0] for _, values in pool.batches] == [0, 2]


def test_batches_go_to_the_worker_with_least_outstanding_work(scheduler_for) -> None:
    pool = GatedPool(3)
    scheduler = scheduler_for(pool, max_batch_size=4, max_enqueued_batches=8)
    big = _task(1, rows=4)
    scheduler.submit(big)
    _wait(lambda: sorted(scheduler.outstanding()) == [0, 0, 4])
    busy = scheduler.outstanding().index(4)
    small = _task(2, rows=1)
    scheduler.submit(small)
    _wait(lambda: sum(scheduler.outstanding()) == 5)
    loads = scheduler.outstanding()
    assert loads[busy] == 4 and sorted(loads) == [0, 1, 4]
    pool.gate.set()
    big.future.result(timeout=5)
    small.future.result(timeout=5)
    assert _wait(lambda: scheduler.outstanding() == [0, 0, 0]) is None


def test_oversized_request_is_invalid(scheduler_for) -> None:
    scheduler = scheduler_for(GatedPool(1), max_batch_size=2)
    with pytest.raises(ServingError) as caught:
        scheduler.submit(_task(1, rows=3))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_model_failure_fails_its_batch_only(scheduler_for) -> None:
    class Failing(GatedPool):
        def run(self, worker, servable, signature, inputs):
            if inputs["x"][0] == 13:
                future = concurrent.futures.Future()
                future.set_exception(RuntimeError("boom"))
                return future
            return super().run(worker, servable, signature, inputs)

    pool = Failing(1)
    pool.gate.set()
    scheduler = scheduler_for(pool, max_batch_size=1)
    bad, good = _task(13), _task(1)
    scheduler.submit(bad)
    scheduler.submit(good)
    with pytest.raises(ServingError) as caught:
        bad.future.result(timeout=5)
    assert caught.value.code == grpc.StatusCode.INTERNAL and "boom" in caught.value.message
    assert good.future.result(timeout=5)["y"].tolist() == [2]


def test_queue_eviction_order_and_capacity() -> None:
    queue = TaskQueue(3, lambda model: 3)
    first, second, third = _task(1, LOW), _task(2, LOW), _task(3, NORMAL)
    for task in (first, second, third):
        assert queue.push(task, 0.0) == []
    assert queue.rows("m") == 3
    assert queue.push(_task(4, HIGH), 0.0) == [second]  # lowest class, newest first
    with pytest.raises(QueueFull):
        queue.push(_task(5, LOW), 0.0)
    with pytest.raises(QueueFull):
        queue.push(_task(6, HIGH, rows=3), 0.0)  # would need to evict an equal class
    batch, dropped = queue.take(queue.select()[0], 4, False, 0.0, lambda t, now: False)
    assert [t.inputs["x"][0] for t in batch] == [4, 3, 1] and dropped == []
    assert len(queue) == 0
