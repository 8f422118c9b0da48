"""gRPC front end: TF Serving's PredictionService and ModelService on an asyncio gRPC server.

The server runs in its own thread with its own event loop, so a waiting request costs a
coroutine, not a thread.  Priority comes from the ``x-priority`` metadata key and the deadline
from the RPC's own deadline.  Classify, Regress, MultiInference and HandleReloadConfigRequest
answer UNIMPLEMENTED; every refusal carries the ServingError's code and message; a request
message that does not parse is answered INVALID_ARGUMENT and logged at most once a minute
with a count (``serving.rpc_handlers``); anything unexpected is logged, counted and answered
INTERNAL.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import threading
import time
from typing import Any, Dict, Mapping, Optional, Tuple

import grpc
import numpy as np
from tensorflow_serving.apis import (model_service_pb2, model_service_pb2_grpc,
                                     prediction_service_pb2, prediction_service_pb2_grpc)

from serving.admission import LagMonitor
from serving.core import ServingCore, filter_outputs
from serving.errors import ServingError, invalid_argument
from serving.responses import (SIGNATURE_DEF_FIELD, metadata_response, predict_response,
                               status_response)
from serving.rpc_handlers import RateLimitedLog, service_handler
from serving.tensor_codec import to_ndarray

_LOG = logging.getLogger(__name__)
PRIORITY_METADATA_KEY = "x-priority"


def _spec_version(spec) -> Tuple[Optional[int], Optional[str]]:
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


async def _abort(context: grpc.aio.ServicerContext, error: ServingError) -> None:
    await context.abort(error.code, error.message)


class _Mailbox:
    """Hands finished futures to the event loop with one wake-up per burst, not per request.

    A batch's requests finish together on a worker thread; waking the loop once for all of
    them (instead of ``asyncio.wrap_future``'s one wake-up each) keeps the loop free to admit
    new requests.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: "collections.deque" = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def wait(self, future: concurrent.futures.Future) -> "asyncio.Future":
        """An asyncio future (of this loop) settled like ``future``; cancelling it cancels both."""
        waiter = self._loop.create_future()
        waiter.add_done_callback(lambda w: future.cancel() if w.cancelled() else None)
        future.add_done_callback(lambda done: self._post(done, waiter))
        return waiter

    def _post(self, done: concurrent.futures.Future, waiter: "asyncio.Future") -> None:
        with self._lock:
            self._items.append((done, waiter))
            if self._scheduled:
                return
            self._scheduled = True
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, collections.deque()
            self._scheduled = False
        for done, waiter in items:
            if waiter.done():
                continue
            if done.cancelled():
                waiter.cancel()
            elif done.exception() is not None:
                waiter.set_exception(done.exception())
            else:
                waiter.set_result(done.result())


class ProtoInputs:
    """A Predict request's inputs, decoded on call (picklable, so a front-end process can hand
    them to the model process undecoded).

    Args:
        inputs: input name -> TensorProto.
        max_elements: the largest element count accepted per tensor.
    """

    def __init__(self, inputs: Mapping[str, Any], max_elements: int) -> None:
        self.inputs = dict(inputs)
        self.max_elements = max_elements

    def __call__(self, spec: Any) -> Dict[str, np.ndarray]:
        """Decode every input (the spec is not needed: TensorProtos carry their dtype)."""
        return {name: to_ndarray(proto, name, self.max_elements)
                for name, proto in self.inputs.items()}


class _Guard:
    """Turns ServingErrors into aborts and logs+counts everything else as INTERNAL."""

    def __init__(self, core: ServingCore, context: grpc.aio.ServicerContext, method: str) -> None:
        self._core, self._context, self._method = core, context, method

    async def __aenter__(self) -> "_Guard":
        return self

    async def __aexit__(self, kind, error, trace) -> bool:
        if error is None or isinstance(error, (asyncio.CancelledError, grpc.aio.AbortError)):
            return False
        if isinstance(error, ServingError):
            remaining = self._context.time_remaining()
            if remaining is not None and remaining <= 0:
                # the caller's deadline has passed: it already has DEADLINE_EXCEEDED and the
                # RPC cannot carry a status any more; end the handler quietly
                raise asyncio.CancelledError() from None
            await _abort(self._context, error)
        _LOG.error("gRPC %s failed", self._method, exc_info=(kind, error, trace))
        self._core.metrics.errors.inc("grpc")
        await self._context.abort(grpc.StatusCode.INTERNAL, f"internal error: {error}")
        return False


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata over the serving core."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core
        self._mailbox: Optional[_Mailbox] = None

    async def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        async with _Guard(self._core, context, "Predict"):
            limit = self._core.config.limits.max_tensor_elements
            metadata = dict(context.invocation_metadata() or ())
            remaining = context.time_remaining()
            deadline = None if remaining is None else time.monotonic() + remaining
            version, label = _spec_version(request.model_spec)

            pending = self._core.predict(
                request.model_spec.name, version, label, request.model_spec.signature_name,
                ProtoInputs(request.inputs, limit), output_filter=list(request.output_filter),
                priority=metadata.get(PRIORITY_METADATA_KEY), deadline=deadline)
            if self._mailbox is None:
                self._mailbox = _Mailbox(asyncio.get_running_loop())
            outputs = await self._mailbox.wait(pending.future)
            return predict_response(pending.model, pending.version, pending.signature,
                                    filter_outputs(pending, outputs))

    async def GetModelMetadata(self, request, context):  # noqa: N802
        async with _Guard(self._core, context, "GetModelMetadata"):
            fields = list(request.metadata_field)
            if not fields:
                raise invalid_argument("GetModelMetadataRequest must specify at least one "
                                       "metadata_field")
            unsupported = [f for f in fields if f != SIGNATURE_DEF_FIELD]
            if unsupported:
                raise invalid_argument(f"Metadata field {unsupported[0]} is not supported")
            version, label = _spec_version(request.model_spec)
            served, defs = self._core.metadata(request.model_spec.name, version, label)
            return metadata_response(request.model_spec.name, served, defs)

    async def Classify(self, request, context):  # noqa: N802
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "Classify is not implemented by this server; use Predict")

    async def Regress(self, request, context):  # noqa: N802
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "Regress is not implemented by this server; use Predict")

    async def MultiInference(self, request, context):  # noqa: N802
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "MultiInference is not implemented by this server; use Predict")


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus over the version manager."""

    def __init__(self, core: ServingCore) -> None:
        self._core = core

    async def GetModelStatus(self, request, context):  # noqa: N802
        async with _Guard(self._core, context, "GetModelStatus"):
            spec = request.model_spec
            if not spec.name:
                raise invalid_argument("Missing model name in request.")
            version = spec.version.value if spec.HasField("version") else None
            records = self._core.status(spec.name, version)
            return status_response(spec.name, records)

    async def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            "configuration reload is not supported; restart the server")


class GrpcFrontend:
    """An asyncio gRPC server running in a background thread.

    Args:
        core: the serving core.
        host: interface to bind.
        port: port to bind (0: any free port).
        max_message_bytes: largest request or response message.
        reuse_port: share the port with other front-end processes (SO_REUSEPORT); off, a
            taken port is an error.
    """

    def __init__(self, core: ServingCore, host: str, port: int, max_message_bytes: int,
                 reuse_port: bool = False) -> None:
        self._core = core
        self._reuse_port = reuse_port
        self._address = f"{host}:{port}"
        self._max = max_message_bytes
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-frontend",
                                        daemon=True)
        self._server: Optional[grpc.aio.Server] = None
        self._monitor: Optional[asyncio.Task] = None
        self.port = 0
        # request messages that do not parse: INVALID_ARGUMENT, one log line per minute
        self.unparseable = RateLimitedLog(_LOG, "unparseable gRPC request messages answered "
                                                "INVALID_ARGUMENT")

    def start(self) -> int:
        """Bind and start serving; returns the bound port."""
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self.port

    async def _start(self) -> int:
        options = [("grpc.max_receive_message_length", self._max),
                   ("grpc.max_send_message_length", max(self._max, 64 * 1024 * 1024)),
                   ("grpc.so_reuseport", int(self._reuse_port))]
        server = grpc.aio.server(options=options)
        server.add_generic_rpc_handlers((
            service_handler(prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"],
                            PredictionServicer(self._core), self.unparseable),
            service_handler(model_service_pb2.DESCRIPTOR.services_by_name["ModelService"],
                            ModelServicer(self._core), self.unparseable)))
        try:
            port = server.add_insecure_port(self._address)
        except RuntimeError:  # grpc's way of saying the port is taken
            port = 0
        if port == 0:
            raise OSError("the address is in use or not available on this machine")
        await server.start()
        self._server = server
        scheduling = self._core.config.scheduling
        if scheduling.overload_lag_ms > 0:
            monitor = LagMonitor(scheduling.overload_lag_ms / 1e3, scheduling.shed_levels,
                                 self._core.set_shed_level)
            self._monitor = asyncio.get_running_loop().create_task(monitor.run())
        return port

    def stop(self, grace_s: float) -> None:
        """Stop serving (in-flight RPCs get ``grace_s``) and end the loop thread."""
        if self._monitor is not None:
            self._loop.call_soon_threadsafe(self._monitor.cancel)
        if self._server is not None:
            future = asyncio.run_coroutine_threadsafe(self._server.stop(grace_s), self._loop)
            future.result(timeout=grace_s + 10)
            self._server = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()
