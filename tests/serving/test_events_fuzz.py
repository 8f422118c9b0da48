"""Seeded fuzzing of ``POST /v1/events``: mutated and generated bodies get 4xx, never 5xx, the
log keeps exactly the events acknowledged, and the server still serves afterwards."""

from __future__ import annotations

import collections
import json
import random
import time

import pytest

from core import features as F
from online.event_log import LogReader
from online.events_route import events_routes
from online.http_handler import ROUTE
from tests.serving.conftest import MODEL, http, make_config
from tests.serving.mutation import mutate

CASES = 300
SECONDS = 10.0  # the loop stops early past this, on a slow machine


@pytest.fixture
def events_server(base_path, start_server, tmp_path):
    log_dir = str(tmp_path / "events")
    server = start_server(make_config(base_path), extra_routes=events_routes(log_dir))
    return server.ports.rest, log_dir


def _valid(rng: random.Random, index: int) -> bytes:
    events = [{"event_id": f"e{index}-{j}", F.USER_ID: f"u{rng.randrange(5)}", F.ITEM_ID: f"i{rng.randrange(9)}",
               F.RATING: rng.choice([1.0, 3.5, 5.0]), F.TIMESTAMP: 1_600_000_000 + index} for j in range(rng.randint(1, 3))]
    return json.dumps({"events": events}).encode()


def _odd(rng: random.Random) -> bytes:
    values = [None, True, [], {}, "x", -1, 1e308, "9" * 400, [[[]]]]
    event = {"event_id": rng.choice(["a", 1, None, ""]), F.USER_ID: rng.choice(values + ["u"]),
             F.ITEM_ID: rng.choice(values + ["i"]), "type": rng.choice(values + ["rating", "view"]),
             F.RATING: rng.choice(values + [4.0])}
    shapes = [{"events": [event]}, {"events": event}, [event], {"events": []}, {"nope": 1},
              {"events": [event] * 3}, "[" * 5000 + "]" * 5000]
    shape = rng.choice(shapes)
    return shape.encode() if isinstance(shape, str) else json.dumps(shape).encode()


def test_mutated_and_odd_event_bodies_never_5xx_and_the_log_holds_what_was_acknowledged(events_server):
    port, log_dir = events_server
    rng = random.Random(29)
    statuses: "collections.Counter[int]" = collections.Counter()
    acknowledged = set()
    end = time.monotonic() + SECONDS
    for index in range(CASES):
        if time.monotonic() > end:
            break
        kind = index % 3
        body = _valid(rng, index) if kind == 0 else mutate(rng, _valid(rng, index)) if kind == 1 else _odd(rng)
        status, reply = http(port, "POST", ROUTE, raw=body, headers={"Content-Type": "application/json"})
        statuses[status] += 1
        assert status < 500, (status, body[:120], reply)
        if status == 200:
            for result in reply.get("results", []):
                if result.get("status") == "appended":
                    acknowledged.add(result["event_id"])
    assert statuses[200] and statuses[400], statuses
    stored = [e.event.event_id for e in LogReader(log_dir).read()]
    assert len(stored) == len(set(stored)) and set(stored) == acknowledged
    status, _ = http(port, "POST", f"/v1/models/{MODEL}:predict", {"instances": ["u1"]})
    assert status == 200
