"""Interaction events: the schema, validation with clear errors, and the log record form.

An event says that a user interacted with an item. JSON fields (the raw feature names of
`core.features` plus two of this module):

* ``user_id``, ``item_id``: required non-empty strings.
* ``type``: ``rating`` (default), or an implicit type ``view``, ``click``, ``purchase``.
* ``rating``: required for ``rating`` events, in [MIN_RATING, MAX_RATING]; implicit events must
  leave it out and are stored with the fixed rating of their type (`IMPLICIT_RATINGS`), so every
  span holds one kind of label.
* ``timestamp``: Unix seconds (integer); the receiving clock when left out.
* ``event_id``: the client's id for exactly-once delivery (a retried event with the same id
  is acknowledged again but stored once); a random id is assigned when left out, so clients
  that retry must send one.
* optional side features: ``user_age``, ``user_gender``, ``user_occupation`` (a user's profile,
  newest wins) and ``item_title``, ``item_genres``, ``item_year`` (they describe an item that
  is not yet in the catalog; catalog items keep their catalog features).

`parse_batch` checks a whole batch and reports every problem with its event index and field
(the type of every field first, so no value of the wrong type reaches a comparison or a lookup);
a batch with any bad event is refused as a whole, so a client never has to guess which of its
events were stored. `load_json` parses a request body or file with a bound on its nesting depth
(checked before parsing, so deep nesting is a one-line error, never a recursion error).

Two events with the same ``event_id`` are the same event when `Event.content` is equal (and
their timestamps, when the retry sends one); otherwise the second one conflicts with the first
(`online.event_log` refuses it).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import uuid
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from core import features as F

EVENT_ID = "event_id"
EVENT_TYPE = "type"
EVENTS_KEY = "events"
RATING_TYPE = "rating"
IMPLICIT_RATINGS: Dict[str, float] = {"view": 3.0, "click": 4.0, "purchase": 5.0}
EVENT_TYPES = (RATING_TYPE,) + tuple(IMPLICIT_RATINGS)

USER_SIDE = (F.USER_AGE, F.USER_GENDER, F.USER_OCCUPATION)
ITEM_SIDE = (F.ITEM_TITLE, F.ITEM_GENRES, F.ITEM_YEAR)
_REQUIRED = (F.USER_ID, F.ITEM_ID)
_KNOWN = (EVENT_ID, EVENT_TYPE, F.USER_ID, F.ITEM_ID, F.RATING, F.TIMESTAMP) + USER_SIDE + ITEM_SIDE

_EVENT_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_MAX_ID_CHARS = 256
_MAX_TEXT_CHARS = 512
_MAX_YEAR = 3000
_MAX_SHOWN_CHARS = 60
MAX_JSON_DEPTH = 32  # an event batch needs 3 levels: {"events": [{...}]}
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')

SideValue = Union[str, int]


@dataclasses.dataclass(frozen=True)
class Event:
    """One validated interaction event (see the module docstring)."""

    event_id: str
    user_id: str
    item_id: str
    event_type: str
    rating: float
    timestamp: int
    side: Tuple[Tuple[str, SideValue], ...] = ()
    # False when the receiving clock filled the timestamp in (a retry may then carry another).
    timestamp_given: bool = dataclasses.field(default=True, compare=False)

    def content(self) -> Tuple[Any, ...]:
        """What a retry of this event must repeat: every field but the id and the timestamp."""
        return (self.user_id, self.item_id, self.event_type, self.rating, tuple(sorted(self.side)))

    def user_side(self) -> Dict[str, SideValue]:
        """The user side features this event gives (a subset of `USER_SIDE`)."""
        return {k: v for k, v in self.side if k in USER_SIDE}

    def item_side(self) -> Dict[str, SideValue]:
        """The item side features this event gives (a subset of `ITEM_SIDE`)."""
        return {k: v for k, v in self.side if k in ITEM_SIDE}

    def to_record(self) -> Dict[str, Any]:
        """The event as a JSON-compatible dict (the log's payload)."""
        record: Dict[str, Any] = {
            EVENT_ID: self.event_id, EVENT_TYPE: self.event_type, F.USER_ID: self.user_id,
            F.ITEM_ID: self.item_id, F.RATING: self.rating, F.TIMESTAMP: self.timestamp,
        }
        record.update(dict(self.side))
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Event":
        """Rebuilds an event written by `to_record` (trusted input: the log itself)."""
        side = tuple((k, record[k]) for k in USER_SIDE + ITEM_SIDE if k in record)
        return cls(
            event_id=str(record[EVENT_ID]), user_id=str(record[F.USER_ID]),
            item_id=str(record[F.ITEM_ID]), event_type=str(record[EVENT_TYPE]),
            rating=float(record[F.RATING]), timestamp=int(record[F.TIMESTAMP]), side=side,
        )


@dataclasses.dataclass(frozen=True)
class Problem:
    """One validation problem: which event (None: the batch itself), which field, what."""

    index: Optional[int]
    field: Optional[str]
    message: str

    def __str__(self) -> str:
        where = "batch" if self.index is None else f"event {self.index}"
        if self.field:
            where += f", field {self.field!r}"
        return f"{where}: {self.message}"

    def to_dict(self) -> Dict[str, Any]:
        """JSON form for error responses."""
        return {"index": self.index, "field": self.field, "message": self.message}


class EventValidationError(ValueError):
    """A batch of events is invalid; `problems` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        shown = "; ".join(str(p) for p in self.problems[:10])
        more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        super().__init__(f"{len(self.problems)} invalid event field(s): {shown}{more}")


def _shown(value: Any) -> str:
    """A value for an error message: its repr, cut to one short line."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN_CHARS else text[: _MAX_SHOWN_CHARS - 3] + "..."


def load_json(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parses JSON whose arrays and objects nest at most `max_depth` levels deep.

    Raises:
      ValueError: the text is not JSON, or nests deeper (found without recursion).
    """
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                raise ValueError(f"JSON nested more than {max_depth} levels deep (an event batch needs 3)")
        elif token in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err})") from err


def new_event_id() -> str:
    """A random event id, for events sent without one."""
    return f"ev-{uuid.uuid4().hex}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(float(value)))


def _text_problem(value: Any, limit: int) -> Optional[str]:
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value.strip():
        return "must not be empty or blank"
    if len(value) > limit:
        return f"must be at most {limit} characters, got {len(value)}"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "must not contain control characters"
    return None


def _int_problem(value: Any, low: int, high: int) -> Optional[str]:
    if not _is_int(value):
        return f"must be an integer, got {_shown(value)}"
    if not low <= value <= high:
        return f"must be between {low} and {high}, got {value}"
    return None


def _side_problem(name: str, value: Any) -> Optional[str]:
    if name == F.USER_AGE:
        return _int_problem(value, F.UNKNOWN_INT, F.MAX_AGE)
    if name == F.ITEM_YEAR:
        return _int_problem(value, F.UNKNOWN_INT, _MAX_YEAR)
    return _text_problem(value, _MAX_TEXT_CHARS)


def _validate_one(raw: Any, index: int, now: float, max_future_s: int,
                  id_factory: Callable[[], str]) -> Tuple[Optional[Event], List[Problem]]:
    if not isinstance(raw, Mapping):
        return None, [Problem(index, None, f"must be a JSON object, got {type(raw).__name__}")]
    problems = [Problem(index, key, f"unknown field (known: {', '.join(_KNOWN)})")
                for key in raw if key not in _KNOWN]
    for name in _REQUIRED:
        if name not in raw:
            problems.append(Problem(index, name, "is required"))
        else:
            message = _text_problem(raw[name], _MAX_ID_CHARS)
            if message:
                problems.append(Problem(index, name, message))
    event_id = raw.get(EVENT_ID)
    if event_id is not None and not (isinstance(event_id, str) and _EVENT_ID_RE.match(event_id)):
        problems.append(Problem(index, EVENT_ID, f"must match {_EVENT_ID_RE.pattern}, got {_shown(event_id)}"))
    event_type = raw.get(EVENT_TYPE, RATING_TYPE)
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        problems.append(Problem(index, EVENT_TYPE, f"must be one of {', '.join(EVENT_TYPES)}, got {_shown(event_type)}"))
    rating: Any = raw.get(F.RATING)
    if event_type == RATING_TYPE:
        if rating is None:
            problems.append(Problem(index, F.RATING, "is required for rating events"))
        elif not _is_number(rating):
            problems.append(Problem(index, F.RATING, f"must be a finite number, got {_shown(rating)}"))
        elif not F.MIN_RATING <= float(rating) <= F.MAX_RATING:
            problems.append(Problem(index, F.RATING, f"must be between {F.MIN_RATING} and {F.MAX_RATING}, got {rating}"))
    elif isinstance(event_type, str) and event_type in IMPLICIT_RATINGS:
        if rating is not None:
            problems.append(Problem(index, F.RATING, f"must be left out for {event_type} events (stored as {IMPLICIT_RATINGS[event_type]})"))
        rating = IMPLICIT_RATINGS[event_type]
    timestamp = raw.get(F.TIMESTAMP)
    timestamp_given = timestamp is not None
    if timestamp is None:
        timestamp = int(now)
    else:
        message = _int_problem(timestamp, 0, int(now) + max_future_s)
        if message:
            problems.append(Problem(index, F.TIMESTAMP, message + " (Unix seconds, not in the future)"))
    side = []
    for name in USER_SIDE + ITEM_SIDE:
        if name in raw:
            message = _side_problem(name, raw[name])
            if message:
                problems.append(Problem(index, name, message))
            else:
                side.append((name, raw[name]))
    if problems:
        return None, problems
    return Event(
        event_id=event_id if event_id is not None else id_factory(),
        user_id=raw[F.USER_ID], item_id=raw[F.ITEM_ID], event_type=event_type,
        rating=float(rating), timestamp=int(timestamp), side=tuple(side), timestamp_given=timestamp_given,
    ), []


def parse_batch(payload: Any, now: float, max_events: int = 1000, max_future_s: int = 86_400,
                id_factory: Callable[[], str] = new_event_id) -> List[Event]:
    """Validates a batch of events.

    Args:
      payload: ``{"events": [event, ...]}``, a list of events, or one event object.
      now: the receiving clock (Unix seconds): default timestamp and future limit.
      max_events: most events in one batch.
      max_future_s: how far ahead of `now` a timestamp may be.
      id_factory: makes the ids of events sent without one.

    Returns:
      The events, in order.

    Raises:
      EventValidationError: listing every problem, by event index and field; no event of a
        batch with a problem is returned.
    """
    if isinstance(payload, Mapping) and EVENTS_KEY in payload:
        extra = sorted(k for k in payload if k != EVENTS_KEY)
        if extra:
            raise EventValidationError([Problem(None, k, "unknown field next to 'events'") for k in extra])
        items = payload[EVENTS_KEY]
        if not isinstance(items, list):
            raise EventValidationError([Problem(None, EVENTS_KEY, f"must be a list, got {type(items).__name__}")])
    elif isinstance(payload, list):
        items = payload
    elif isinstance(payload, Mapping):
        items = [payload]
    else:
        raise EventValidationError([Problem(None, None, f"expected an event object or a list of events, got {type(payload).__name__}")])
    if not items:
        raise EventValidationError([Problem(None, EVENTS_KEY, "the batch holds no events")])
    if len(items) > max_events:
        raise EventValidationError([Problem(None, EVENTS_KEY, f"at most {max_events} events per batch, got {len(items)}")])
    events: List[Event] = []
    problems: List[Problem] = []
    for index, raw in enumerate(items):
        event, found = _validate_one(raw, index, now, max_future_s, id_factory)
        problems.extend(found)
        if event is not None:
            events.append(event)
    if problems:
        raise EventValidationError(problems)
    return events
