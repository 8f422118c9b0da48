"""The request path shared by the gRPC and REST front ends.

``ServingCore.predict`` resolves and pins a model version, decodes and checks the inputs
against the chosen signature, and hands a task to the scheduler; the returned
``PendingPredict`` resolves to the outputs.  The core counts requests in flight (for the
SIGTERM drain), refuses new ones once draining, and records per model/version/priority
request counts and latencies.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import threading
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import grpc
import numpy as np
from tensorflow.core.protobuf import meta_graph_pb2

from core.features import SERVING_SIGNATURE
from serving.config import SchedulingConfig, ServerConfig
from serving.errors import ServingError, invalid_argument, resource_exhausted, unavailable
from serving.metrics import ServingMetrics
from serving.scheduler import Scheduler, make_key
from serving.signatures import SignatureSpec, batch_signature, raise_if_unknown, validate_inputs
from serving.task_queue import Task
from serving.version_manager import VersionManager, VersionRecord

Decoder = Callable[[SignatureSpec], Dict[str, np.ndarray]]


@dataclasses.dataclass
class PendingPredict:
    """An admitted request: ``future`` resolves to the filtered outputs."""

    model: str
    version: int
    signature: str
    future: "concurrent.futures.Future[Dict[str, np.ndarray]]"
    output_names: Sequence[str]


class ServingCore:
    """Predict, status and metadata, independent of the wire format.

    Args:
        config: the server settings.
        versions: the version manager.
        scheduler: the started scheduler.
        metrics: the server's metrics.
    """

    def __init__(self, config: ServerConfig, versions: VersionManager, scheduler: Scheduler,
                 metrics: ServingMetrics) -> None:
        self.config = config
        self.versions = versions
        self.scheduler = scheduler
        self.metrics = metrics
        self._classes = config.scheduling.priority_classes
        self.config_names = frozenset(m.name for m in config.models)
        self._lock = threading.Condition()
        self._inflight = 0
        self._draining = False
        self._shed_below = 0
        self._door = config.frontend_processes == 1  # else front-end processes hold the door

    # ---- drain ------------------------------------------------------------------------------
    @property
    def draining(self) -> bool:
        """True once ``begin_drain`` was called: new requests are refused."""
        return self._draining

    @property
    def inflight(self) -> int:
        """Predict requests admitted and not yet answered."""
        with self._lock:
            return self._inflight

    def begin_drain(self) -> None:
        """Refuse new requests from now on (readiness turns false)."""
        with self._lock:
            self._draining = True

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request is in flight; returns False on timeout."""
        end = time.monotonic() + timeout_s
        with self._lock:
            while self._inflight > 0:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(timeout=left)
            return True

    def set_shed_level(self, level: int) -> None:
        """Refuse the ``level`` lowest priority classes at admission (0: admit all)."""
        self._shed_below = level
        self.metrics.shed_level.set(level)

    def ready(self) -> bool:
        """Serving traffic: not draining and every model has an available version."""
        return not self._draining and self.versions.ready()

    # ---- predict ----------------------------------------------------------------------------
    def priority_index(self, name: Optional[str]) -> int:
        """The class index of a priority name (empty: the default class).

        Raises:
            ServingError: INVALID_ARGUMENT for an unknown class.
        """
        return priority_level(self.config.scheduling, name)

    def predict(self, model: str, version: Optional[int], label: Optional[str],
                signature_name: str, decode: Decoder, output_filter: Sequence[str] = (),
                priority: Optional[str] = None, deadline: Optional[float] = None) -> PendingPredict:
        """Admit one Predict request.

        Args:
            model: model name.
            version: specific version or None.
            label: version label or None.
            signature_name: signature key ('' means serving_default).
            decode: turns the wire inputs into arrays, given the signature spec.
            output_filter: output names to return (empty: all).
            priority: priority class name (None/'' = default).
            deadline: ``time.monotonic()`` instant after which the answer is useless.

        Returns:
            The pending request.

        Raises:
            ServingError: any refusal before the request is queued.
        """
        started = time.monotonic()
        labels = ["", "", self.config.scheduling.default_priority]
        handle = None
        try:
            if self._draining:
                raise unavailable("the server is shutting down and accepts no new requests")
            level = self.priority_index(priority)
            labels[2] = self._classes[level]
            if refused_at_door(self.config.scheduling, level, self._shed_below,
                               self._inflight if self._door else 0):
                labels[0] = model if model in self.config_names else ""
                self.metrics.shed.inc(labels[0] or "unknown", labels[2])
                raise shed_refusal(labels[2])
            handle = self.versions.acquire(model, version, label)
            labels[0], labels[1] = model, str(handle.version)
            signature = signature_name or SERVING_SIGNATURE
            spec = raise_if_unknown(handle.specs, signature)
            names = _output_names(spec, output_filter)
            inputs = decode(spec)
            limits = self.config.limits
            rows = validate_inputs(spec, inputs, limits.max_tensor_elements, limits.reject_non_finite)
            key = make_key(model, handle.version, signature, batch_signature(spec, inputs),
                           spec.batchable)
            task = Task(key=key, model=model, version=handle.version, signature=signature,
                        inputs=inputs, rows=rows, priority=level,
                        deadline=math.inf if deadline is None else deadline,
                        batchable=spec.batchable)
            with self._lock:
                self._inflight += 1
            self.metrics.inflight.inc(amount=1)
            try:
                self.scheduler.submit(task)
            except ServingError:
                self._done()
                raise
        except Exception as err:  # re-raised: only the pin and the count are settled here
            if handle is not None:
                handle.release()
            self._record(labels, getattr(err, "code", grpc.StatusCode.INTERNAL), started)
            raise
        pinned = handle
        task.future.add_done_callback(lambda f: self._finished(f, pinned, labels, started))
        return PendingPredict(model=model, version=handle.version, signature=signature,
                              future=task.future, output_names=names)

    def _finished(self, future: concurrent.futures.Future, handle, labels: List[str],
                  started: float) -> None:
        handle.release()
        if future.cancelled():
            code = grpc.StatusCode.CANCELLED
        else:
            error = future.exception()
            code = grpc.StatusCode.OK if error is None else getattr(
                error, "code", grpc.StatusCode.INTERNAL)
        self._record(labels, code, started)
        self._done()

    def _done(self) -> None:
        self.metrics.inflight.inc(amount=-1)
        with self._lock:
            self._inflight -= 1
            if self._inflight == 0:
                self._lock.notify_all()

    def _record(self, labels: List[str], code: grpc.StatusCode, started: float) -> None:
        model = labels[0] if labels[0] else "unknown"
        self.metrics.requests.inc(model, labels[1], labels[2], code.name)
        if code == grpc.StatusCode.OK:
            self.metrics.latency.observe(time.monotonic() - started, model, labels[1], labels[2])

    # ---- status and metadata ----------------------------------------------------------------
    def status(self, model: str, version: Optional[int] = None) -> List[VersionRecord]:
        """Version records of a model, as GetModelStatus reports them."""
        return self.versions.status(model, version)

    def metadata(self, model: str, version: Optional[int] = None, label: Optional[str] = None
                 ) -> tuple:
        """``(version, signature defs)`` of the version a request would be served by."""
        handle = self.versions.acquire(model, version, label)
        try:
            defs: Mapping[str, meta_graph_pb2.SignatureDef] = dict(handle.defs)
            return handle.version, defs
        finally:
            handle.release()


def priority_level(scheduling: SchedulingConfig, name: Optional[str]) -> int:
    """The class index of a priority name (empty: the default class).

    Args:
        scheduling: the configured classes and default class.
        name: the class a request asked for (None or '' for the default).

    Returns:
        The index in ``scheduling.priority_classes`` (0 is the lowest).

    Raises:
        ServingError: INVALID_ARGUMENT for an unknown class.
    """
    classes = scheduling.priority_classes
    name = (name or scheduling.default_priority).strip().lower()
    if name not in classes:
        raise invalid_argument(f"unknown priority '{name}'; use one of {list(classes)}")
    return classes.index(name)


def refused_at_door(scheduling: SchedulingConfig, level: int, shed_below: int, inflight: int
                    ) -> bool:
    """Whether a front end refuses a request of class ``level`` before any work on it.

    Args:
        scheduling: ``inflight_limit`` and the classes.
        level: the request's class index.
        shed_below: classes below this index are shed (front-end lag).
        inflight: requests this front end has admitted and not yet answered.

    Returns:
        True when the class is shed, or when ``inflight`` has reached the class's share of
        ``inflight_limit``: class ``c`` of ``C`` may fill ``((c + 1) / C) ** 2`` of it, so the
        lowest classes are refused first and the highest only at the limit. The squares keep
        most of the limit for the top classes (with 3 classes: low 1/9, normal 4/9, high all):
        lower-class requests admitted early would otherwise hold the slots that urgent ones
        arriving later need, while they wait behind them in the scheduler's queue.
    """
    if level < shed_below:
        return True
    limit = scheduling.inflight_limit
    classes = len(scheduling.priority_classes)
    return bool(limit) and inflight >= limit * ((level + 1) / classes) ** 2


def shed_refusal(priority: str) -> ServingError:
    """The refusal of a request whose class is being shed at admission."""
    return resource_exhausted(f"server overloaded: refusing '{priority}' priority requests for "
                              "now; retry later or raise the priority")


def filter_outputs(pending: PendingPredict, outputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The outputs a request asked for (all of them when it gave no filter)."""
    return {name: outputs[name] for name in pending.output_names}


def _output_names(spec: SignatureSpec, output_filter: Sequence[str]) -> List[str]:
    if not output_filter:
        return list(spec.outputs)
    unknown = [n for n in output_filter if n not in spec.outputs]
    if unknown:
        raise invalid_argument(f"output tensor alias not found in signature: {unknown[0]} "
                               f"(outputs: {sorted(spec.outputs)})")
    if len(set(output_filter)) != len(output_filter):
        raise invalid_argument("duplicate output tensor alias in output_filter")
    return list(output_filter)

