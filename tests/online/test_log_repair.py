"""`recsys events check` / `repair`: damaged records found with offsets, moved aside, nothing else lost."""

from __future__ import annotations

import os

import pytest

from online import cli, log_repair
from online import log_format as fmt
from online.config import EventLogConfig
from online.event_log import EventLog, LogReader
from online.events import Event

N = 60


def _events(prefix, n, start=0):
    return [Event(f"{prefix}{i}", f"u{i}", f"i{i}", "rating", 4.0, 1_600_000_000 + i) for i in range(start, start + n)]


def _record_offsets(path):
    with open(path, "rb") as handle:
        return [(start, end) for start, end, _ in fmt.scan(handle.read()).records]


def _damage(path, offset, byte=b"#"):
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(byte)


@pytest.fixture
def damaged_log(tmp_path):
    """N events over several segments; the payload of record seq 3 damaged in place."""
    log_dir = str(tmp_path / "events")
    log = EventLog(log_dir, EventLogConfig(segment_bytes=4096))
    for batch in range(N // 10):
        log.append(_events("e", 10, start=10 * batch), 1.0)
    log.close()
    segments = fmt.list_segments(log_dir)
    assert len(segments) > 2
    first_seq, path = next((s, p) for s, p in segments if s <= 3 < s + len(_record_offsets(p)))
    start, end = _record_offsets(path)[3 - first_seq]
    _damage(path, start + fmt.HEADER.size + 4)
    return log_dir, path, (start, end)


def test_check_reports_the_damaged_record_with_its_offsets(damaged_log):
    log_dir, path, (start, end) = damaged_log
    report = log_repair.check(log_dir)
    assert report.damaged
    (damage,) = report.damages
    assert (damage.path, damage.start, damage.end, damage.lost) == (path, start, end, (3, 4))
    assert log_repair.check(log_dir).damages == report.damages, "check changes nothing"


def test_repair_quarantines_the_damage_keeps_every_intact_record_and_its_seq(damaged_log):
    log_dir, path, (start, end) = damaged_log
    with open(path, "rb") as handle:
        damaged_bytes = handle.read()[start:end]
    log_repair.repair(log_dir)
    quarantined = os.path.join(log_dir, log_repair.QUARANTINE_DIR, f"{os.path.basename(path)}@{start}-{end}.bin")
    with open(quarantined, "rb") as handle:
        assert handle.read() == damaged_bytes
    assert not log_repair.check(log_dir).damaged
    assert [(e.seq, e.event.event_id) for e in LogReader(log_dir).read()] == [
        (s, f"e{s}") for s in range(N) if s != 3]
    log = EventLog(log_dir)
    assert log.damage is None and log.end_seq == N
    retried = log.append(_events("e", 1, start=5) + _events("n", 1), 2.0)  # exactly-once still holds
    assert [(r.seq, r.duplicate) for r in retried] == [(5, True), (N, False)]
    assert log_repair.repair(log_dir).damages == [], "a second repair has nothing to do"


def test_a_writer_refuses_appends_while_damaged_and_takes_them_after_the_repair(damaged_log):
    from online.log_format import LogCorruptError

    log_dir, _, _ = damaged_log
    server_log = EventLog(log_dir)  # the server's log, kept open across the repair
    assert server_log.damage is not None
    with pytest.raises(LogCorruptError, match="recsys events repair"):
        server_log.append(_events("x", 1), 2.0)
    log_repair.repair(log_dir)
    (result,) = server_log.append(_events("x", 1), 3.0)
    assert (result.seq, result.duplicate) == (N, False)
    assert server_log.append(_events("e", 1, start=N - 1), 3.0)[0].duplicate


def test_a_torn_record_at_the_end_of_a_sealed_segment_is_moved_aside(tmp_path):
    log_dir = str(tmp_path)
    log = EventLog(log_dir, EventLogConfig(segment_bytes=4096))
    for batch in range(N // 10):
        log.append(_events("e", 10, start=10 * batch), 1.0)
    (first, path), (second, _) = fmt.list_segments(log_dir)[:2]
    start, _ = _record_offsets(path)[-1]
    with open(path, "r+b") as handle:
        handle.truncate(start + 10)
    (damage,) = log_repair.check(log_dir).damages
    assert damage.lost == (second - 1, second) and "sealed segment" in damage.reason
    log_repair.repair(log_dir)
    assert [e.seq for e in LogReader(log_dir).read()] == [s for s in range(N) if s != second - 1]


def test_a_torn_tail_of_the_last_segment_is_only_noted(tmp_path, capsys):
    log_dir = str(tmp_path / "events")
    EventLog(log_dir).append(_events("e", 2), 1.0)
    with open(fmt.list_segments(log_dir)[-1][1], "ab") as handle:
        handle.write(b"EVL1\x05")
    assert cli.main(["events", "check", "--log", log_dir]) == 0
    assert "torn tail" in capsys.readouterr().out


def test_the_commands_report_offsets_and_exit_non_zero_while_damaged(damaged_log, capsys):
    log_dir, path, (start, end) = damaged_log
    assert cli.main(["events", "check", "--log", log_dir]) == cli.EXIT_DAMAGED
    captured = capsys.readouterr()
    assert f"{path} bytes {start}..{end - 1}" in captured.out and "recsys events repair" in captured.err
    add = ["events", "add", "--log", log_dir, "--user", "u", "--item", "i", "--rating", "3"]
    assert cli.main(add) == cli.EXIT_DAMAGED
    assert "recsys events check" in capsys.readouterr().err
    assert cli.main(["events", "repair", "--log", log_dir]) == 0
    assert "moved aside" in capsys.readouterr().out
    assert cli.main(["events", "check", "--log", log_dir]) == 0
    assert cli.main(add) == 0
