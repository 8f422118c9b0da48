"""On-disk format of the event log: segment files of length- and checksum-framed records.

A log is a folder of segment files ``<first seq, 20 digits>.seg``. A segment is a sequence of
records, each::

    magic b"EVL1" | payload length (uint32 LE) | CRC-32 of the payload (uint32 LE) | payload

and the payload is UTF-8 JSON ``{"seq": n, "at": receive time, "event": {...}}``. Sequence
numbers count records from 0 across segments, without gaps. The one exception is written by
``recsys events repair`` (`online.log_repair`): a *gap record* ``{"seq": n, "at": repair time,
"lost": {"until": m, "quarantine": file}}`` stands for records n..m-1 that were damaged and moved
to the quarantine file; readers skip it, and the record after it has sequence number m.

`scan` reads the records of a segment's bytes and classifies what follows the last good one:

* ``clean``: nothing;
* ``torn``: bytes that hold no complete valid record (a write cut short by a crash: those
  records were never acknowledged, because acknowledgement waits for the fsync after the
  write);
* ``corrupt``: a bad record followed by a valid one - damage inside acknowledged data, which
  is reported, never truncated.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import zlib
from typing import Any, Dict, List, Tuple

MAGIC = b"EVL1"
HEADER = struct.Struct("<4sII")
MAX_PAYLOAD_BYTES = 1 << 20
SEGMENT_SUFFIX = ".seg"

CLEAN, TORN, CORRUPT = "clean", "torn", "corrupt"


class LogCorruptError(RuntimeError):
    """Acknowledged data of the log is damaged; the message names the segment and offset."""


def encode_record(payload: Dict[str, Any]) -> bytes:
    """One framed record holding `payload` as JSON."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"record of {len(body)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    return HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body


def encode_gap(seq: int, until: int, at: float, quarantine: str) -> bytes:
    """A gap record: records `seq`..`until - 1` were lost and moved to `quarantine`."""
    return encode_record({"seq": seq, "at": at, "lost": {"until": until, "quarantine": quarantine}})


def gap_end(payload: Dict[str, Any]) -> int:
    """The sequence number after a gap record, or -1 when `payload` is not one.

    Raises:
      ValueError: a gap record without a valid end.
    """
    lost = payload.get("lost")
    if lost is None:
        return -1
    until = lost.get("until") if isinstance(lost, dict) else None
    if not isinstance(until, int) or isinstance(until, bool) or until <= payload.get("seq", until):
        raise ValueError(f"gap record with an invalid end {until!r}")
    return until


def _record_at(data: bytes, offset: int) -> Tuple[Dict[str, Any], int]:
    """The record starting at `offset` and the offset after it; ValueError when invalid."""
    if len(data) - offset < HEADER.size:
        raise ValueError("incomplete header")
    magic, length, crc = HEADER.unpack_from(data, offset)
    if magic != MAGIC or length > MAX_PAYLOAD_BYTES:
        raise ValueError("bad magic or length")
    start, end = offset + HEADER.size, offset + HEADER.size + length
    if end > len(data):
        raise ValueError("incomplete payload")
    body = data[start:end]
    if zlib.crc32(body) != crc:
        raise ValueError("checksum mismatch")
    payload = json.loads(body.decode("utf-8"))
    if not isinstance(payload, dict):
        raise ValueError("payload is not an object")
    return payload, end


def valid_record_after(data: bytes, offset: int) -> int:
    """Offset of the first valid record starting after `offset`, or -1."""
    position = data.find(MAGIC, offset + 1)
    while position >= 0:
        try:
            _record_at(data, position)
            return position
        except ValueError:
            position = data.find(MAGIC, position + 1)
    return -1


@dataclasses.dataclass
class ScanResult:
    """Records found from a start offset, where the good data ends, and what follows it."""

    records: List[Tuple[int, int, Dict[str, Any]]]  # (start offset, end offset, payload)
    valid_end: int
    tail: str


def scan(data: bytes, start: int = 0) -> ScanResult:
    """Parses the records of `data` from `start` (see the module docstring)."""
    records: List[Tuple[int, int, Dict[str, Any]]] = []
    offset = start
    while offset < len(data):
        try:
            payload, end = _record_at(data, offset)
        except (ValueError, UnicodeDecodeError):
            tail = CORRUPT if valid_record_after(data, offset) >= 0 else TORN
            return ScanResult(records, offset, tail)
        records.append((offset, end, payload))
        offset = end
    return ScanResult(records, offset, CLEAN)


def segment_name(first_seq: int) -> str:
    """File name of the segment whose first record has sequence number `first_seq`."""
    return f"{first_seq:020d}{SEGMENT_SUFFIX}"


def list_segments(directory: str) -> List[Tuple[int, str]]:
    """(first seq, path) of every segment of a log folder, in order."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        stem = name[: -len(SEGMENT_SUFFIX)]
        if name.endswith(SEGMENT_SUFFIX) and stem.isdigit() and len(stem) == 20:
            found.append((int(stem), os.path.join(directory, name)))
    return sorted(found)


def read_from(path: str, offset: int) -> bytes:
    """The bytes of a file from `offset` to its current end."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read()
