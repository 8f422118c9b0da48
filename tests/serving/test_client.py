"""RecommendationClient over gRPC and REST against a real server."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from core.features import SERVING_INPUT_USER, SERVING_OUTPUT_SCORES, SERVING_SIGNATURE
from serving.client import RecommendationClient, ServingClientError
from tests.serving.conftest import MODEL, make_config
from tests.serving.tiny_models import expected


@pytest.fixture
def clients(base_path, start_server):
    server = start_server(make_config(base_path, version_labels=(("stable", 1),)))
    made = [RecommendationClient(f"127.0.0.1:{server.ports.grpc}"),
            RecommendationClient(f"127.0.0.1:{server.ports.rest}", transport="rest")]
    yield made
    for client in made:
        client.close()


def test_recommend_returns_items_and_scores(clients) -> None:
    for client in clients:
        result = client.recommend(["u1", "ghost"], MODEL, priority="high")
        assert len(result) == 2
        for (items, scores), user in zip(result, ["u1", "ghost"]):
            want_items, want_scores = expected(user, 1)
            assert items == want_items
            assert scores == pytest.approx(want_scores)
        assert client.recommend(["u2"], MODEL, label="stable")[0][0] == expected("u2", 1)[0]
        assert client.recommend([], MODEL) == []


def test_status_and_metadata(clients) -> None:
    for client in clients:
        assert client.model_status(MODEL) == [
            {"version": 1, "state": "AVAILABLE", "error_code": "OK", "error_message": ""}]
        meta = client.metadata(MODEL)
        assert meta["version"] == 1
        default = meta["signatures"][SERVING_SIGNATURE]
        assert default["inputs"][SERVING_INPUT_USER] == {"dtype": "DT_STRING", "shape": [-1]}
        assert default["outputs"][SERVING_OUTPUT_SCORES] == {"dtype": "DT_FLOAT", "shape": [-1, 3]}


def test_generic_predict(clients) -> None:
    for client in clients:
        out = client.predict(MODEL, {"user_id": ["u1"], "item_ids": [["a", "bcd"]],
                                     "boost": np.array([2.0], np.float32)}, signature="rank")
        assert np.asarray(out[SERVING_OUTPUT_SCORES], np.float64).tolist() == [[3.0, 7.0]]


def test_errors_carry_codes(clients) -> None:
    grpc_client, rest_client = clients
    for client in clients:
        with pytest.raises(ServingClientError) as caught:
            client.recommend(["u1"], "missing")
        assert caught.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(ServingClientError) as caught:
            client.recommend(["u1"], MODEL, priority="vip")
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(ServingClientError) as caught:
        rest_client.recommend(["u1"], "missing")
    assert caught.value.http_status == 404
    closed = RecommendationClient("127.0.0.1:1", timeout_s=0.5)
    with pytest.raises(ServingClientError) as caught:
        closed.recommend(["u1"], MODEL)
    assert caught.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    closed.close()
    with pytest.raises(ValueError):
        RecommendationClient("no-port")
