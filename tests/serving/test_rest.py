"""The REST API, health, readiness and metrics through an HTTP client against a real server."""

from __future__ import annotations

import gzip
import http.client as http_client
import json
import threading
import time

import pytest

from core.features import SERVING_INPUT_USER, SERVING_OUTPUT_ITEMS, SERVING_OUTPUT_SCORES
from serving.config import BatchingConfig
from tests.serving.conftest import MODEL, http, make_config
from tests.serving.tiny_models import expected


@pytest.fixture
def rest(base_path, start_server):
    server = start_server(make_config(base_path, version_labels=(("stable", 1),)))
    return server, server.ports.rest


def test_row_format_predict(rest) -> None:
    _, port = rest
    status, body = http(port, "POST", f"/v1/models/{MODEL}:predict",
                        {"instances": ["u2", "nobody"]})
    assert status == 200
    for row, user in zip(body["predictions"], ["u2", "nobody"]):
        items, scores = expected(user, 1)
        assert row[SERVING_OUTPUT_ITEMS] == items
        assert row[SERVING_OUTPUT_SCORES] == pytest.approx(scores)


def test_columnar_format_predict_on_version_and_label(rest) -> None:
    _, port = rest
    for path in (f"/v1/models/{MODEL}/versions/1:predict", f"/v1/models/{MODEL}/labels/stable:predict"):
        status, body = http(port, "POST", path, {"inputs": {SERVING_INPUT_USER: ["u1"]}})
        assert status == 200
        assert body["outputs"][SERVING_OUTPUT_ITEMS] == [expected("u1", 1)[0]]


def test_named_instances_on_a_generic_signature(rest) -> None:
    _, port = rest
    status, body = http(port, "POST", f"/v1/models/{MODEL}:predict", {
        "signature_name": "rank",
        "instances": [{"user_id": "u1", "item_ids": ["a", {"b64": "YWJj"}], "boost": 1.5},
                      {"user_id": "u2", "item_ids": ["ab", ""], "boost": 2}]})
    assert status == 200
    assert body["predictions"] == [[2.5, 5.5], [5.0, 1.0]]


@pytest.mark.parametrize("path, body, status, fragment", [
    ("/v1/models/nope:predict", {"instances": ["u1"]}, 404, "nope"),
    (f"/v1/models/{MODEL}/versions/9:predict", {"instances": ["u1"]}, 404, "9"),
    (f"/v1/models/{MODEL}/labels/canary:predict", {"instances": ["u1"]}, 400, "canary"),
    (f"/v1/models/{MODEL}:predict", {"instances": [1]}, 400, "strings"),
    (f"/v1/models/{MODEL}:predict", {"instances": ["u1"], "signature_name": "x"}, 400, "x"),
    (f"/v1/models/{MODEL}:predict", {"foo": 1}, 400, "instances"),
    (f"/v1/models/{MODEL}:classify", {"instances": ["u1"]}, 501, "classify"),
    (f"/v1/models/{MODEL}:explode", {"instances": ["u1"]}, 404, "Malformed"),
    ("/v1/models/../../etc/passwd:predict", {"instances": ["u1"]}, 404, "Malformed"),
])
def test_errors_are_json_with_tf_serving_status(rest, path, body, status, fragment) -> None:
    _, port = rest
    got, reply = http(port, "POST", path, body)
    assert got == status
    assert set(reply) == {"error"} and fragment in reply["error"]


def test_status_and_metadata(rest) -> None:
    _, port = rest
    status, body = http(port, "GET", f"/v1/models/{MODEL}")
    assert status == 200
    assert body == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert http(port, "GET", f"/v1/models/{MODEL}/versions/1")[0] == 200
    assert http(port, "GET", f"/v1/models/{MODEL}/versions/2")[0] == 404
    assert http(port, "GET", "/v1/models")[0] == 400
    status, meta = http(port, "GET", f"/v1/models/{MODEL}/metadata")
    assert status == 200 and meta["model_spec"]["version"] == "1"
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"][SERVING_INPUT_USER]["dtype"] == "DT_STRING"
    assert signature["outputs"][SERVING_OUTPUT_SCORES]["dtype"] == "DT_FLOAT"


def test_health_readiness_and_metrics(rest) -> None:
    server, port = rest
    assert http(port, "GET", "/healthz") == (200, {"status": "alive"})
    assert http(port, "GET", "/readyz")[0] == 200
    http(port, "POST", f"/v1/models/{MODEL}:predict", {"instances": ["u1"]},
         headers={"X-Priority": "high"})
    http(port, "POST", f"/v1/models/{MODEL}:predict", {"instances": [1]})
    status, text = http(port, "GET", "/monitoring/prometheus/metrics")
    assert status == 200
    assert f'serving_requests_total{{model="{MODEL}",version="1",priority="high",code="OK"}} 1' in text
    assert 'code="INVALID_ARGUMENT"} 1' in text
    assert f'serving_request_latency_seconds_count{{model="{MODEL}",version="1",priority="high"}} 1' in text
    assert f'serving_model_versions_available{{model="{MODEL}"}} 1' in text
    assert "serving_batch_size_bucket" in text


def test_gzip_body_and_size_limits(rest) -> None:
    _, port = rest
    body = json.dumps({"instances": ["u1"]}).encode()
    status, reply = http(port, "POST", f"/v1/models/{MODEL}:predict", raw=gzip.compress(body),
                         headers={"Content-Encoding": "gzip"})
    assert status == 200 and reply["predictions"][0][SERVING_OUTPUT_ITEMS] == expected("u1", 1)[0]
    huge = json.dumps({"instances": ["u" * 100] * 1000}).encode()  # > 64 KiB test limit
    assert http(port, "POST", f"/v1/models/{MODEL}:predict", raw=huge)[0] == 413
    bomb = gzip.compress(b'{"instances": ["' + b"u" * 1_000_000 + b'"]}')
    assert http(port, "POST", f"/v1/models/{MODEL}:predict", raw=bomb,
                headers={"Content-Encoding": "gzip"})[0] == 413
    deep = b'{"instances": ' + b"[" * 40 + b'"u1"' + b"]" * 40 + b"}"
    status, reply = http(port, "POST", f"/v1/models/{MODEL}:predict", raw=deep)
    assert status == 400 and "depth" in reply["error"]
    assert http(port, "GET", "/healthz")[0] == 200


def test_missing_content_length_is_refused(rest) -> None:
    _, port = rest
    connection = http_client.HTTPConnection("127.0.0.1", port, timeout=5)
    connection.putrequest("POST", f"/v1/models/{MODEL}:predict")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    connection.send(b"0\r\n\r\n")
    response = connection.getresponse()
    assert response.status == 411 and "error" in json.loads(response.read())
    connection.close()


def test_rest_timeout_answers_504_without_running_the_request(base_path, start_server) -> None:
    config = make_config(base_path, batching=BatchingConfig(
        max_batch_size=1, batch_timeout_micros=0, num_batch_threads=1, max_enqueued_batches=8))
    server = start_server(config)
    port = server.ports.rest
    slow = {"signature_name": "slow", "instances": [{"user_id": "u1", "delay_us": 600_000}]}
    blocker = threading.Thread(target=http, args=(port, "POST", f"/v1/models/{MODEL}:predict", slow))
    blocker.start()
    time.sleep(0.15)
    quick = {"signature_name": "slow", "instances": [{"user_id": "u2", "delay_us": 0}]}
    status, reply = http(port, "POST", f"/v1/models/{MODEL}:predict", quick,
                         headers={"X-Request-Timeout-Ms": "150"})
    assert status == 504 and "error" in reply
    blocker.join(timeout=10)
    assert server.metrics.batch_size.count(MODEL, "slow") == 1
    assert http(port, "POST", f"/v1/models/{MODEL}:predict", quick,
                headers={"X-Request-Timeout-Ms": "abc"})[0] == 400
