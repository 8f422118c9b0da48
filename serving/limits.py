"""Request limits of the REST front end: content type, body size (before and after
decompression) and JSON nesting depth.

Only JSON is accepted: ``application/json`` and ``application/*+json``; a request without a
Content-Type, and ``application/x-www-form-urlencoded`` (what ``curl -d`` sends when no type
is given, as in TF Serving's own REST examples, and which ``tensorflow_model_server`` accepts
since it ignores the header), are read as JSON too; anything else is refused with 415.

Bodies need a ``Content-Length`` no larger than the limit; ``Content-Encoding: gzip`` or
``deflate`` bodies are inflated incrementally and refused as soon as they would exceed the
limit (no decompression bomb is ever held in memory).  JSON is refused when nested deeper
than ``max_json_depth`` (the C parser's own recursion guard catches absurd depths first).
"""

from __future__ import annotations

import json
import zlib
from typing import Any, BinaryIO, Mapping, Optional

import grpc

from serving.errors import ServingError, invalid_argument

_PAYLOAD_TOO_LARGE = 413


class HttpError(ServingError):
    """A REST refusal whose HTTP status is not derived from a gRPC code (408, 411, 413, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT if status != _PAYLOAD_TOO_LARGE
                         else grpc.StatusCode.RESOURCE_EXHAUSTED, message)
        self._status = status

    @property
    def http_status(self) -> int:
        return self._status


_CURL_DEFAULT = "application/x-www-form-urlencoded"


def check_content_type(value: Optional[str]) -> None:
    """Refuse a request body that does not claim to be JSON (see the module docstring).

    Args:
        value: the Content-Type header, or None when absent.

    Raises:
        HttpError: 415 naming the type and the one to send.
    """
    if value is None or not value.strip():
        return
    media = value.split(";", 1)[0].strip().lower()
    if media in ("application/json", _CURL_DEFAULT) or (
            media.startswith("application/") and media.endswith("+json")):
        return
    raise HttpError(415, f"unsupported Content-Type {value[:60]!r}: send application/json")


def read_body(stream: BinaryIO, headers: Mapping[str, str], max_bytes: int) -> bytes:
    """Read and inflate a request body within ``max_bytes``.

    Args:
        stream: the connection's input stream.
        headers: the request headers (case-insensitive mapping).
        max_bytes: the limit on the body, both as sent and after decompression.

    Returns:
        The (decompressed) body.

    Raises:
        HttpError: 411 without Content-Length, 413 when too large, 400 for a bad length or
            a corrupt compressed body, 415 for an unsupported encoding.
    """
    if headers.get("Transfer-Encoding"):
        raise HttpError(411, "chunked request bodies are not supported; send Content-Length")
    length_text = headers.get("Content-Length")
    if length_text is None:
        raise HttpError(411, "a request body needs a Content-Length header")
    if not length_text.strip().isdigit():
        raise HttpError(400, f"invalid Content-Length {length_text[:40]!r}")
    length = int(length_text)
    if length > max_bytes:
        raise HttpError(_PAYLOAD_TOO_LARGE, f"request body of {length} bytes exceeds the limit "
                                            f"of {max_bytes} bytes")
    try:
        data = stream.read(length)
    except TimeoutError:
        raise HttpError(408, f"the request body did not arrive in time ({length} bytes "
                             "announced)") from None
    if len(data) != length:
        raise HttpError(400, f"request body ended after {len(data)} of {length} bytes")
    encoding = headers.get("Content-Encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding not in ("gzip", "deflate"):
        raise HttpError(415, f"unsupported Content-Encoding {encoding[:40]!r}")
    return _inflate(data, encoding, max_bytes)


def _inflate(data: bytes, encoding: str, max_bytes: int) -> bytes:
    window = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(window)
    out = bytearray()
    pending = data
    try:
        while pending:
            out += inflater.decompress(pending, max_bytes + 1 - len(out))
            if len(out) > max_bytes:
                raise HttpError(_PAYLOAD_TOO_LARGE, f"decompressed request body exceeds the "
                                                    f"limit of {max_bytes} bytes")
            pending = inflater.unconsumed_tail
            if inflater.eof:
                break
        out += inflater.flush()
    except zlib.error as err:
        raise HttpError(400, f"corrupt {encoding} request body: {err}") from None
    if len(out) > max_bytes:
        raise HttpError(_PAYLOAD_TOO_LARGE, f"decompressed request body exceeds the limit of "
                                            f"{max_bytes} bytes")
    if not inflater.eof:
        raise HttpError(400, f"truncated {encoding} request body")
    return bytes(out)


def json_depth(document: Any, limit: int) -> int:
    """The nesting depth of a parsed JSON document, counting stops just past ``limit``."""
    deepest = 0
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children
                         if isinstance(child, (list, dict)))
    return deepest


def parse_json(data: bytes, max_depth: int) -> Any:
    """Parse a JSON request body.

    Args:
        data: the body bytes (UTF-8).
        max_depth: the deepest nesting allowed.

    Returns:
        The parsed document.

    Raises:
        ServingError: INVALID_ARGUMENT for invalid UTF-8 or JSON, or nesting that is too deep.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise invalid_argument(f"request body is not UTF-8: {err}") from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise invalid_argument(f"JSON nesting depth exceeds the limit of {max_depth}") from None
    except json.JSONDecodeError as err:
        raise invalid_argument(f"request body is not valid JSON: {err}") from None
    if json_depth(document, max_depth) > max_depth:
        raise invalid_argument(f"JSON nesting depth exceeds the limit of {max_depth}")
    return document
