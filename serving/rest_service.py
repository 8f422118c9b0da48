"""REST front end: TF Serving's ``/v1/models`` API plus health, readiness and metrics.

``POST /v1/models/NAME[/versions/V|/labels/L]:predict`` takes the row (``instances``) or
columnar (``inputs``) JSON format; ``GET /v1/models/NAME[/versions/V]`` returns the version
status and ``.../metadata`` the signatures.  Errors are ``{"error": "..."}`` with TF Serving's
HTTP status.  ``X-Priority`` picks the priority class and ``X-Request-Timeout-Ms`` shortens the
server's REST timeout.  ``/healthz`` (alive), ``/readyz`` (a version loaded, not draining) and
``/monitoring/prometheus/metrics`` complete it.  Extra POST routes (``RestRoute``: e.g. the
events route the top-level CLI adds) are passed in by whoever assembles the server; they are
refused with 503 while draining.  Bodies must be JSON (``serving.limits.check_content_type``:
415 otherwise); a request's line and headers must arrive within ``header_timeout_s`` of its
first byte (``serving.http_io``), and an idle connection is closed after ``idle_timeout_s``.
One thread per connection, capped.
"""

from __future__ import annotations

import concurrent.futures
import http.server
import json
import logging
import re
import socket
import socketserver
import threading
import time
from typing import Any, Mapping, Optional, Protocol, Tuple

import grpc

from serving.config import PROMETHEUS_PATH
from serving.core import ServingCore, filter_outputs
from serving.errors import ServingError, deadline_exceeded, invalid_argument, not_found, unavailable
from serving.json_codec import decode_inputs, encode_outputs, parse_predict_body
from serving.http_io import DeadlineReader
from serving.limits import check_content_type, parse_json, read_body
from serving.responses import metadata_json, metadata_response, status_json, status_response

_LOG = logging.getLogger(__name__)
PRIORITY_HEADER = "X-Priority"
TIMEOUT_HEADER = "X-Request-Timeout-Ms"
_TARGET = r"/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
_PREDICT = re.compile(_TARGET + r":(?P<method>predict|classify|regress)$", re.IGNORECASE)
_STATUS = re.compile(_TARGET + r"(?P<metadata>/metadata)?$", re.IGNORECASE)
_MAX_VERSION = 2 ** 63 - 1
def _target(match: "re.Match[str]") -> Tuple[str, Optional[int], Optional[str]]:
    version = match.group("version")
    if version is not None and int(version) > _MAX_VERSION:
        raise invalid_argument(f"Failed to convert version: {version} to numeric.")
    return match.group("name"), (int(version) if version is not None else None), match.group("label")


class JsonInputs:
    """A predict body's inputs, decoded against the signature on call (picklable, so a
    front-end process can hand them to the model process).

    Args:
        payload: the ``instances`` or ``inputs`` value of the body.
        fmt: 'row' or 'columnar' (from ``parse_predict_body``).
        max_elements: the largest element count accepted per tensor.
    """

    def __init__(self, payload: Any, fmt: str, max_elements: int) -> None:
        self.payload = payload
        self.fmt = fmt
        self.max_elements = max_elements

    def __call__(self, spec: Any) -> Any:
        """Decode the inputs as ``spec`` types them."""
        return decode_inputs(self.payload, self.fmt, spec, self.max_elements)


class RestRoute(Protocol):
    """An extra POST route: the body in, ``(HTTP status, JSON-compatible reply)`` out."""

    def handle(self, body: bytes) -> Tuple[int, Any]:
        """Answer one request body."""

    def close(self) -> None:
        """Release what the route holds (called once, when the server stops)."""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "recsys-model-server"
    core: ServingCore  # set on the subclass built by RestFrontend
    routes: Mapping[str, RestRoute] = {}  # extra POST routes, set likewise
    rfile: DeadlineReader

    def setup(self) -> None:
        limits = self.core.config.limits
        self.timeout = limits.idle_timeout_s  # StreamRequestHandler applies it to the socket
        super().setup()
        plain = self.rfile
        self.rfile = DeadlineReader(self.connection, limits.idle_timeout_s)
        plain.close()

    def handle_one_request(self) -> None:
        self.rfile.arm(self.core.config.limits.header_timeout_s)
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()  # the request line and headers are in
        self.rfile.disarm()
        return parsed

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        _LOG.debug("%s %s", self.address_string(), format % args)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None
                   ) -> None:
        """Protocol-level errors (bad request line, unsupported method) as JSON too."""
        self.close_connection = True
        self._reply(code, {"error": message or explain or f"HTTP {code}"})

    def _reply(self, status: int, body: Any, content_type: str = "application/json") -> None:
        if isinstance(body, (bytes, str)):
            data = body.encode("utf-8") if isinstance(body, str) else body
        else:
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        if self.core.draining:
            self.close_connection = True
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)
        except OSError as err:  # the client went away: nothing left to answer
            _LOG.debug("client %s disconnected: %s", self.address_string(), err)
            self.close_connection = True

    def _guarded(self, handler) -> None:
        try:
            handler()
        except ServingError as err:
            self._reply(err.http_status, {"error": err.message})
        except Exception as err:  # logged, counted and answered 500
            _LOG.exception("REST %s %s failed", self.command, self.path)
            self.core.metrics.errors.inc("rest")
            self.close_connection = True
            self._reply(500, {"error": f"internal error: {type(err).__name__}: {err}"})

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._guarded(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._guarded(self._post)

    # ---- GET --------------------------------------------------------------------------------
    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._reply(200, {"status": "alive"})
        elif path == "/readyz":
            ready = self.core.ready()
            self._reply(200 if ready else 503, {"ready": ready, "draining": self.core.draining})
        elif path == PROMETHEUS_PATH:
            self._reply(200, self.core.metrics.render(), "text/plain; version=0.0.4")
        elif re.fullmatch(r"/v1/models/?", path, re.IGNORECASE):
            raise invalid_argument("Missing model name in request.")
        else:
            match = _STATUS.match(path)
            if match is None:
                raise not_found(f"Malformed request: GET {path[:200]}")
            name, version, label = _target(match)
            if match.group("metadata"):
                served, defs = self.core.metadata(name, version, label)
                self._reply(200, metadata_json(metadata_response(name, served, defs)))
            else:
                if label is not None:
                    version = self.core.metadata(name, None, label)[0]
                records = self.core.status(name, version)
                self._reply(200, status_json(status_response(name, records)))

    # ---- POST -------------------------------------------------------------------------------
    def _post(self) -> None:
        path = self.path.split("?", 1)[0]
        match = _PREDICT.match(path)
        limits = self.core.config.limits
        try:
            check_content_type(self.headers.get("Content-Type"))
            body = read_body(self.rfile, self.headers, limits.max_body_bytes)
        except ServingError:
            self.close_connection = True  # the unread body makes the stream unusable
            raise
        route = self.routes.get(path)
        if route is not None:
            if self.core.draining:
                raise unavailable("the server is shutting down and accepts no new requests")
            status, reply = route.handle(body)
            self._reply(status, reply)
            return
        if match is None:
            raise not_found(f"Malformed request: POST {path[:200]}")
        name, version, label = _target(match)
        method = match.group("method").lower()
        if method != "predict":
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                               f"{method} is not implemented by this server; use :predict")
        started = time.monotonic()
        deadline = started + self._timeout_s()
        signature, fmt, payload = parse_predict_body(parse_json(body, limits.max_json_depth))
        pending = self.core.predict(
            name, version, label, signature, JsonInputs(payload, fmt, limits.max_tensor_elements),
            priority=self.headers.get(PRIORITY_HEADER), deadline=deadline)
        try:
            outputs = pending.future.result(timeout=max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            pending.future.cancel()
            raise deadline_exceeded("request timed out before the model answered") from None
        except concurrent.futures.CancelledError:
            raise deadline_exceeded("request was cancelled") from None
        self._reply(200, encode_outputs(filter_outputs(pending, outputs), fmt))

    def _timeout_s(self) -> float:
        limit_ms = self.core.config.rest_api_timeout_ms
        header = self.headers.get(TIMEOUT_HEADER)
        if header is not None:
            try:
                asked = float(header)
            except ValueError:
                raise invalid_argument(f"{TIMEOUT_HEADER} must be a number of milliseconds") from None
            if not asked > 0:
                raise invalid_argument(f"{TIMEOUT_HEADER} must be positive")
            limit_ms = min(limit_ms, asked)
        return limit_ms / 1000.0


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, address, handler, max_connections: int, reuse_port: bool = False) -> None:
        self._slots = threading.BoundedSemaphore(max_connections)
        self._reuse_port = reuse_port
        super().__init__(address, handler)

    def server_bind(self) -> None:
        if self._reuse_port:  # several front-end processes accept on this port
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            _LOG.warning("refusing REST connection from %s: too many connections", client_address)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class RestFrontend:
    """The REST server in a background thread.

    Args:
        core: the serving core.
        host: interface to bind.
        port: port to bind (0: any free port).
        max_connections: concurrent connections accepted (more are closed at once).
        routes: extra POST routes, path -> route (their owner closes them).
        reuse_port: share the port with other front-end processes (SO_REUSEPORT).

    Raises:
        OSError: the port cannot be bound.
    """

    def __init__(self, core: ServingCore, host: str, port: int, max_connections: int = 256,
                 routes: Optional[Mapping[str, RestRoute]] = None, reuse_port: bool = False) -> None:
        handler = type("Handler", (_Handler,), {"core": core, "routes": dict(routes or {})})
        self._server = _Server((host, port), handler, max_connections, reuse_port)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="rest-frontend", daemon=True)

    def start(self) -> int:
        """Start serving; returns the bound port."""
        self._thread.start()
        return self.port

    def stop(self) -> None:
        """Stop accepting connections and close the listening socket."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
