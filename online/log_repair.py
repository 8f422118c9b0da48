"""`recsys events check` / `recsys events repair`: find damaged records of the event log, move them aside.

`check(directory)` reads every segment from its start (without the lock: read-only) and lists
each damaged region with its segment, byte offsets and the sequence numbers it held: bytes that
are no valid record (bad magic, length or checksum) followed by valid records, a torn record at
the end of a sealed segment, a record with a checksum but no valid event, or a record whose
sequence number is not the next one. A torn tail of the *last* segment is not damage (a write
cut short by a crash, never acknowledged; the next writer that opens the log cuts it off), so
it is only noted.

`repair(directory)` (holding the log's lock, so no writer appends meanwhile) rewrites each
damaged segment without its damaged regions:

* every damaged region is first written to ``<log>/quarantine/<segment>@<start>-<end>.bin``
  and fsync'ed, so no byte is lost;
* every intact record is kept, byte for byte, with its sequence number: acknowledged events
  keep the ``seq`` their clients were given, and their ids still answer retries as duplicates
  (exactly-once holds across the repair);
* the sequence numbers the damaged bytes held are covered by one *gap record*
  (`online.log_format.encode_gap`, naming the quarantine file), so sequence numbers stay
  contiguous and the span roller's and the learner's offsets stay valid;
* the new segment is written to a hidden temporary file, fsync'ed and renamed over the old one,
  then the folder is fsync'ed. A repair cut short leaves each segment either old or new; running
  it again finishes it (quarantine file names are fixed by segment and offset).

A server whose log was found damaged refuses events until the segment files change, then reads
the repaired log again and takes events (`online.event_log`).
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import time
from typing import List, Optional, Tuple

from core import durable_files
from online import log_format as fmt
from online.event_log import LOCK_FILE
from online.events import Event

QUARANTINE_DIR = "quarantine"


class RepairError(RuntimeError):
    """The log is damaged in a way a repair cannot fix without losing intact records."""


@dataclasses.dataclass(frozen=True)
class Damage:
    """One damaged region of a segment."""

    path: str
    start: int
    end: int
    reason: str
    lost: Optional[Tuple[int, int]] = None  # [first, end) sequence numbers it held, when known

    def __str__(self) -> str:
        held = f", held seq {self.lost[0]}..{self.lost[1] - 1}" if self.lost and self.lost[1] > self.lost[0] else ""
        return f"{self.path} bytes {self.start}..{self.end - 1} ({self.end - self.start} bytes): {self.reason}{held}"


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """What `check` found: damaged regions, notes (a torn last tail), the seq after the last record."""

    directory: str
    damages: List[Damage]
    notes: List[str]
    end_seq: int

    @property
    def damaged(self) -> bool:
        """Whether a repair is needed."""
        return bool(self.damages)


@dataclasses.dataclass
class _SegmentPlan:
    path: str
    content: bytes
    damages: List[Damage]


def _record_seq(payload: dict) -> Tuple[int, int]:
    """(seq, next seq) of a valid event or gap record; ValueError when it is neither."""
    seq = payload.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise ValueError(f"invalid seq {seq!r}")
    end = fmt.gap_end(payload)
    if end >= 0:
        return seq, end
    try:
        Event.from_record(payload["event"])
        float(payload["at"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"a checksum but no valid event ({err})") from err
    return seq, seq + 1


def _plan_segment(path: str, data: bytes, expected: int, next_first: Optional[int],
                  now: float) -> Tuple[_SegmentPlan, int, Optional[str]]:
    """The repaired content of one segment, its damages, the next seq, and a torn-tail note."""
    out, damages, pending = bytearray(), [], None  # pending: the last damage not yet covered by a gap
    name = os.path.basename(path)
    pos = 0

    def add_gap(until: int) -> None:
        nonlocal expected, pending
        quarantine = f"{name}@{pending.start}-{pending.end}.bin" if pending else ""
        out.extend(fmt.encode_gap(expected, until, now, quarantine))
        if pending is not None:
            damages[-1] = dataclasses.replace(pending, lost=(expected, until))
        expected, pending = until, None

    while pos < len(data):
        result = fmt.scan(data, pos)
        for start, end, payload in result.records:
            try:
                seq, after = _record_seq(payload)
                if seq < expected:
                    raise ValueError(f"seq {seq} where {expected} was expected (a stale or repeated record)")
            except ValueError as err:
                pending = Damage(path, start, end, str(err))
                damages.append(pending)
                continue
            if seq > expected:
                add_gap(seq)
            out.extend(data[start:end])
            expected, pending = after, None
        if result.tail == fmt.CLEAN:
            break
        resume = fmt.valid_record_after(data, result.valid_end)
        if resume < 0 and next_first is None:  # torn tail of the last segment: not damage
            out.extend(data[result.valid_end:])
            note = (f"{path}: a torn tail of {len(data) - result.valid_end} bytes at byte {result.valid_end} "
                    "(a write cut short, never acknowledged; the next writer cuts it off)")
            return _SegmentPlan(path, bytes(out), damages), expected, note
        end = len(data) if resume < 0 else resume
        pending = Damage(path, result.valid_end, end,
                         "bytes that are no valid record" + (", followed by valid records" if resume >= 0 else
                                                              " at the end of a sealed segment"))
        damages.append(pending)
        pos = end
    if next_first is not None:
        if next_first < expected:
            raise RepairError(f"{path}: the next segment starts at seq {next_first}, before seq {expected}")
        if next_first > expected:
            add_gap(next_first)
    return _SegmentPlan(path, bytes(out), damages), expected, None


def _plan(directory: str, now: float) -> Tuple[List[_SegmentPlan], List[str], int]:
    segments = fmt.list_segments(directory)
    plans, notes = [], []
    expected = segments[0][0] if segments else 0
    for index, (first_seq, path) in enumerate(segments):
        if first_seq != expected:
            raise RepairError(f"{path}: segment starts at seq {first_seq}, expected {expected}")
        next_first = segments[index + 1][0] if index + 1 < len(segments) else None
        plan, expected, note = _plan_segment(path, fmt.read_from(path, 0), expected, next_first, now)
        plans.append(plan)
        if note:
            notes.append(note)
    return plans, notes, expected


def check(directory: str) -> CheckReport:
    """Lists the damaged regions of the log in `directory` (see the module docstring).

    Raises:
      RepairError: the segments themselves overlap (not repairable by moving records aside).
    """
    plans, notes, end_seq = _plan(directory, time.time())
    return CheckReport(directory, [d for p in plans for d in p.damages], notes, end_seq)


def _write_durably(path: str, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def repair(directory: str, now: Optional[float] = None) -> CheckReport:
    """Moves every damaged region to the quarantine folder and rewrites its segment.

    Args:
      directory: the log folder.
      now: the time stored in gap records (default: the clock).

    Returns:
      The report of what was found (and moved); `damages` is empty when nothing was done.

    Raises:
      RepairError: as `check`; nothing is changed.
      OSError: a write failed; each segment is then either untouched or fully repaired.
    """
    now = time.time() if now is None else now
    lock_fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        plans, notes, end_seq = _plan(directory, now)
        quarantine = os.path.join(directory, QUARANTINE_DIR)
        for plan in plans:
            if not plan.damages:
                continue
            os.makedirs(quarantine, exist_ok=True)
            data = fmt.read_from(plan.path, 0)
            name = os.path.basename(plan.path)
            for damage in plan.damages:
                _write_durably(os.path.join(quarantine, f"{name}@{damage.start}-{damage.end}.bin"),
                               data[damage.start:damage.end])
            durable_files.fsync_dir(quarantine)
            tmp = os.path.join(directory, f".repair-{name}.tmp")
            _write_durably(tmp, plan.content)
            os.replace(tmp, plan.path)
            durable_files.fsync_dir(directory)
        return CheckReport(directory, [d for p in plans for d in p.damages], notes, end_seq)
    finally:
        os.close(lock_fd)
