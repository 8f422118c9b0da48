"""Errors of the model server: a gRPC status code plus a message, and its HTTP twin.

Every refusal (bad input, unknown model, full queue, passed deadline) is a ``ServingError``;
the gRPC front end aborts with its code and the REST front end answers ``{"error": message}``
with the HTTP status TF Serving uses for that code (``http_status``).
"""

from __future__ import annotations

import grpc

# TF Serving's mapping (model_servers/http_server.cc, ToHTTPStatusCode).
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


class ServingError(Exception):
    """A request failed with a gRPC status ``code`` and a human-readable ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    def __reduce__(self):
        """Pickle as (code, message): errors cross from the model process to front ends."""
        return (ServingError, (self.code, self.message))

    @property
    def http_status(self) -> int:
        """The HTTP status TF Serving answers for this code."""
        return http_status(self.code)


def http_status(code: grpc.StatusCode) -> int:
    """Map a gRPC status code to TF Serving's HTTP status.

    Args:
        code: the gRPC status code.

    Returns:
        The HTTP status (500 for codes without a mapping).
    """
    return HTTP_STATUS.get(code, 500)


def invalid_argument(message: str) -> ServingError:
    """A malformed request."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    """An unknown model, version or label target."""
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def resource_exhausted(message: str) -> ServingError:
    """A full queue or an oversized request."""
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def deadline_exceeded(message: str) -> ServingError:
    """A deadline that passed or cannot be met."""
    return ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, message)


def unavailable(message: str) -> ServingError:
    """The server is draining or a worker is gone."""
    return ServingError(grpc.StatusCode.UNAVAILABLE, message)


def internal(message: str) -> ServingError:
    """A failure inside the server or the model."""
    return ServingError(grpc.StatusCode.INTERNAL, message)
