"""The durable event log: exactly-once appends, torn-tail recovery, corruption, readers, SIGKILL."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from online import log_format as fmt
from online.config import EventLogConfig
from online.event_log import EventLog, LogReader
from online.events import Event

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _events(prefix, n, start=0):
    return [Event(f"{prefix}{i}", f"u{i}", f"i{i}", "rating", 4.0, 1_600_000_000 + i) for i in range(start, start + n)]


def _ids(directory):
    return [logged.event.event_id for logged in LogReader(directory).read()]


def _raw_ids(directory):
    """Event ids of every complete record on disk, repeats included (no reader de-duplication)."""
    ids = []
    for _, path in fmt.list_segments(directory):
        with open(path, "rb") as handle:
            ids.extend(payload["event"]["event_id"] for _, _, payload in fmt.scan(handle.read()).records)
    return ids


def _last_segment(directory):
    return fmt.list_segments(directory)[-1][1]


def test_append_acknowledges_with_sequence_numbers_and_detects_duplicates(tmp_path):
    log = EventLog(str(tmp_path))
    first = log.append(_events("e", 3), 1.0)
    assert [(r.event_id, r.seq, r.duplicate) for r in first] == [("e0", 0, False), ("e1", 1, False), ("e2", 2, False)]
    again = log.append(_events("e", 2, start=2) + _events("e", 1, start=3), 2.0)
    assert [(r.seq, r.duplicate) for r in again] == [(2, True), (3, False), (3, True)]
    assert _ids(str(tmp_path)) == ["e0", "e1", "e2", "e3"]


def test_duplicates_are_detected_after_reopening(tmp_path):
    EventLog(str(tmp_path)).append(_events("e", 2), 1.0)
    reopened = EventLog(str(tmp_path))
    assert reopened.end_seq == 2 and reopened.seq_of("e1") == 1
    (result,) = reopened.append(_events("e", 1, start=1), 2.0)
    assert result.duplicate and result.seq == 1
    assert _ids(str(tmp_path)) == ["e0", "e1"]


@pytest.mark.parametrize("tear", ["header", "payload", "checksum", "garbage"])
def test_torn_tail_is_truncated_on_open_and_acknowledged_records_survive(tmp_path, tear):
    EventLog(str(tmp_path)).append(_events("e", 3), 1.0)
    path = _last_segment(str(tmp_path))
    good_size = os.path.getsize(path)
    record = fmt.encode_record({"seq": 3, "at": 1.0, "event": _events("x", 1)[0].to_record()})
    torn = {
        "header": record[:7],
        "payload": record[:-5],
        "checksum": record[:-1] + bytes([record[-1] ^ 0xFF]),
        "garbage": b"\x00\x01junk",
    }[tear]
    with open(path, "ab") as handle:
        handle.write(torn)
    assert _ids(str(tmp_path)) == ["e0", "e1", "e2"], "a reader must stop before a torn tail"
    log = EventLog(str(tmp_path))
    assert os.path.getsize(path) == good_size
    assert log.truncated_bytes == len(torn)
    assert log.append(_events("n", 1), 2.0)[0].seq == 3
    assert _ids(str(tmp_path)) == ["e0", "e1", "e2", "n0"]


def test_damage_followed_by_valid_records_is_reported_not_truncated(tmp_path):
    EventLog(str(tmp_path)).append(_events("e", 3), 1.0)
    path = _last_segment(str(tmp_path))
    with open(path, "r+b") as handle:
        handle.seek(fmt.HEADER.size + 5)  # inside the first record's payload
        handle.write(b"#")
    size = os.path.getsize(path)
    log = EventLog(str(tmp_path))  # opens (a server keeps serving predictions), in the damaged state
    assert "followed by valid records" in log.damage and "recsys events check" in log.damage
    with pytest.raises(fmt.LogCorruptError, match="events are refused until it is repaired"):
        log.append(_events("n", 1), 2.0)
    with pytest.raises(fmt.LogCorruptError):
        LogReader(str(tmp_path)).read()
    assert os.path.getsize(path) == size


def test_reader_skips_a_repeated_id_on_replay(tmp_path):
    EventLog(str(tmp_path)).append(_events("e", 2), 1.0)
    with open(_last_segment(str(tmp_path)), "ab") as handle:  # a repeat written behind the log's back
        handle.write(fmt.encode_record({"seq": 2, "at": 1.0, "event": _events("e", 1)[0].to_record()}))
    reader = LogReader(str(tmp_path))
    assert [e.event.event_id for e in reader.read()] == ["e0", "e1"]
    assert reader.duplicates_skipped == 1 and reader.next_seq == 3
    log = EventLog(str(tmp_path))
    assert log.seq_of("e0") == 0 and log.end_seq == 3


def test_segments_roll_and_are_read_in_order(tmp_path):
    log = EventLog(str(tmp_path), EventLogConfig(segment_bytes=4096))
    for batch in range(30):
        log.append(_events("e", 5, start=5 * batch), 1.0)
    assert len(fmt.list_segments(str(tmp_path))) > 3
    assert _ids(str(tmp_path)) == [f"e{i}" for i in range(150)]
    assert EventLog(str(tmp_path)).end_seq == 150


def test_tailing_reader_sees_new_records_and_respects_limits(tmp_path):
    log = EventLog(str(tmp_path), EventLogConfig(segment_bytes=4096))
    reader = LogReader(str(tmp_path))
    assert reader.read() == []
    log.append(_events("e", 4), 1.0)
    assert [e.seq for e in reader.read(max_records=3)] == [0, 1, 2]
    for batch in range(20):
        log.append(_events("f", 5, start=5 * batch), 1.0)
    rest = reader.read()
    assert [e.seq for e in rest] == list(range(3, 104))
    late = LogReader(str(tmp_path)).read(start_seq=100)
    assert [e.seq for e in late] == [100, 101, 102, 103]


def test_two_writers_share_one_log(tmp_path):
    a, b = EventLog(str(tmp_path)), EventLog(str(tmp_path))
    a.append(_events("a", 3), 1.0)
    results = b.append(_events("b", 2) + _events("a", 1), 1.0)
    assert [(r.seq, r.duplicate) for r in results] == [(3, False), (4, False), (0, True)]
    assert a.append(_events("c", 1), 1.0)[0].seq == 5
    assert _ids(str(tmp_path)) == ["a0", "a1", "a2", "b0", "b1", "c0"]


class _ChildOutput:
    """Reads the crash-test child's stdout: the READY line and every ACKed id."""

    def __init__(self, process):
        self._fd = process.stdout.fileno()
        self._buffer = b""
        self.acks = []
        self.ready = False
        self.closed = False

    def read_until(self, deadline, ready=True, acks=0):
        """Reads until READY (and `acks` ids) were seen, EOF, or `deadline`."""
        while time.monotonic() < deadline and not self.closed:
            if (self.ready or not ready) and len(self.acks) >= acks:
                return
            if not select.select([self._fd], [], [], 0.05)[0]:
                continue
            chunk = os.read(self._fd, 65536)
            self.closed = not chunk
            *lines, self._buffer = (self._buffer + chunk).split(b"\n")
            self.ready = self.ready or b"READY" in lines
            self.acks.extend(line.split()[1].decode() for line in lines if line.startswith(b"ACK "))


def test_sigkill_under_load_never_loses_or_duplicates_an_acknowledged_event(tmp_path):
    rng = random.Random(1234)
    log_dir = str(tmp_path / "log")
    acknowledged = set()
    env = dict(os.environ, PYTHONPATH=ROOT)
    for round_ in range(6):
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.online.log_writer_child", log_dir, str(round_), str(round_)],
            stdout=subprocess.PIPE, cwd=ROOT, env=env,
        )
        try:
            output = _ChildOutput(process)
            output.read_until(time.monotonic() + 30)
            assert output.ready, f"round {round_}: the child did not start"
            # Let it run for a random number of acknowledgements, then kill it mid-flight.
            output.read_until(time.monotonic() + 20, acks=rng.randint(20, 2000))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            output.read_until(time.monotonic() + 5, acks=10**9)  # lines written before the kill
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        assert output.acks, f"round {round_}: the child acknowledged nothing"
        acknowledged.update(output.acks)
        if rng.random() < 0.5:  # a torn write, as a kill inside write() would leave
            with open(_last_segment(log_dir), "ab") as handle:
                handle.write(fmt.encode_record({"seq": 10**6, "at": 0, "event": _events("torn", 1)[0].to_record()})[: rng.randint(1, 40)])
        EventLog(log_dir, EventLogConfig(segment_bytes=8192)).close()  # recovery on restart
        counts = Counter(_raw_ids(log_dir))
        assert sorted(counts) == sorted(_ids(log_dir))
        missing = acknowledged - set(counts)
        assert not missing, f"round {round_}: acknowledged events lost: {sorted(missing)[:5]}"
        assert max(counts.values()) == 1, f"round {round_}: events stored twice: {[k for k, v in counts.items() if v > 1][:5]}"
        assert "torn0" not in counts
    assert len(acknowledged) > 100


def test_a_reused_event_id_with_other_content_is_a_conflict_and_nothing_is_stored(tmp_path):
    from online.event_log import EventConflictError

    log = EventLog(str(tmp_path))
    log.append(_events("e", 2), 1.0)
    changed = Event("e1", "u1", "another-item", "rating", 4.0, 1_600_000_001)
    with pytest.raises(EventConflictError, match="'e1' is stored as seq 1") as caught:
        log.append(_events("n", 1) + [changed], 2.0)
    assert caught.value.conflicts == [(1, "e1", 1)]
    assert _ids(str(tmp_path)) == ["e0", "e1"], "nothing of a conflicting batch is stored"
    later = Event("e1", "u1", "i1", "rating", 4.0, 1_600_000_999)  # same content, another timestamp
    with pytest.raises(EventConflictError):
        EventLog(str(tmp_path)).append([later], 3.0)  # detected after reopening too
    same_without_timestamp = Event("e1", "u1", "i1", "rating", 4.0, 1_700_000_000, timestamp_given=False)
    (result,) = log.append([same_without_timestamp], 4.0)
    assert result.duplicate and result.seq == 1
    twins = [Event("t", "u", "i", "rating", 4.0, 5), Event("t", "u", "i", "rating", 2.0, 5)]
    with pytest.raises(EventConflictError):
        log.append(twins, 5.0)
    assert _ids(str(tmp_path)) == ["e0", "e1"]
