"""Model workers: where batches run.  The interface, the SavedModel runner and the thread pool.

A ``WorkerPool`` owns N workers; the scheduler picks the worker (least outstanding work) and
calls ``run(worker, servable, signature, inputs)``, which returns a future of the outputs.
``ThreadWorkerPool`` shares one loaded SavedModel between N threads (TensorFlow releases the
GIL while ops run) and frees an unloaded version's memory at once (``release_memory``);
``serving.process_workers.ProcessWorkerPool`` runs versions in worker processes.
``serving.server.make_pool`` picks one; the benchmark measures both.
"""

from __future__ import annotations

import abc
import concurrent.futures
import ctypes
import gc
import logging
import queue
import threading
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import numpy as np

from core.custom_ops import load_saved_model, missing_ops_error
from serving.signatures import SERVE_TAG, LoadError

_LOG = logging.getLogger(__name__)

ServableId = Tuple[str, int]  # (model name, version)


class SavedModelRunner:
    """A loaded SavedModel whose signatures are called with numpy inputs."""

    def __init__(self, path: str) -> None:
        """Load the SavedModel at ``path``.

        Custom ops of installed packages (ScaNN's) are registered first (``core.custom_ops``).

        Raises:
            LoadError: TensorFlow cannot load it (one line naming the package when it needs
                custom ops that are not installed).
        """
        import tensorflow as tf  # imported where used: the scheduler runs without TensorFlow

        self._tf = tf
        try:
            self._model = load_saved_model(path, tags=[SERVE_TAG])
        except (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError, AttributeError,
                tf.errors.OpError) as err:
            missing = missing_ops_error(path, err)
            raise LoadError(missing or f"TensorFlow cannot load {path}: {type(err).__name__}: {err}") from None
        self._signatures = dict(self._model.signatures)

    def run(self, signature: str, inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Call one signature.

        Args:
            signature: the signature key.
            inputs: input name -> array of the signature's dtype.

        Returns:
            Output name -> numpy array (strings as object arrays of bytes).
        """
        function = self._signatures[signature]
        tensors = {name: self._tf.convert_to_tensor(value) for name, value in inputs.items()}
        outputs = function(**tensors)
        return {name: value.numpy() for name, value in outputs.items()}


class WorkerPool(abc.ABC):
    """N model workers that load versions and run batches."""

    num_workers: int
    shares_models: bool  # True when one load serves every worker (warm up one worker only)

    @abc.abstractmethod
    def load(self, servable: ServableId, path: str) -> None:
        """Load a version on every worker (blocking).  Raises LoadError."""

    @abc.abstractmethod
    def unload(self, servable: ServableId) -> None:
        """Release a version on every worker."""

    @abc.abstractmethod
    def run(self, worker: int, servable: ServableId, signature: str,
            inputs: Mapping[str, np.ndarray]) -> "concurrent.futures.Future[Dict[str, np.ndarray]]":
        """Run one batch on ``worker``; the future holds the outputs or the exception."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop the workers (pending batches fail)."""

    def alive(self, worker: int) -> bool:
        """Whether ``worker`` can take batches."""
        return True


class _WorkerThread(threading.Thread):
    def __init__(self, index: int, lookup: Callable[[ServableId], Any]) -> None:
        super().__init__(name=f"model-worker-{index}", daemon=True)
        self._inbox: "queue.SimpleQueue[Optional[tuple]]" = queue.SimpleQueue()
        self._lookup = lookup

    def submit(self, item: Optional[tuple]) -> None:
        self._inbox.put(item)

    def run(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            future, servable, signature, inputs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                runner = self._lookup(servable)
                future.set_result(runner.run(signature, inputs))
            except Exception as err:  # the model's failure is the batch's answer, not ours
                future.set_exception(err)


class ThreadWorkerPool(WorkerPool):
    """N threads sharing each loaded SavedModel.

    Args:
        num_workers: number of worker threads.
        loader: builds a runner from a path (default ``SavedModelRunner``); tests pass fakes.
    """

    shares_models = True

    def __init__(self, num_workers: int,
                 loader: Optional[Callable[[str], Any]] = None) -> None:
        self.num_workers = num_workers
        self._loader = loader or SavedModelRunner
        self._models: Dict[ServableId, Any] = {}
        self._lock = threading.Lock()
        self._threads = [_WorkerThread(i, self._get) for i in range(num_workers)]
        for thread in self._threads:
            thread.start()

    def _get(self, servable: ServableId) -> Any:
        with self._lock:
            runner = self._models.get(servable)
        if runner is None:
            raise LoadError(f"version {servable[1]} of model '{servable[0]}' is not loaded")
        return runner

    def load(self, servable: ServableId, path: str) -> None:
        runner = self._loader(path)
        with self._lock:
            self._models[servable] = runner

    def unload(self, servable: ServableId) -> None:
        with self._lock:
            runner = self._models.pop(servable, None)
        if runner is not None:
            del runner
            release_memory()

    def run(self, worker: int, servable: ServableId, signature: str,
            inputs: Mapping[str, np.ndarray]) -> "concurrent.futures.Future[Dict[str, np.ndarray]]":
        future: "concurrent.futures.Future[Dict[str, np.ndarray]]" = concurrent.futures.Future()
        self._threads[worker].submit((future, servable, signature, inputs))
        return future

    def close(self) -> None:
        for thread in self._threads:
            thread.submit(None)
        for thread in self._threads:
            thread.join(timeout=5.0)
        with self._lock:
            self._models.clear()


def release_memory() -> None:
    """Free what unloaded models left behind in this process.

    A loaded SavedModel is a web of reference cycles (trackables, functions, their graphs)
    that only a full collection frees; in a process with TensorFlow's many long-lived objects
    Python's generational collector runs one rarely, so without this every hot reload would
    add a whole model to the heap.  ``malloc_trim`` then hands freed heap pages back to the
    system (glibc only; elsewhere a no-op).
    """
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError) as err:  # not glibc: the collection alone has to do
        _LOG.debug("malloc_trim unavailable: %s", err)


def tf_thread_env(intra_op: int, inter_op: int) -> Tuple[Tuple[str, str], ...]:
    """Environment variables that cap a fresh process's TensorFlow thread pools (0: default)."""
    env = []
    if intra_op:
        env.append(("TF_NUM_INTRAOP_THREADS", str(intra_op)))
    if inter_op:
        env.append(("TF_NUM_INTEROP_THREADS", str(inter_op)))
    return tuple(env)


def limit_tf_threads(intra_op: int, inter_op: int) -> bool:
    """Cap this process's TensorFlow thread pools (0: keep the default).

    Returns:
        False when TensorFlow had already started and kept its settings (logged).
    """
    if not intra_op and not inter_op:
        return True
    import tensorflow as tf

    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError as err:
        _LOG.warning("TensorFlow thread limits not applied (the runtime already started): %s", err)
        return False
    return True
