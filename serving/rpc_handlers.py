"""gRPC method handlers that answer an unparseable request message with INVALID_ARGUMENT.

The generated ``add_*Servicer_to_server`` functions deserialize with ``Message.FromString``;
when a client sends bytes that are not the request message, gRPC logs a traceback and answers
UNKNOWN "Unexpected <class DecodeError>".  ``service_handler`` builds the same handlers from
the service descriptor with a tolerant deserializer: a message that does not parse reaches
the method as ``Unparseable``, which is answered INVALID_ARGUMENT and counted in a
``RateLimitedLog`` (one warning per interval with the count, not a traceback per message).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from typing import Any, Callable, Optional

import grpc
from google.protobuf import descriptor as descriptor_lib
from google.protobuf import symbol_database
from google.protobuf.message import DecodeError

_LOG = logging.getLogger(__name__)


class RateLimitedLog:
    """Logs the first event at once, then at most one summary line per ``interval_s``.

    Args:
        logger: where the lines go.
        what: the event, e.g. "unparseable gRPC request messages".
        interval_s: the shortest time between two lines.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(self, logger: logging.Logger, what: str, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._what = what
        self._interval = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._pending = 0
        self._next = -float("inf")
        self.total = 0

    def record(self, detail: str) -> None:
        """Count one event; log it (with the count since the last line) when the interval allows."""
        with self._lock:
            self.total += 1
            self._pending += 1
            now = self._clock()
            if now < self._next:
                return
            count, self._pending = self._pending, 0
            self._next = now + self._interval
        self._logger.warning("%d %s in the last %.0fs (latest: %s)", count, self._what,
                             self._interval, detail[:200])


class Unparseable:
    """What the method receives instead of a request that did not parse."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


def _tolerant(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            with warnings.catch_warnings():
                # the C++ parser only warns about trailing garbage; a request must parse cleanly
                warnings.simplefilter("error", RuntimeWarning)
                return parse(data)
        except (DecodeError, RuntimeWarning, SystemError, ValueError) as err:  # SystemError: the
            # C++ parser raising the warning it was told to treat as an error
            return Unparseable(f"{type(err).__name__}: {err}")
    return deserialize


def _guarded(method: Callable, request_name: str, bad: RateLimitedLog) -> Callable:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Unparseable):
            bad.record(request.error)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"the request is not a valid {request_name} message: "
                                f"{request.error}")
        return await method(request, context)
    return handle


def service_handler(service: descriptor_lib.ServiceDescriptor, servicer: Any,
                    bad: Optional[RateLimitedLog] = None) -> grpc.GenericRpcHandler:
    """The generic handler of every unary method of ``service``, served by ``servicer``.

    Args:
        service: the service descriptor (e.g. from ``prediction_service_pb2.DESCRIPTOR``).
        servicer: an object with one async method per RPC name.
        bad: where unparseable requests are counted (default: a per-service log).

    Returns:
        The handler to pass to ``server.add_generic_rpc_handlers``.
    """
    bad = bad or RateLimitedLog(_LOG, f"unparseable {service.name} request messages")
    handlers = {}
    symbols = symbol_database.Default()  # the generated classes, registered on import
    for method in service.methods:
        request = symbols.GetSymbol(method.input_type.full_name)
        response = symbols.GetSymbol(method.output_type.full_name)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _guarded(getattr(servicer, method.name), method.input_type.name, bad),
            request_deserializer=_tolerant(request.FromString),
            response_serializer=response.SerializeToString)
    return grpc.method_handlers_generic_handler(service.full_name, handlers)
