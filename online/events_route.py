"""The ``POST /v1/events`` route for the model server's REST front end, built from an event log.

The model server knows nothing of events: it accepts extra REST routes (path -> an object
with ``handle(body) -> (HTTP status, JSON reply)`` and ``close()``).  ``routes_from_args``
is the factory the top-level CLI hands to ``serving.cli`` (``--events-log DIR``): with a
directory it opens the durable event log there (``EventsRoute``); without one the route
answers 404 and says how to enable it.  ``EventsRoute`` keeps the log open while requests use
it, so that ``close`` never releases it under an append in progress.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from typing import Any, Dict, Mapping, Optional, Tuple

from online.event_log import EventLog
from online.http_handler import ROUTE, EventsHandler
from online.log_format import LogCorruptError

_LOG = logging.getLogger(__name__)

DISABLED = (f"POST {ROUTE} is not enabled: this server was started without an events log; "
            "start it with `recsys serve --events-log DIR`")


class EventsLogError(ValueError):
    """The events log directory cannot be used; the message names it and says why."""


class EventsRoute:
    """``POST /v1/events`` over the event log in ``directory`` (``online.http_handler``).

    Args:
        directory: the event log directory (created if needed).

    Raises:
        EventsLogError: the path is a file, cannot be created, or holds a damaged log.
    """

    def __init__(self, directory: str) -> None:
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise EventsLogError(f"--events-log {directory} is a file, not a directory")
        try:
            self._log = EventLog(directory)
        except OSError as err:
            raise EventsLogError(f"--events-log {directory} cannot be used: "
                                 f"{err.strerror or err}") from None
        except LogCorruptError as err:
            raise EventsLogError(f"--events-log {directory} holds a damaged log: {err}") from None
        self._handler = EventsHandler(self._log)
        self._cond = threading.Condition()
        self._active = 0
        self._closed = False

    def handle(self, body: bytes) -> Tuple[int, Dict[str, Any]]:
        """The handler's (HTTP status, JSON reply) for one request body."""
        with self._cond:
            if self._closed:
                return 503, {"error": "the server is shutting down and accepts no new events"}
            self._active += 1
        try:
            return self._handler.handle(body)
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def close(self, timeout_s: float = 10.0) -> None:
        """Refuse new requests, wait for appends in progress, release the log."""
        end = time.monotonic() + timeout_s
        with self._cond:
            self._closed = True
            while self._active > 0:
                left = end - time.monotonic()
                if left <= 0:
                    _LOG.warning("event log %s left open: %d appends still in progress",
                                 self._log.directory, self._active)
                    return
                self._cond.wait(timeout=left)
        self._log.close()


class DisabledRoute:
    """The route of a server without an events log: 404 with the way to enable it."""

    def handle(self, body: bytes) -> Tuple[int, Dict[str, Any]]:
        """Always 404 with ``DISABLED``."""
        del body
        return 404, {"error": DISABLED}

    def close(self) -> None:
        """Nothing to release."""


def events_routes(directory: Optional[str]) -> Dict[str, Any]:
    """The extra REST routes for an events log directory (None: the disabled route).

    Raises:
        EventsLogError: the directory cannot be used.
    """
    return {ROUTE: EventsRoute(directory) if directory else DisabledRoute()}


def routes_from_args(args: argparse.Namespace) -> Mapping[str, Any]:
    """The factory ``serving.cli`` calls with the parsed ``serve`` flags (``--events-log``).

    Raises:
        EventsLogError: the ``--events-log`` directory cannot be used.
    """
    directory = getattr(args, "events_log", None)
    return events_routes(os.path.abspath(directory) if directory else None)
