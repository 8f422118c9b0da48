"""Online versions hot-swapped by the model server under steady load: no failed request."""

from __future__ import annotations

import threading
import time

import numpy as np

from core import features as F
from tests.online.learner_helpers import append_events, rating_event, start_learner
from tests.trainer import tiny_data

MODEL = "recsys"


def test_continuous_swaps_under_load_fail_no_request(workspace, tiny_base):
    from serving.client import RecommendationClient
    from serving.config import ModelConfig, ServerConfig
    from serving.server import ModelServer

    learner = start_learner(workspace, tiny_base, export_every_events=3)
    first = learner.export()
    config = ServerConfig(models=(ModelConfig(MODEL, str(workspace / "serving")),), grpc_port=0, rest_port=None,
                          poll_interval_s=0.1, drain_grace_s=2.0)
    outcomes = {"ok": 0, "failed": []}
    stop = threading.Event()
    with ModelServer(config) as server:
        target = f"127.0.0.1:{server.ports.grpc}"

        def load() -> None:
            with RecommendationClient(target, timeout_s=10.0) as client:
                deadline = time.monotonic() + 120
                while not stop.is_set() and time.monotonic() < deadline:
                    try:
                        client.recommend(["ua1", "ub2", "stranger"], MODEL)
                        outcomes["ok"] += 1
                    except Exception as err:  # noqa: BLE001 - every failure is counted and reported
                        outcomes["failed"].append(repr(err))
                    time.sleep(0.01)

        thread = threading.Thread(target=load, daemon=True)
        thread.start()
        versions = [first]
        new_item = {F.ITEM_TITLE: "The B Story fresh (2001)", F.ITEM_GENRES: tiny_data.GENRES["b"], F.ITEM_YEAR: 2001}
        for round_ in range(3):
            append_events(workspace, [rating_event(100 * round_ + n, f"ub{n}", f"b-fresh-{round_}", **new_item) for n in range(3)])
            learner.step()
            versions.append(learner.exported[-1])
        with RecommendationClient(target, timeout_s=10.0) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                states = {s["version"]: s["state"] for s in client.model_status(MODEL)}
                if states.get(versions[-1]) == "AVAILABLE":
                    break
                time.sleep(0.1)
            assert states.get(versions[-1]) == "AVAILABLE", states
            titles = client.predict(MODEL, {F.ITEM_ID: np.array([b"b-fresh-2"], dtype=object)}, signature="lookup_items")
        stop.set()
        thread.join(timeout=30)
    assert titles[F.ITEM_TITLE][0] == new_item[F.ITEM_TITLE].encode()
    assert len(set(versions)) == 4
    assert outcomes["ok"] > 10 and outcomes["failed"] == []
