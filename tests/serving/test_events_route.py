"""`POST /v1/events` on the model server: a real server on loopback, the event log on disk.

The route is built by ``online.events_route`` and mounted as an extra REST route; the server
package itself imports nothing from ``online``.
"""

from __future__ import annotations

import argparse
import os

import pytest

from core import features as F
from online.event_log import LogReader
from online.events_route import events_routes, routes_from_args
from online.http_handler import ROUTE
from serving.cli import EXIT_CONFIG, EXIT_ROUTES, main, register
from serving.config import ServingConfigError
from serving.server import ModelServer
from tests.serving.conftest import MODEL, http, make_config


def _event(event_id, **fields):
    event = {"event_id": event_id, F.USER_ID: "u1", F.ITEM_ID: "i1", F.RATING: 4.0, F.TIMESTAMP: 1_600_000_000}
    event.update(fields)
    return {k: v for k, v in event.items() if v is not None}


def _stored(log_dir):
    return [(e.event.event_id, e.event.user_id, e.event.item_id, e.event.rating) for e in LogReader(log_dir).read()]


@pytest.fixture
def events_server(base_path, start_server, tmp_path):
    log_dir = str(tmp_path / "events")
    server = start_server(make_config(base_path), extra_routes=events_routes(log_dir))
    return server, server.ports.rest, log_dir


def test_a_batch_is_acknowledged_and_stored_exactly_once(events_server) -> None:
    _, port, log_dir = events_server
    batch = {"events": [_event("a", **{F.USER_ID: "u7", F.ITEM_ID: "i3", F.RATING: 5.0}),
                        _event("b", **{F.USER_ID: "u8", F.ITEM_ID: "i4", F.RATING: 2.5})]}
    status, reply = http(port, "POST", ROUTE, batch)
    assert status == 200
    assert (reply["acknowledged"], reply["appended"], reply["duplicates"]) == (2, 2, 0)
    assert _stored(log_dir) == [("a", "u7", "i3", 5.0), ("b", "u8", "i4", 2.5)]
    # a client's retry of the same batch is acknowledged again but not stored twice
    status, reply = http(port, "POST", ROUTE, batch)
    assert status == 200 and (reply["appended"], reply["duplicates"]) == (0, 2)
    assert [r["seq"] for r in reply["results"]] == [0, 1]
    assert _stored(log_dir) == [("a", "u7", "i3", 5.0), ("b", "u8", "i4", 2.5)]
    # the model routes are unaffected
    assert http(port, "POST", f"/v1/models/{MODEL}:predict", {"instances": ["u1"]})[0] == 200


@pytest.mark.parametrize("bad, field", [
    (_event("bad", **{F.USER_ID: None}), F.USER_ID),
    (_event("bad", **{F.RATING: "five"}), F.RATING),
])
def test_an_invalid_event_refuses_the_whole_request(events_server, bad, field) -> None:
    _, port, log_dir = events_server
    assert http(port, "POST", ROUTE, {"events": [_event("kept")]})[0] == 200
    status, reply = http(port, "POST", ROUTE, {"events": [_event("fine"), bad]})
    assert status == 400
    assert f"'{field}'" in reply["error"] and "event 1" in reply["error"]
    assert [(p["index"], p["field"]) for p in reply["problems"]] == [(1, field)]
    assert [e[0] for e in _stored(log_dir)] == ["kept"], "nothing of the refused request is stored"
    status, reply = http(port, "POST", ROUTE, raw=b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and "JSON" in reply["error"]
    assert [e[0] for e in _stored(log_dir)] == ["kept"]


def test_without_an_events_log_the_route_is_404_with_the_reason(base_path, start_server) -> None:
    server = start_server(make_config(base_path), extra_routes=events_routes(None))
    port = server.ports.rest
    status, reply = http(port, "POST", ROUTE, {"events": [_event("a")]})
    assert status == 404
    assert set(reply) == {"error"}
    assert "without an events log" in reply["error"] and "--events-log" in reply["error"]
    assert http(port, "GET", "/healthz") == (200, {"status": "alive"})


def test_a_draining_server_refuses_events(events_server) -> None:
    server, port, log_dir = events_server
    assert http(port, "POST", ROUTE, {"events": [_event("a")]})[0] == 200
    server.core.begin_drain()
    status, reply = http(port, "POST", ROUTE, {"events": [_event("b")]})
    assert status == 503 and "shutting down" in reply["error"]
    assert [e[0] for e in _stored(log_dir)] == ["a"], "nothing refused is stored"


def test_extra_routes_need_the_rest_front_end(base_path, tmp_path) -> None:
    routes = events_routes(None)
    with pytest.raises(ServingConfigError, match="REST"):
        ModelServer(make_config(base_path, rest_port=None), extra_routes=routes)


def test_the_server_package_does_not_import_online() -> None:
    import pathlib

    import serving

    root = pathlib.Path(serving.__file__).parent
    offenders = [p.name for p in root.glob("*.py")
                 if any(line.startswith(("from online", "import online", "from pipeline",
                                         "import pipeline", "from components"))
                        for line in p.read_text().splitlines())]
    assert offenders == []


def _parse(argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_events_log_option(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = _parse(["serve", "--model-base-path", str(tmp_path), "--events-log", "out/events"])
    routes = routes_from_args(args)
    try:
        assert list(routes) == [ROUTE]
        assert os.path.isdir(os.path.join(str(tmp_path), "out", "events"))
    finally:
        for route in routes.values():
            route.close()
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command")
    register(subparsers)
    help_text = subparsers.choices["serve"].format_help()
    assert "--events-log DIR" in help_text and "/v1/events" in help_text


def test_events_log_naming_a_file_is_one_line_and_its_own_exit_code(tmp_path, base_path,
                                                                    capsys) -> None:
    a_file = tmp_path / "events.txt"
    a_file.write_text("not a directory")
    code = main(["serve", "--model-base-path", base_path, "--grpc-port", "0", "--rest-port", "0",
                 "--events-log", str(a_file)], extra_routes_factory=routes_from_args)
    err = capsys.readouterr().err
    assert code == EXIT_ROUTES
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(a_file) in err and "is a file, not a directory" in err
    # without the factory (e.g. `python -m serving.cli`), the flag is refused as a setting
    code = main(["serve", "--model-base-path", base_path, "--events-log", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == EXIT_CONFIG and err.count("\n") == 1 and "--events-log" in err


def test_a_damaged_event_log_leaves_predictions_served_and_events_refused_until_repaired(
        base_path, start_server, tmp_path) -> None:
    from online import log_format as fmt
    from online import log_repair
    from online.event_log import EventLog
    from online.events import Event

    log_dir = str(tmp_path / "events")
    EventLog(log_dir).append([Event(f"e{i}", "u1", "i1", "rating", 4.0, 1_600_000_000) for i in range(3)], 1.0)
    ((_, segment),) = fmt.list_segments(log_dir)
    with open(segment, "r+b") as handle:  # damage inside the first record, valid records after it
        handle.seek(fmt.HEADER.size + 4)
        handle.write(b"#")
    server = start_server(make_config(base_path), extra_routes=events_routes(log_dir))
    port = server.ports.rest
    assert http(port, "POST", f"/v1/models/{MODEL}:predict", {"instances": ["u1"]})[0] == 200
    status, reply = http(port, "POST", ROUTE, {"events": [_event("new")]})
    assert status == 503 and log_dir in reply["error"] and "recsys events check" in reply["error"]
    log_repair.repair(log_dir)
    status, reply = http(port, "POST", ROUTE, {"events": [_event("new"), _event("e2")]})
    assert status == 200 and [r["status"] for r in reply["results"]] == ["appended", "duplicate"]
