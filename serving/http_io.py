"""The REST connection's input stream, with a deadline on each request's line and headers.

``http.server`` sets one socket timeout per ``recv``, so a client that trickles a header byte
every few seconds holds its connection (and a thread) forever.  ``DeadlineReader`` replaces
the handler's ``rfile``: once ``arm(seconds)`` is called, the clock starts at the first byte
of the next request and the request line plus headers must arrive within that time, or the
read fails with ``TimeoutError`` (the handler then closes the connection).  ``disarm`` is
called once the headers are in; the body is read under the idle timeout only.
"""

from __future__ import annotations

import socket
import time
from typing import Optional


class DeadlineReader:
    """A buffered reader over a socket with ``readline``/``read`` and a header deadline.

    Args:
        sock: the connection.
        idle_timeout_s: the longest wait for any one read.
    """

    def __init__(self, sock: socket.socket, idle_timeout_s: float) -> None:
        self._sock = sock
        self._idle = idle_timeout_s
        self._buffer = bytearray()
        self._armed: Optional[float] = None
        self._deadline: Optional[float] = None

    def arm(self, seconds: float) -> None:
        """Give the next request's line and headers ``seconds`` from their first byte."""
        self._armed = seconds
        self._deadline = time.monotonic() + seconds if self._buffer else None

    def disarm(self) -> None:
        """The headers are in: only the idle timeout applies from now on."""
        self._armed = None
        self._deadline = None

    def _fill(self) -> bool:
        timeout = self._idle
        if self._deadline is not None:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the request headers took too long")
            timeout = min(timeout, left)
        self._sock.settimeout(timeout)
        chunk = self._sock.recv(65536)
        if not chunk:
            return False
        if self._armed is not None and self._deadline is None:
            self._deadline = time.monotonic() + self._armed  # the first byte starts the clock
        self._buffer += chunk
        return True

    def readline(self, limit: int = -1) -> bytes:
        """Bytes up to and including the next newline (at most ``limit``; b'' at EOF)."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                size = end + 1
                break
            if 0 <= limit <= len(self._buffer) or not self._fill():
                size = len(self._buffer)
                break
        if limit >= 0:
            size = min(size, limit)
        line = bytes(self._buffer[:size])
        del self._buffer[:size]
        return line

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (fewer only at EOF); ``-1`` reads to EOF."""
        while size < 0 or len(self._buffer) < size:
            if not self._fill():
                break
        size = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def close(self) -> None:
        """Drop the buffer (the socket is closed by the server)."""
        self._buffer.clear()
