"""The pipe between a front-end process and the model process: both of its ends.

A front-end process (``serving.frontends``) runs the gRPC and REST front ends on a
``RemoteCore``: the same methods the front ends call on ``ServingCore`` (predict, metadata,
status, ready, metrics), answered by the model process over one duplex pipe.  Requests go as
``(op, id, *args)``; a predict carries its inputs still encoded (``ProtoInputs`` /
``JsonInputs``), so the model process decodes them against the version it pins.  Answers come
back as lists of ``(id, ok, payload)``, several per pipe message when they finish together (a
batch); control messages (``("drain",)``, ``("stop", grace_s)``) are tuples led by a string.
``CoreLink`` is the model process's end: it runs each request on the real ``ServingCore`` and
counts what it served.  Priority shedding (event-loop lag, ``inflight_limit``) happens in the
front-end process, before anything is sent.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import logging
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from serving.config import ServerConfig
from serving.core import ServingCore, filter_outputs, priority_level, refused_at_door, shed_refusal
from serving.errors import ServingError, internal, unavailable

_LOG = logging.getLogger(__name__)
CALL_TIMEOUT_S = 30.0  # metadata, status, readiness and metrics calls


class RemotePending:
    """A predict sent to the model process; fields are filled before ``future`` resolves."""

    def __init__(self) -> None:
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.model = ""
        self.version = 0
        self.signature = ""
        self.output_names: Sequence[str] = ()


class _RemoteCounter:
    """A counter of the model process's metrics, incremented over the pipe."""

    def __init__(self, core: "RemoteCore", name: str) -> None:
        self._core, self._name = core, name

    def inc(self, *labels: str, amount: float = 1) -> None:
        self._core.notify("count", self._name, labels, amount)


class _RemoteGauge:
    """A gauge kept in this process only (the shed level of this front end's door)."""

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float, *labels: str) -> None:
        self.value = value


class _RemoteMetrics:
    """What the front ends use of ``ServingMetrics``, kept in the model process."""

    def __init__(self, core: "RemoteCore") -> None:
        self._core = core
        self.errors = _RemoteCounter(core, "errors")
        self.shed = _RemoteCounter(core, "shed")
        self.shed_level = _RemoteGauge()  # this process's own door; not exported

    def render(self) -> str:
        """The model process's Prometheus text."""
        return self._core.call("render")


class RemoteCore:
    """The serving core as a front-end process sees it.

    ``predict`` returns at once (its future resolves when the answer arrives); ``metadata``,
    ``status``, ``ready`` and metrics rendering wait for the model process's answer, as the
    in-process core's do for their locks (they are rare, cheap calls).

    Args:
        config: the server settings.
        conn: this process's end of the pipe to the model process.
    """

    def __init__(self, config: ServerConfig, conn: Any) -> None:
        self.config = config
        self.metrics = _RemoteMetrics(self)
        self._conn = conn
        self._send_lock = threading.Lock()
        self._pending: Dict[int, Tuple[concurrent.futures.Future, Optional[RemotePending]]] = {}
        self._pending_lock = threading.Lock()
        self._ids = itertools.count()
        self._draining = False
        self._shed_below = 0
        self.stop_requested = threading.Event()
        self.stop_grace_s = 1.0
        self._reader = threading.Thread(target=self._read_loop, name="core-link", daemon=True)
        self._reader.start()

    # ---- the pipe ---------------------------------------------------------------------------
    def _send(self, message: tuple) -> None:
        with self._send_lock:
            self._conn.send(message)

    def notify(self, op: str, *args: Any) -> None:
        """A one-way message (counts); lost silently only when the model process is gone."""
        try:
            self._send((op, None) + args)
        except (OSError, ValueError) as err:
            _LOG.debug("model process unreachable: %s", err)

    def _start(self, op: str, args: tuple, pending: Optional[RemotePending] = None
               ) -> concurrent.futures.Future:
        future = pending.future if pending is not None else concurrent.futures.Future()
        request_id = next(self._ids)
        with self._pending_lock:
            self._pending[request_id] = (future, pending)
        try:
            self._send((op, request_id) + args)
        except (OSError, ValueError) as err:
            with self._pending_lock:
                self._pending.pop(request_id, None)
            future.set_exception(unavailable(f"the model process is unreachable: {err}"))
        return future

    def call(self, op: str, *args: Any) -> Any:
        """A blocking call to the model process (raises what the core raised there)."""
        try:
            return self._start(op, args).result(timeout=CALL_TIMEOUT_S)
        except concurrent.futures.TimeoutError:
            raise unavailable(f"the model process did not answer {op} in "
                              f"{CALL_TIMEOUT_S:.0f}s") from None

    def _read_loop(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                self._fail_all()
                self.stop_requested.set()
                return
            if isinstance(message, tuple):  # control
                if message[0] == "drain":
                    self._draining = True
                elif message[0] == "stop":
                    self._draining = True
                    self.stop_grace_s = float(message[1])
                    self.stop_requested.set()
                continue
            for request_id, ok, payload in message:
                self._settle(request_id, ok, payload)

    def _settle(self, request_id: int, ok: bool, payload: Any) -> None:
        with self._pending_lock:
            entry = self._pending.pop(request_id, None)
        if entry is None:
            return
        future, pending = entry
        if not future.set_running_or_notify_cancel():
            return
        if not ok:
            future.set_exception(payload)
        elif pending is None:
            future.set_result(payload)
        else:
            pending.model, pending.version, pending.signature, outputs = payload
            pending.output_names = list(outputs)
            future.set_result(outputs)

    def _fail_all(self) -> None:
        with self._pending_lock:
            entries, self._pending = list(self._pending.values()), {}
        for future, _ in entries:
            if future.set_running_or_notify_cancel():
                future.set_exception(unavailable("the model process has exited"))

    # ---- what the front ends call -----------------------------------------------------------
    @property
    def draining(self) -> bool:
        """True once the model process started draining or stopping."""
        return self._draining

    def set_shed_level(self, level: int) -> None:
        """Refuse the ``level`` lowest classes at this process's door (0: admit all)."""
        self._shed_below = level
        self.metrics.shed_level.set(level)

    def ready(self) -> bool:
        """Whether the model process serves traffic and this front end is not draining."""
        return not self._draining and bool(self.call("ready"))

    def predict(self, model: str, version: Optional[int], label: Optional[str],
                signature_name: str, decode: Any, output_filter: Sequence[str] = (),
                priority: Optional[str] = None, deadline: Optional[float] = None) -> RemotePending:
        """Send one Predict (``ServingCore.predict``'s arguments; ``decode`` must pickle).

        Returns:
            The pending request; its future resolves to the filtered outputs.

        Raises:
            ServingError: draining, an unknown class, or a class shed at this door.
        """
        if self._draining:
            raise unavailable("the server is shutting down and accepts no new requests")
        level = priority_level(self.config.scheduling, priority)
        if refused_at_door(self.config.scheduling, level, self._shed_below, len(self._pending)):
            name = self.config.scheduling.priority_classes[level]
            self.metrics.shed.inc(model if model in {m.name for m in self.config.models}
                                  else "unknown", name)
            raise shed_refusal(name)
        pending = RemotePending()
        self._start("predict", (model, version, label, signature_name, decode,
                                list(output_filter), priority, deadline), pending)
        return pending

    def metadata(self, model: str, version: Optional[int] = None, label: Optional[str] = None
                 ) -> tuple:
        """``(version, signature defs)`` as ``ServingCore.metadata``."""
        return self.call("metadata", model, version, label)

    def status(self, model: str, version: Optional[int] = None) -> list:
        """Version records as ``ServingCore.status`` (without their signatures)."""
        return self.call("status", model, version)


class CoreLink:
    """The model process's end of one front-end process's pipe.

    Args:
        core: the real serving core.
        conn: the pipe to the front-end process.
        index: the front end's number (for logs and counts).
        on_exit: called with ``index`` when the front-end process's end of the pipe closes.
    """

    def __init__(self, core: ServingCore, conn: Any, index: int,
                 on_exit: Optional[Callable[[int], None]] = None) -> None:
        self._core = core
        self._conn = conn
        self.index = index
        self._on_exit = on_exit
        self.requests = 0  # predicts this front end sent (tests, operations)
        self.control: "collections.deque" = collections.deque()  # ("started", ...) etc.
        self.control_event = threading.Event()
        self._outbox: List[Tuple[int, bool, Any]] = []
        self._cond = threading.Condition()
        self._closed = False
        self._send_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read_loop, name=f"frontend-link-{index}",
                                        daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name=f"frontend-send-{index}",
                                        daemon=True)
        self._reader.start()
        self._sender.start()

    def send_control(self, message: tuple) -> None:
        """Send a control message (``("drain",)`` or ``("stop", grace_s)``)."""
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, ValueError) as err:
            _LOG.warning("front end %d unreachable: %s", self.index, err)

    def close(self) -> None:
        """Stop the sender (after what is queued) and close the pipe."""
        self._on_exit = None
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._sender.join(timeout=5.0)
        self._conn.close()
        self._reader.join(timeout=5.0)

    # ---- receiving --------------------------------------------------------------------------
    def _read_loop(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                self.control.append(("exited",))
                self.control_event.set()
                if self._on_exit is not None:
                    self._on_exit(self.index)
                return
            self._handle(message)

    def _handle(self, message: tuple) -> None:
        op, request_id = message[0], message[1]
        if request_id is None:  # one-way
            if op in ("started", "failed"):
                self.control.append(message[:1] + message[2:])
                self.control_event.set()
            elif op == "count" and message[2] in ("errors", "shed"):
                getattr(self._core.metrics, message[2]).inc(*message[3], amount=message[4])
            return
        try:
            if op == "predict":
                self._predict(request_id, *message[2:])
                return
            if op == "metadata":
                reply: Any = self._core.metadata(*message[2:])
            elif op == "status":
                reply = [dataclasses.replace(r, defs={}, specs={})
                         for r in self._core.status(*message[2:])]
            elif op == "ready":
                reply = self._core.ready()
            elif op == "render":
                reply = self._core.metrics.render()
            else:
                raise internal(f"unknown front-end request {op!r}")
        except ServingError as err:
            self._post(request_id, False, err)
        except Exception as err:  # logged, counted and answered INTERNAL
            _LOG.exception("front-end request %s failed", op)
            self._core.metrics.errors.inc("frontend-link")
            self._post(request_id, False, internal(f"{type(err).__name__}: {err}"))
        else:
            self._post(request_id, True, reply)

    def _predict(self, request_id: int, model: str, version: Optional[int], label: Optional[str],
                 signature: str, decode: Any, output_filter: Sequence[str],
                 priority: Optional[str], deadline: Optional[float]) -> None:
        self.requests += 1
        pending = self._core.predict(model, version, label, signature, decode, output_filter,
                                     priority, deadline)

        def done(future: concurrent.futures.Future) -> None:
            if future.cancelled():
                self._post(request_id, False, unavailable("the request was cancelled"))
                return
            error = future.exception()
            if error is not None:
                if not isinstance(error, ServingError):
                    error = internal(f"{type(error).__name__}: {error}")
                self._post(request_id, False, error)
                return
            self._post(request_id, True, (pending.model, pending.version, pending.signature,
                                          filter_outputs(pending, future.result())))

        pending.future.add_done_callback(done)

    # ---- answering: one pipe message per burst ------------------------------------------------
    def _post(self, request_id: int, ok: bool, payload: Any) -> None:
        with self._cond:
            self._outbox.append((request_id, ok, payload))
            if len(self._outbox) == 1:
                self._cond.notify()

    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not self._outbox and not self._closed:
                    self._cond.wait()
                batch, self._outbox = self._outbox, []
                closed = self._closed
            if batch:
                try:
                    with self._send_lock:
                        self._conn.send(batch)
                except (OSError, ValueError) as err:
                    _LOG.warning("front end %d unreachable; %d answers lost: %s", self.index,
                                 len(batch), err)
            if closed:
                return
