"""The durable, append-only event log: exactly-once appends, crash recovery, tailing readers.

`EventLog` appends batches. `append` returns only after the records are written and fsync'ed,
so a returned result is an acknowledgement: that event survives any crash. Each event id is
stored once: an id already in the log (a client's retry, or a repeat inside one batch) is
answered as a duplicate with the sequence number of the stored record. An id sent again with
different content (`Event.content`, or another timestamp when the retry sets one) is a conflict: the whole batch is refused with
`EventConflictError` and nothing of it is written. (The stored content is kept as a hash, so a
different event whose content hashes alike, odds about 2^-64, would pass as a duplicate.)

Several writers (the model server's events route, ``recsys events add``) may share one log:
every append holds an exclusive ``flock`` on ``LOCK`` and first catches up with records the
others appended. Catching up is also how a log is recovered when opened: records are checked
(length + CRC framing, see `online.log_format`), a torn tail left by a writer that died in the
middle of a write (never acknowledged) is truncated, and damage followed by valid records is
reported as `LogCorruptError` instead of being cut away. A log found damaged (when opened or
later) is not an error of the opener: the `EventLog` stays open in a *damaged* state (`damage`
says where) and every `append` raises `LogCorruptError` naming the log and the commands that
repair it (``recsys events check`` / ``repair``, `online.log_repair`), until the segment files
change; then it reads the log again from the start and, repaired, takes appends again.

`LogReader` tails a log without the lock (the span roller, the learner): it returns complete
records in sequence order, stops before a tail that is still being written, and skips any
record whose event id was already read (duplicates are detected again on replay).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import threading
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

from core import durable_files
from online import log_format as fmt
from online.config import EventLogConfig
from online.events import Event

_LOG = logging.getLogger(__name__)
LOCK_FILE = "LOCK"


class EventConflictError(ValueError):
    """Events reuse stored (or batch-mate) event ids with different content; nothing was written.

    Attributes:
      conflicts: (index in the batch, event id, sequence number of the stored event) of each.
    """

    def __init__(self, conflicts: Sequence[Tuple[int, str, int]]) -> None:
        self.conflicts = list(conflicts)
        shown = "; ".join(f"event {i}: id {eid!r} is stored as seq {seq} with other content"
                          for i, eid, seq in self.conflicts[:5])
        more = f" (and {len(self.conflicts) - 5} more)" if len(self.conflicts) > 5 else ""
        super().__init__(f"{len(self.conflicts)} event(s) conflict with stored events: {shown}{more}; "
                         "nothing of the batch was stored")


def damage_message(directory: str, detail: str) -> str:
    """The one-line message of a damaged log: where, and the commands that repair it."""
    return (f"the event log {directory} is damaged ({detail}); events are refused until it is repaired: "
            f"run `recsys events check --log {directory}`, then `recsys events repair --log {directory}`")


def _files_signature(directory: str) -> Tuple[Tuple[str, int, int], ...]:
    """(path, size, mtime) of every segment: changes when a repair rewrites the log."""
    out = []
    for _, path in fmt.list_segments(directory):
        stat = os.stat(path)
        out.append((path, stat.st_size, stat.st_mtime_ns))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class AppendResult:
    """The acknowledgement of one event: its id, its sequence number, whether it was new."""

    event_id: str
    seq: int
    duplicate: bool


@dataclasses.dataclass(frozen=True)
class LoggedEvent:
    """An event read back from the log."""

    seq: int
    event: Event
    received_at: float


def _payload_event(payload: Dict, where: str) -> LoggedEvent:
    try:
        return LoggedEvent(int(payload["seq"]), Event.from_record(payload["event"]), float(payload["at"]))
    except (KeyError, TypeError, ValueError) as err:
        raise fmt.LogCorruptError(f"{where}: record with a checksum but no valid event ({err})") from err


class _Cursor:
    """Position in a log folder: which segment, which byte, which sequence number is next."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.segment = -1  # index into the segment list
        self.offset = 0
        self.next_seq = 0

    def chunks(self) -> Iterator[Tuple[str, int, fmt.ScanResult, bool]]:
        """Scans the new bytes of each segment: (path, base offset, scan, is last segment).

        The caller `accept`s records in order; the cursor moves on to the next segment only
        once every record of the current one was accepted and its tail is clean.
        """
        segments = fmt.list_segments(self.directory)
        if self.segment < 0:
            if not segments:
                return
            self.segment, self.offset = 0, 0
        while self.segment < len(segments):
            first_seq, path = segments[self.segment]
            if self.offset == 0 and first_seq != self.next_seq:
                raise fmt.LogCorruptError(f"{path}: segment starts at seq {first_seq}, expected {self.next_seq}")
            base = self.offset
            result = fmt.scan(fmt.read_from(path, base))
            is_last = self.segment == len(segments) - 1
            yield path, base, result, is_last
            if result.tail != fmt.CLEAN or is_last or self.offset != base + result.valid_end:
                return
            self.segment, self.offset = self.segment + 1, 0

    def accept(self, path: str, base: int, record: Tuple[int, int, Dict]) -> Optional[LoggedEvent]:
        """The event of one scanned record (None for a gap record); moves the position past it."""
        start, end, payload = record
        where = f"{path}@{base + start}"
        try:
            gap_end = fmt.gap_end(payload)
        except ValueError as err:
            raise fmt.LogCorruptError(f"{where}: {err}") from err
        if gap_end >= 0:
            if payload.get("seq") != self.next_seq:
                raise fmt.LogCorruptError(f"{where}: gap record at seq {payload.get('seq')}, expected {self.next_seq}")
            self.next_seq, self.offset = gap_end, base + end
            return None
        logged = _payload_event(payload, where)
        if logged.seq != self.next_seq:
            raise fmt.LogCorruptError(f"{where}: seq {logged.seq}, expected {self.next_seq}")
        self.next_seq += 1
        self.offset = base + end
        return logged


class EventLog:
    """A writer of the log in `directory` (created if needed); see the module docstring.

    Args:
      directory: the log folder.
      config: segment size and batch limits.
    """

    def __init__(self, directory: str, config: EventLogConfig = EventLogConfig()) -> None:
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self._config = config
        self._cursor = _Cursor(directory)
        # event id -> (seq, hash of Event.content(), timestamp) of the stored record
        self._ids: Dict[str, Tuple[int, int, int]] = {}
        self._thread_lock = threading.Lock()
        self._lock_fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
        self.truncated_bytes = 0
        self.damage: Optional[str] = None
        self._damaged_files: Tuple[Tuple[str, int, int], ...] = ()
        with self._exclusive():
            try:
                self._checked_catch_up()
            except fmt.LogCorruptError:
                pass  # open in the damaged state: `damage` says why, `append` refuses

    def close(self) -> None:
        """Releases the lock file descriptor."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def end_seq(self) -> int:
        """Sequence number the next new record will get (as of the last append or open)."""
        return self._cursor.next_seq

    def seq_of(self, event_id: str) -> Optional[int]:
        """Sequence number of a stored event id, or None."""
        known = self._ids.get(event_id)
        return None if known is None else known[0]

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Holds the log for this thread and, through flock, against other processes."""
        with self._thread_lock:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _checked_catch_up(self) -> None:
        """`_catch_up`, entering or leaving the damaged state (lock held; see the module docstring).

        Raises:
          LogCorruptError: the log is damaged (its message names the repair commands).
        """
        if self.damage is not None:
            if _files_signature(self.directory) == self._damaged_files:
                raise fmt.LogCorruptError(self.damage)
            self._cursor, self._ids, self.damage = _Cursor(self.directory), {}, None  # changed: read it again
            _LOG.info("event log %s changed since it was found damaged: reading it again", self.directory)
        try:
            self._catch_up()
        except fmt.LogCorruptError as err:
            self.damage = damage_message(self.directory, str(err))
            self._damaged_files = _files_signature(self.directory)
            _LOG.error("%s", self.damage)
            raise fmt.LogCorruptError(self.damage) from err

    def _catch_up(self) -> None:
        """Reads records appended since the last call; truncates a torn tail (lock held)."""
        cursor = self._cursor
        for path, base, result, is_last in cursor.chunks():
            for record in result.records:
                logged = cursor.accept(path, base, record)
                if logged is None:
                    continue
                if logged.event.event_id in self._ids:
                    _LOG.warning("%s: seq %d repeats event id %s; readers skip it", path, logged.seq, logged.event.event_id)
                else:
                    event = logged.event
                    self._ids[event.event_id] = (logged.seq, hash(event.content()), event.timestamp)
            if result.tail == fmt.CORRUPT:
                raise fmt.LogCorruptError(
                    f"{path}: damaged record at byte {base + result.valid_end} followed by valid records"
                )
            if result.tail == fmt.TORN:
                if not is_last:
                    raise fmt.LogCorruptError(f"{path}: torn record at byte {base + result.valid_end} in a sealed segment")
                size = os.path.getsize(path)
                keep = base + result.valid_end
                _LOG.warning("%s: truncating a torn tail of %d bytes (never acknowledged)", path, size - keep)
                with open(path, "r+b") as handle:
                    handle.truncate(keep)
                    os.fsync(handle.fileno())
                self.truncated_bytes += size - keep

    def _active_segment(self, incoming: int) -> str:
        """Path of the segment to append to, starting a new one when the active one is full."""
        segments = fmt.list_segments(self.directory)
        if segments:
            path = segments[-1][1]
            if os.path.getsize(path) == 0 or os.path.getsize(path) + incoming <= self._config.segment_bytes:
                return path
        path = os.path.join(self.directory, fmt.segment_name(self._cursor.next_seq))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.fsync(fd)
        os.close(fd)
        durable_files.fsync_dir(self.directory)
        return path

    def append(self, events: Sequence[Event], received_at: float) -> List[AppendResult]:
        """Appends events durably; returns one acknowledgement per event, in order.

        Args:
          events: validated events.
          received_at: the receiving clock, stored with each record.

        Returns:
          The results; `duplicate` marks ids already stored (nothing new was written for them).

        Raises:
          OSError: the write or fsync failed; none of these events is acknowledged.
          EventConflictError: an event reuses a stored id with other content; nothing written.
          LogCorruptError: the log is damaged; nothing written.
        """
        with self._exclusive():
            self._checked_catch_up()
            results: List[AppendResult] = []
            chunks: List[bytes] = []
            batch_ids: Dict[str, Tuple[int, int, int]] = {}
            conflicts: List[Tuple[int, str, int]] = []
            next_seq = self._cursor.next_seq
            for index, event in enumerate(events):
                known = self._ids.get(event.event_id, batch_ids.get(event.event_id))
                if known is not None:
                    seq, content_hash, timestamp = known
                    if content_hash != hash(event.content()) or (event.timestamp_given and event.timestamp != timestamp):
                        conflicts.append((index, event.event_id, seq))
                    results.append(AppendResult(event.event_id, seq, True))
                    continue
                payload = {"seq": next_seq, "at": received_at, "event": event.to_record()}
                chunks.append(fmt.encode_record(payload))
                batch_ids[event.event_id] = (next_seq, hash(event.content()), event.timestamp)
                results.append(AppendResult(event.event_id, next_seq, False))
                next_seq += 1
            if conflicts:
                raise EventConflictError(conflicts)
            if chunks:
                self._write(b"".join(chunks))
        return results

    def _write(self, data: bytes) -> None:
        """Writes and fsyncs `data`, then reads it back as the next records (lock held)."""
        path = self._active_segment(len(data))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        self._checked_catch_up()


class LogReader:
    """Reads a log in sequence order without locking it (see the module docstring).

    Args:
      directory: the log folder (it may not exist yet).
    """

    def __init__(self, directory: str) -> None:
        self._cursor = _Cursor(directory)
        self._ids: Set[str] = set()
        self.duplicates_skipped = 0

    @property
    def next_seq(self) -> int:
        """Sequence number of the next record this reader will return or skip."""
        return self._cursor.next_seq

    def read(self, max_records: Optional[int] = None, start_seq: int = 0) -> List[LoggedEvent]:
        """New complete records (duplicates of earlier ids left out), oldest first.

        Args:
          max_records: stop after this many records (None: all available).
          start_seq: records below this sequence number are read for their ids but not returned.

        Raises:
          LogCorruptError: the log is damaged.
        """
        out: List[LoggedEvent] = []
        cursor = self._cursor
        for path, base, result, _ in cursor.chunks():
            for record in result.records:
                if max_records is not None and len(out) >= max_records:
                    return out
                logged = cursor.accept(path, base, record)
                if logged is None:
                    continue
                if logged.event.event_id in self._ids:
                    self.duplicates_skipped += 1
                    continue
                self._ids.add(logged.event.event_id)
                if logged.seq >= start_seq:
                    out.append(logged)
            if result.tail == fmt.CORRUPT:
                raise fmt.LogCorruptError(f"{path}: damaged record at byte {base + result.valid_end} followed by valid records")
        return out
