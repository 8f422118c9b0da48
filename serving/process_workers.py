"""Model workers in separate processes, each with its own copy of every loaded version.

Each worker is a spawned process (fork after TensorFlow has started is unsafe) that reads
``(op, id, ...)`` messages from a pipe and answers ``(id, ok, payload)``; a reader thread in
the server resolves the matching futures.  A worker that dies fails its pending batches with
UNAVAILABLE and is replaced by a fresh process that reloads every loaded version (up to
``max_respawns`` times); until then the scheduler gives it no work.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import multiprocessing
import os
import threading
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from serving.errors import internal, unavailable
from serving.signatures import LoadError
from serving.workers import SavedModelRunner, ServableId, WorkerPool, release_memory

_LOG = logging.getLogger(__name__)


def _worker_main(conn: Any, env: Sequence[Tuple[str, str]]) -> None:
    """Entry point of a worker process: serve load/unload/run messages until 'stop' or EOF."""
    for key, value in env:
        os.environ[key] = value
    runners: Dict[ServableId, SavedModelRunner] = {}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        op, request_id = message[0], message[1]
        try:
            if op == "load":
                runners[message[2]] = SavedModelRunner(message[3])
                reply: Any = None
            elif op == "unload":
                if runners.pop(message[2], None) is not None:
                    release_memory()
                reply = None
            elif op == "run":
                runner = runners.get(message[2])
                if runner is None:
                    raise LoadError(f"version {message[2][1]} of '{message[2][0]}' is not loaded")
                reply = runner.run(message[3], message[4])
            elif op == "stop":
                conn.send((request_id, True, None))
                return
            else:
                raise ValueError(f"unknown worker op {op!r}")
            conn.send((request_id, True, reply))
        except Exception as err:  # sent back to the server, which logs and answers with it
            conn.send((request_id, False, (op, f"{type(err).__name__}: {err}")))


class _ProcessWorker:
    """The server-side end of one worker process."""

    def __init__(self, context: Any, index: int, env: Sequence[Tuple[str, str]],
                 on_exit: Optional[Callable[[int], None]] = None) -> None:
        self.index = index
        self._on_exit = on_exit
        parent, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, tuple(env)),
                                       name=f"model-worker-{index}", daemon=True)
        self.process.start()
        child.close()
        self._conn = parent
        self._send_lock = threading.Lock()
        self._pending: Dict[int, concurrent.futures.Future] = {}
        self._pending_lock = threading.Lock()
        self._ids = itertools.count()
        self.dead = False
        self._reader = threading.Thread(target=self._read_loop, name=f"worker-reader-{index}",
                                        daemon=True)
        self._reader.start()

    def call(self, op: str, *args: Any) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        request_id = next(self._ids)
        with self._pending_lock:
            if self.dead:
                future.set_exception(unavailable(f"model worker {self.index} has exited"))
                return future
            self._pending[request_id] = future
        try:
            with self._send_lock:
                self._conn.send((op, request_id) + args)
        except (OSError, ValueError, EOFError) as err:
            with self._pending_lock:
                self._pending.pop(request_id, None)
            _LOG.error("sending to model worker %d failed: %s", self.index, err)
            future.set_exception(unavailable(f"model worker {self.index} is unreachable: {err}"))
        return future

    def _read_loop(self) -> None:
        while True:
            try:
                request_id, ok, payload = self._conn.recv()
            except (EOFError, OSError):
                self._fail_all()
                if self._on_exit is not None:
                    self._on_exit(self.index)
                return
            with self._pending_lock:
                future = self._pending.pop(request_id, None)
            if future is None or not future.set_running_or_notify_cancel():
                continue
            if ok:
                future.set_result(payload)
            else:
                op, message = payload
                future.set_exception(LoadError(message) if op == "load" else internal(message))

    def _fail_all(self) -> None:
        with self._pending_lock:
            self.dead = True
            pending, self._pending = self._pending, {}
        if pending:
            _LOG.error("model worker %d exited with %d batches pending", self.index, len(pending))
        for future in pending.values():
            if future.set_running_or_notify_cancel():
                future.set_exception(unavailable(f"model worker {self.index} has exited"))

    def stop(self, timeout: float) -> None:
        self._on_exit = None
        if not self.dead:
            try:
                self.call("stop").result(timeout=timeout)
            except Exception as err:  # a worker that cannot stop is killed below
                _LOG.warning("model worker %d did not stop cleanly: %s", self.index, err)
        self.process.join(timeout=timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=timeout)
        self._conn.close()


class ProcessWorkerPool(WorkerPool):
    """N worker processes; every version is loaded in each of them.

    Args:
        num_workers: number of processes.
        env: environment variables set in each worker before TensorFlow is imported.
        load_timeout_s: how long a load may take on one worker.
    """

    shares_models = False

    def __init__(self, num_workers: int, env: Optional[Sequence[Tuple[str, str]]] = None,
                 load_timeout_s: float = 300.0, max_respawns: int = 10) -> None:
        self.num_workers = num_workers
        self._timeout = load_timeout_s
        self._env = tuple(env or ())
        self._context = multiprocessing.get_context("spawn")
        self._loaded: Dict[ServableId, str] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._respawns_left = max_respawns
        self.respawns = 0
        self._workers = [self._spawn(i) for i in range(num_workers)]

    def _spawn(self, index: int) -> _ProcessWorker:
        return _ProcessWorker(self._context, index, self._env, on_exit=self._on_exit)

    def _on_exit(self, index: int) -> None:
        with self._lock:
            if self._closed or self._respawns_left <= 0:
                _LOG.error("model worker %d exited and is not replaced", index)
                return
            self._respawns_left -= 1
        threading.Thread(target=self._respawn, args=(index,), name=f"respawn-{index}",
                         daemon=True).start()

    def _respawn(self, index: int) -> None:
        """Replace a dead worker and load into it every version the others hold."""
        _LOG.error("model worker %d exited; starting a replacement", index)
        worker = self._spawn(index)
        with self._lock:
            loaded = dict(self._loaded)
        for servable, path in loaded.items():
            try:
                worker.call("load", servable, path).result(timeout=self._timeout)
            except Exception as err:  # the replacement is unusable: logged, and left dead
                _LOG.error("replacement worker %d cannot load %s: %s", index, servable, err)
                worker.stop(timeout=5.0)
                return
        with self._lock:
            if self._closed:
                worker.stop(timeout=5.0)
                return
            self._workers[index] = worker
            self.respawns += 1

    def load(self, servable: ServableId, path: str) -> None:
        futures = [w.call("load", servable, path) for w in self._workers]
        errors = []
        for future in futures:
            try:
                future.result(timeout=self._timeout)
            except concurrent.futures.TimeoutError:
                errors.append(f"load timed out after {self._timeout:.0f}s")
            except Exception as err:  # collected and raised below as one LoadError
                errors.append(str(err))
        if errors:
            self.unload(servable)
            raise LoadError(errors[0])
        with self._lock:
            self._loaded[servable] = path

    def unload(self, servable: ServableId) -> None:
        with self._lock:
            self._loaded.pop(servable, None)
        for worker in self._workers:
            worker.call("unload", servable)

    def run(self, worker: int, servable: ServableId, signature: str,
            inputs: Mapping[str, np.ndarray]) -> "concurrent.futures.Future[Dict[str, np.ndarray]]":
        return self._workers[worker].call("run", servable, signature, dict(inputs))

    def alive(self, worker: int) -> bool:
        return not self._workers[worker].dead

    def close(self) -> None:
        with self._lock:
            self._closed = True
        for worker in self._workers:
            worker.stop(timeout=5.0)

    def pid(self, worker: int) -> Optional[int]:
        """The process id of a worker (for operations and tests)."""
        return self._workers[worker].process.pid
