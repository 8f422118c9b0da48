"""`POST /v1/events` handler: statuses, error bodies naming the bad field, durability, retries."""

from __future__ import annotations

import json

from core import features as F
from online.config import EventLogConfig
from online.event_log import EventLog, LogReader
from online.http_handler import EventsHandler


def _body(*events):
    return json.dumps({"events": list(events)}).encode()


def _event(event_id, **extra):
    return {"event_id": event_id, F.USER_ID: "u1", F.ITEM_ID: "i1", F.RATING: 4.0, F.TIMESTAMP: 1_600_000_000, **extra}


def test_acknowledges_after_append_and_retries_are_duplicates(tmp_path):
    handler = EventsHandler(EventLog(str(tmp_path)), clock=lambda: 1_700_000_000.0)
    status, reply = handler.handle(_body(_event("a"), _event("b")))
    assert status == 200 and (reply["appended"], reply["duplicates"]) == (2, 0)
    assert [(r["event_id"], r["seq"], r["status"]) for r in reply["results"]] == [("a", 0, "appended"), ("b", 1, "appended")]
    status, reply = handler.handle(_body(_event("b"), _event("c")))
    assert status == 200 and [(r["seq"], r["status"]) for r in reply["results"]] == [(1, "duplicate"), (2, "appended")]
    assert [e.event.event_id for e in LogReader(str(tmp_path)).read()] == ["a", "b", "c"]


def test_a_bad_event_refuses_the_batch_and_names_index_and_field(tmp_path):
    handler = EventsHandler(EventLog(str(tmp_path)))
    handler.handle(_body(_event("kept")))
    status, reply = handler.handle(_body(_event("x"), _event("y", rating=11)))
    assert status == 400
    assert reply["problems"] == [{"index": 1, "field": F.RATING, "message": reply["problems"][0]["message"]}]
    assert "event 1" in reply["error"] and "'rating'" in reply["error"]
    assert [e.event.event_id for e in LogReader(str(tmp_path)).read()] == ["kept"], "nothing of the bad batch is stored"


def test_non_json_and_oversized_bodies(tmp_path):
    handler = EventsHandler(EventLog(str(tmp_path)), EventLogConfig(max_body_bytes=1024))
    status, reply = handler.handle(b"{not json")
    assert status == 400 and "not valid UTF-8 JSON" in reply["error"]
    assert handler.handle(b"\xff\xfe")[0] == 400
    status, reply = handler.handle(b" " * 2000)
    assert status == 413 and "exceeds" in reply["error"]


def test_a_failing_log_acknowledges_nothing(tmp_path, monkeypatch):
    log = EventLog(str(tmp_path))
    handler = EventsHandler(log)

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("online.event_log.os.fsync", broken_fsync)
    status, reply = handler.handle(_body(_event("lost")))
    assert status == 503 and "nothing was acknowledged" in reply["error"]


def test_a_field_of_the_wrong_type_is_a_400_naming_index_and_field(tmp_path):
    handler = EventsHandler(EventLog(str(tmp_path)))
    for bad in ({F.USER_ID: "1", F.ITEM_ID: "1", "type": []}, {F.USER_ID: "1", F.ITEM_ID: "1", "type": {"a": 1}},
                _event("z", **{F.TIMESTAMP: [1]}), _event("z", **{"item_year": {}}), {**_event("z"), "event_id": []}):
        status, reply = handler.handle(_body(_event("ok"), bad))
        assert status == 400, (bad, reply)
        (problem,) = reply["problems"]
        assert problem["index"] == 1 and problem["field"] in bad and "\n" not in reply["error"]
    assert LogReader(str(tmp_path)).read() == []


def test_json_nested_100000_deep_is_a_400_without_recursion(tmp_path):
    handler = EventsHandler(EventLog(str(tmp_path)), EventLogConfig(max_body_bytes=1 << 20))
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        status, reply = handler.handle(body)
        assert status == 400 and "nested more than" in reply["error"]
    # brackets inside strings are text, not nesting
    status, _ = handler.handle(_body(_event("s", item_title="[" * 100)))
    assert status == 200


def test_a_reused_event_id_with_other_content_is_a_409_and_nothing_is_stored(tmp_path):
    handler = EventsHandler(EventLog(str(tmp_path)))
    assert handler.handle(_body(_event("a")))[0] == 200
    status, reply = handler.handle(_body(_event("new"), _event("a", **{F.RATING: 1.0})))
    assert status == 409
    assert reply["conflicts"] == [{"index": 1, "event_id": "a", "seq": 0}]
    assert [e.event.event_id for e in LogReader(str(tmp_path)).read()] == ["a"]
    status, reply = handler.handle(_body(_event("a")))  # the same content again: a duplicate
    assert status == 200 and reply["results"][0]["status"] == "duplicate"


def test_a_damaged_log_is_a_503_naming_the_log_and_the_repair_command(tmp_path):
    from online import log_format as fmt

    EventLog(str(tmp_path)).append([], 1.0)
    handler_log = EventLog(str(tmp_path))
    EventsHandler(handler_log).handle(_body(_event("a"), _event("b")))
    ((_, segment),) = fmt.list_segments(str(tmp_path))
    with open(segment, "r+b") as handle:
        handle.seek(fmt.HEADER.size + 3)
        handle.write(b"#")
    handler = EventsHandler(EventLog(str(tmp_path)))
    status, reply = handler.handle(_body(_event("c")))
    assert status == 503
    assert str(tmp_path) in reply["error"] and "recsys events check" in reply["error"]
