"""`POST /v1/events`: a framework-free handler for the model server's REST front end.

`EventsHandler.handle(body)` takes the request body and returns ``(HTTP status, JSON dict)``:

* 200 ``{"acknowledged": n, "appended": a, "duplicates": d, "results": [{"event_id", "seq",
  "status": "appended" | "duplicate"}, ...]}`` once every event is durably in the log (fsync);
  a retried event (same ``event_id``) is acknowledged again with its original ``seq``;
* 400 ``{"error": "...", "problems": [{"index", "field", "message"}, ...]}`` for a body that is
  not JSON (or nests deeper than `online.events.MAX_JSON_DEPTH`) or a batch with an invalid
  event: every field's type and range is checked, each problem names the event index and field
  (nothing of that batch is stored);
* 409 ``{"error": "...", "conflicts": [{"index", "event_id", "seq"}, ...]}`` when an event
  reuses the ``event_id`` of a stored event (or of an earlier event of the batch) with other
  content: nothing of that batch is stored (a retry with the same content is a duplicate, 200);
* 413 for a body over the size limit;
* 503 when the log cannot be written (nothing of that batch is acknowledged: retry it with the
  same event ids), and while the log is damaged: the error names the log and the commands that
  repair it (``recsys events check`` / ``repair``); predictions are served meanwhile.

Errors are in TF Serving's REST form (an ``error`` string), so clients handle them alike.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, Tuple

from online.config import EventLogConfig
from online.event_log import EventConflictError, EventLog
from online.events import EventValidationError, load_json, parse_batch
from online.log_format import LogCorruptError

ROUTE = "/v1/events"
METHOD = "POST"

_LOG = logging.getLogger(__name__)


class EventsHandler:
    """Validates and durably appends event batches (see the module docstring).

    Args:
      log: the event log.
      config: body and batch limits.
      clock: the receiving clock (Unix seconds).
    """

    def __init__(self, log: EventLog, config: EventLogConfig = EventLogConfig(),
                 clock: Callable[[], float] = time.time) -> None:
        self._log = log
        self._config = config
        self._clock = clock

    def handle(self, body: bytes) -> Tuple[int, Dict[str, Any]]:
        """Handles one request body; returns (HTTP status, JSON-compatible reply)."""
        if len(body) > self._config.max_body_bytes:
            return 413, {"error": f"request body of {len(body)} bytes exceeds the limit of {self._config.max_body_bytes}"}
        try:
            payload = load_json(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as err:
            return 400, {"error": f"request body is not valid UTF-8 JSON: {err}"}
        now = self._clock()
        try:
            events = parse_batch(payload, now, self._config.max_batch_events, self._config.max_future_s)
        except EventValidationError as err:
            return 400, {"error": str(err), "problems": [p.to_dict() for p in err.problems]}
        try:
            results = self._log.append(events, now)
        except OSError as err:
            _LOG.exception("event log %s: append failed", self._log.directory)
            return 503, {"error": f"the event log could not store the batch ({err}); nothing was acknowledged, "
                                  "retry with the same event_id values"}
        except EventConflictError as err:
            return 409, {"error": str(err), "conflicts": [{"index": i, "event_id": e, "seq": q} for i, e, q in err.conflicts]}
        except LogCorruptError as err:  # logged once by the log when it found the damage
            return 503, {"error": str(err)}
        duplicates = sum(r.duplicate for r in results)
        return 200, {
            "acknowledged": len(results),
            "appended": len(results) - duplicates,
            "duplicates": duplicates,
            "results": [{"event_id": r.event_id, "seq": r.seq, "status": "duplicate" if r.duplicate else "appended"}
                        for r in results],
        }
