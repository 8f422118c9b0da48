"""``ModelServer``: the whole server in one object, to start and stop in-process.

``start()`` loads what is on disk (blocking, like ``tensorflow_model_server``), binds the gRPC
and REST ports and returns them (``BindError`` when a port is taken); ``stop(grace_s)`` drains (readiness false, new requests
refused, in-flight ones finish) and shuts everything down.  ``install_signal_handlers`` makes
SIGTERM/SIGINT start that drain; ``wait`` blocks until the server has stopped.  Extra REST
routes (``extra_routes``) are mounted on the REST front end and closed when the server stops;
this is how a higher layer (the events route) joins the server without the server knowing it.
``make_pool`` builds the model workers for a worker mode.  With ``frontend_processes`` > 1 the
front ends run in that many processes sharing the ports (``serving.frontends``).  Tests, benchmarks and the CLI all
use this class.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from typing import Any, Mapping, Optional, Tuple

from serving.config import ServerConfig, ServingConfigError
from serving.core import ServingCore
from serving.frontends import FrontendProcesses
from serving.grpc_service import GrpcFrontend
from serving.metrics import ServingMetrics
from serving.rest_service import RestFrontend, RestRoute
from serving.scheduler import Scheduler
from serving.signatures import SignatureSpec
from serving.version_manager import VersionManager
from serving.warmup import replay_warmup_requests
from serving.process_workers import ProcessWorkerPool
from serving.workers import ThreadWorkerPool, WorkerPool, limit_tf_threads, tf_thread_env

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BoundPorts:
    """The ports a started server listens on (``rest`` is None when REST is disabled)."""

    grpc: int
    rest: Optional[int]


class BindError(OSError):
    """A front end cannot bind its port (in use, or not an address of this machine)."""


def make_pool(mode: str, num_workers: int, load_timeout_s: float = 300.0,
              intra_op: int = 0, inter_op: int = 0) -> WorkerPool:
    """Build the pool for a worker mode.

    Args:
        mode: 'thread' or 'process'.
        num_workers: number of workers.
        load_timeout_s: how long loading one version may take (process mode).
        intra_op: TensorFlow intra-op threads per runtime (0: default).
        inter_op: TensorFlow inter-op threads per runtime (0: default).

    Returns:
        The started pool.
    """
    if mode == "process":
        return ProcessWorkerPool(num_workers, env=tf_thread_env(intra_op, inter_op),
                                 load_timeout_s=load_timeout_s)
    if mode != "thread":
        raise ValueError(f"unknown worker mode {mode!r}")
    limit_tf_threads(intra_op, inter_op)
    return ThreadWorkerPool(num_workers)


class ModelServer:
    """TF Serving's API on the project's scheduler.

    Args:
        config: the server settings.
        pool: model workers to use instead of building them from ``config`` (tests).
        extra_routes: extra REST POST routes, path -> route; the server closes them on stop.

    Raises:
        ServingConfigError: extra routes without the REST front end.
    """

    def __init__(self, config: ServerConfig, pool: Optional[WorkerPool] = None,
                 extra_routes: Optional[Mapping[str, RestRoute]] = None) -> None:
        if extra_routes and config.rest_port is None:
            raise ServingConfigError(f"REST routes {sorted(extra_routes)} need the REST front end: "
                                     "set rest_port")
        if extra_routes and config.frontend_processes > 1:
            raise ServingConfigError(f"REST routes {sorted(extra_routes)} are served in-process "
                                     "only: set frontend_processes to 1")
        self.config = config
        self._routes: Mapping[str, Any] = dict(extra_routes or {})
        self.metrics = ServingMetrics()
        self._pool = pool
        self._grpc: Optional[GrpcFrontend] = None
        self._rest: Optional[RestFrontend] = None
        self.frontends: Optional[FrontendProcesses] = None
        self._scheduler: Optional[Scheduler] = None
        self.versions: Optional[VersionManager] = None
        self.core: Optional[ServingCore] = None
        self.ports: Optional[BoundPorts] = None
        self._stop_requested = threading.Event()
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    def start(self) -> BoundPorts:
        """Load the models, start the scheduler and both front ends.

        Returns:
            The bound ports.
        """
        config = self.config
        batching = config.batching
        if self._pool is None:
            scheduling = config.scheduling
            self._pool = make_pool(scheduling.worker_mode,
                                   batching.num_batch_threads + scheduling.urgent_workers,
                                   config.load_timeout_s, scheduling.tf_intra_op_threads,
                                   scheduling.tf_inter_op_threads)
        self._scheduler = Scheduler(self._pool, batching, config.enable_batching,
                                    config.scheduling.priority_classes, self.metrics,
                                    config.scheduling.worker_queue_depth,
                                    config.scheduling.urgent_workers,
                                    config.scheduling.urgent_max_batch_size)
        self._scheduler.start()
        self.versions = VersionManager(config.models, self._pool, self.metrics,
                                       config.poll_interval_s, warmup=self._warmup)
        self.core = ServingCore(config, self.versions, self._scheduler, self.metrics)
        try:
            self.versions.start()
            if config.frontend_processes > 1:
                self.frontends = FrontendProcesses(self.core, config)
                try:
                    grpc_port, rest_port = self.frontends.start()
                except OSError as err:
                    raise BindError(str(err)) from None
            else:
                grpc_port, rest_port = self._start_frontends()
        except BaseException:
            self._shutdown(0.0)
            raise
        self.ports = BoundPorts(grpc=grpc_port, rest=rest_port)
        _LOG.info("serving %s on %s (gRPC %d, REST %s)", [m.name for m in config.models],
                  config.host, grpc_port, rest_port)
        return self.ports

    def _start_frontends(self) -> Tuple[int, Optional[int]]:
        """The gRPC and REST front ends in this process; returns their ports."""
        config = self.config
        assert self.core is not None
        self._grpc = GrpcFrontend(self.core, config.host, config.grpc_port,
                                  config.limits.max_body_bytes)
        try:
            grpc_port = self._grpc.start()
        except (OSError, RuntimeError) as err:  # grpc reports a taken port as RuntimeError
            raise BindError(f"cannot bind the gRPC port {config.host}:{config.grpc_port}: "
                            f"{err}") from None
        rest_port = None
        if config.rest_port is not None:
            try:
                self._rest = RestFrontend(self.core, config.host, config.rest_port,
                                          routes=self._routes)
            except OSError as err:
                raise BindError(f"cannot bind the REST port {config.host}:{config.rest_port}: "
                                f"{err.strerror or err}") from None
            rest_port = self._rest.start()
        return grpc_port, rest_port

    def _warmup(self, servable: Tuple[str, int], path: str,
                specs: Mapping[str, SignatureSpec]) -> None:
        assert self._pool is not None
        count = replay_warmup_requests(self._pool, servable, path, specs,
                                       self.config.max_warmup_records,
                                       self.config.limits.max_tensor_elements,
                                       self.config.load_timeout_s)
        if count:
            self.metrics.warmup.inc(servable[0], amount=count)
            _LOG.info("model %s: version %d warmed up with %d requests", servable[0],
                      servable[1], count)

    def drain(self, grace_s: float) -> bool:
        """Turn readiness off, refuse new requests and wait for in-flight ones.

        Returns:
            True when every in-flight request finished within ``grace_s``.
        """
        if self.core is None:
            return True
        self.core.begin_drain()
        if self.frontends is not None:
            self.frontends.drain()
        return self.core.wait_idle(grace_s)

    def stop(self, grace_s: Optional[float] = None) -> None:
        """Drain (up to ``grace_s``, default the configured grace) and shut down."""
        grace = self.config.drain_grace_s if grace_s is None else grace_s
        with self._stop_lock:
            if self._stopped.is_set():
                return
            if not self.drain(grace):
                _LOG.warning("drain grace of %.1fs ended with %d requests in flight", grace,
                             self.core.inflight if self.core else 0)
            self._shutdown(min(grace, 1.0))

    def _shutdown(self, grace_s: float) -> None:
        if self.frontends is not None:
            self.frontends.stop(grace_s)
        if self._grpc is not None:
            self._grpc.stop(grace_s)
        if self._rest is not None:
            self._rest.stop()
        for path, route in self._routes.items():
            try:
                route.close()
            except Exception:  # one route's failure must not keep the rest open: logged
                _LOG.exception("closing REST route %s failed", path)
        self._routes = {}
        if self.versions is not None:
            self.versions.stop()
        if self._scheduler is not None:
            self._scheduler.stop()
        if self._pool is not None:
            self._pool.close()
        self._stopped.set()
        self._stop_requested.set()
        _LOG.info("model server stopped")

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT start a drain (call from the main thread)."""
        def _on_signal(signum: int, frame: object) -> None:
            _LOG.info("received %s: draining", signal.Signals(signum).name)
            if self.core is not None:
                self.core.begin_drain()
            self._stop_requested.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)

    def wait(self, timeout_s: Optional[float] = None) -> bool:
        """Block until a stop is requested (signal or ``request_stop``), then stop.

        Returns:
            True when the server stopped, False when ``timeout_s`` passed first.
        """
        end = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._stop_requested.wait(0.2):  # short waits keep signals prompt
            if end is not None and time.monotonic() >= end:
                return False
        self.stop()
        return True

    def request_stop(self) -> None:
        """Ask ``wait`` to drain and stop (thread-safe)."""
        if self.core is not None:
            self.core.begin_drain()
        self._stop_requested.set()

    def __enter__(self) -> "ModelServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop(grace_s=1.0)
