"""Hundreds of generated malformed or oversized requests: each gets a clear error, the server
never answers 5xx (but 503 when unavailable) / INTERNAL / UNKNOWN, and it is still healthy
and serving afterwards.

Two kinds: hypothesis-generated structures (derandomized), and seeded mutation fuzzing of
valid requests (bit flips, cuts, insertions of the REST body and path, of a serialized
PredictRequest, and random bytes) sent raw, each loop bounded in count and time.
"""

from __future__ import annotations

import collections
import http.client
import json
import random
import time

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from core.features import SERVING_INPUT_USER
from serving.tensor_codec import to_tensor_proto
from tests.serving.conftest import MODEL, make_config
from tests.serving.mutation import mutate
from tests.serving.tiny_models import build_tiny_model, install

REST_ERRORS = {400, 404, 408, 411, 413, 415, 429, 501, 504}
GRPC_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
               grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED}
SEEN: "collections.Counter[object]" = collections.Counter()  # outcomes, checked at the end
FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    from serving.server import ModelServer

    root = tmp_path_factory.mktemp("fuzz")
    base = str(root / "base")
    install(build_tiny_model(str(root / "built"), 1), base, 1)
    server = ModelServer(make_config(base))
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}")
    yield server, prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()
    server.stop(grace_s=1.0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
input_names = st.sampled_from([SERVING_INPUT_USER, "item_ids", "boost", "x", ""])
bodies = st.one_of(
    st.fixed_dictionaries({"instances": st.lists(st.text(max_size=5), min_size=1, max_size=4)}),
    st.fixed_dictionaries({"inputs": st.fixed_dictionaries(
        {SERVING_INPUT_USER: st.lists(st.text(max_size=5), min_size=1, max_size=4)})}),
    st.fixed_dictionaries({"instances": json_values}),
    st.fixed_dictionaries({"inputs": json_values}),
    st.fixed_dictionaries({"signature_name": st.sampled_from(["rank", "serving_default", "zz"]),
                           "instances": st.lists(st.dictionaries(input_names, json_values,
                                                                 max_size=3), max_size=3)}),
    st.fixed_dictionaries({"signature_name": st.sampled_from(["rank", "serving_default"]),
                           "inputs": st.dictionaries(input_names, json_values, max_size=3)}),
    json_values)
paths = st.sampled_from([f"/v1/models/{MODEL}:predict", f"/v1/models/{MODEL}/versions/1:predict",
                         f"/v1/models/{MODEL}/versions/99999999999999999999:predict",
                         f"/v1/models/{MODEL}/labels/x:predict", "/v1/models/%2e%2e:predict",
                         f"/v1/models/{MODEL}:regress", "/v1/models/:predict", "/v2/x"])


def _post(port: int, path: str, data: bytes, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", path, body=data, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@FUZZ
@given(path=paths, body=bodies, priority=st.sampled_from([None, "low", "high", "bogus", ""]))
def test_generated_json_requests_get_errors_never_crashes(fuzz_server, path, body, priority) -> None:
    server, _ = fuzz_server
    headers = {"X-Priority": priority} if priority is not None else {}
    status, payload = _post(server.ports.rest, path, json.dumps(body).encode(), headers)
    SEEN[("rest", status)] += 1
    assert status == 200 or status in REST_ERRORS, (status, payload[:200])
    reply = json.loads(payload)
    assert ("predictions" in reply or "outputs" in reply) if status == 200 else set(reply) == {"error"}


@FUZZ
@given(data=st.binary(max_size=300), encoding=st.sampled_from([None, "gzip", "deflate", "br"]))
def test_generated_raw_bodies_get_errors(fuzz_server, data, encoding) -> None:
    server, _ = fuzz_server
    headers = {"Content-Encoding": encoding} if encoding else {}
    status, payload = _post(server.ports.rest, f"/v1/models/{MODEL}:predict", data, headers)
    assert status in REST_ERRORS, (status, payload[:200])
    assert "error" in json.loads(payload)


dtypes = st.sampled_from([types_pb2.DT_STRING, types_pb2.DT_FLOAT, types_pb2.DT_INT64,
                          types_pb2.DT_INT32, types_pb2.DT_BOOL, types_pb2.DT_HALF,
                          types_pb2.DT_COMPLEX64, types_pb2.DT_RESOURCE, 999])


@st.composite
def tensor_protos(draw):
    proto = tensor_pb2.TensorProto(dtype=draw(dtypes))
    if draw(st.booleans()):
        proto.tensor_shape.unknown_rank = True
    for size in draw(st.lists(st.integers(-3, 10 ** 7) | st.integers(0, 4), max_size=3)):
        proto.tensor_shape.dim.add(size=size)
    kind = draw(st.sampled_from(["string", "float", "int64", "content", "none"]))
    if kind == "string":
        proto.string_val.extend(draw(st.lists(st.binary(max_size=6), max_size=5)))
    elif kind == "float":
        proto.float_val.extend(draw(st.lists(st.floats(width=32), max_size=5)))
    elif kind == "int64":
        proto.int64_val.extend(draw(st.lists(st.integers(-2 ** 63, 2 ** 63 - 1), max_size=5)))
    elif kind == "content":
        proto.tensor_content = draw(st.binary(max_size=40))
    return proto


@FUZZ
@given(inputs=st.dictionaries(input_names, tensor_protos(), max_size=3),
       signature=st.sampled_from(["", "rank", "nope"]),
       name=st.sampled_from([MODEL, "other", "../rec", ""]),
       outputs=st.lists(st.sampled_from(["scores", "item_ids", "zzz"]), max_size=2))
def test_generated_grpc_requests_get_errors_never_internal(fuzz_server, inputs, signature, name,
                                                           outputs) -> None:
    _, stub = fuzz_server
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    for key, proto in inputs.items():
        request.inputs[key].CopyFrom(proto)
    request.output_filter.extend(outputs)
    try:
        stub.Predict(request, timeout=10)
        SEEN[("grpc", grpc.StatusCode.OK)] += 1
    except grpc.RpcError as err:
        SEEN[("grpc", err.code())] += 1
        assert err.code() in GRPC_ERRORS, (err.code(), err.details())


MUTATION_CASES = 400
MUTATION_SECONDS = 8.0  # each mutation loop stops early past this, on a slow machine


def _bounded(cases: int):
    end = time.monotonic() + MUTATION_SECONDS
    for index in range(cases):
        if time.monotonic() > end:
            return
        yield index


def test_mutated_rest_bodies_and_paths_never_5xx(fuzz_server) -> None:
    server, _ = fuzz_server
    rng = random.Random(13)
    valid_bodies = [json.dumps(b).encode() for b in (
        {"instances": ["u1", "u2"]}, {"inputs": {SERVING_INPUT_USER: ["u3"]}},
        {"signature_name": "rank", "instances": [{SERVING_INPUT_USER: "u1", "item_ids": ["a", "b"],
                                                  "boost": 1.5}]})]
    valid_paths = [f"/v1/models/{MODEL}:predict", f"/v1/models/{MODEL}/versions/1:predict",
                   f"/v1/models/{MODEL}/labels/stable:predict", f"/v1/models/{MODEL}/metadata"]
    statuses: "collections.Counter[int]" = collections.Counter()
    for _ in _bounded(MUTATION_CASES):
        body = rng.choice(valid_bodies)
        path = rng.choice(valid_paths)
        if rng.random() < 0.7:
            body = mutate(rng, body)
        if rng.random() < 0.4:
            path = "/" + mutate(rng, path.encode()).decode("latin-1").lstrip("/")
            path = "".join(c if 32 < ord(c) < 127 else f"%{ord(c):02X}" for c in path)
        status, payload = _post(server.ports.rest, path, body, {"Content-Type": "application/json"})
        statuses[status] += 1
        SEEN[("rest-mutated", status)] += 1
        assert status < 500 or status == 503, (status, path, body[:100], payload[:200])
        assert "error" in json.loads(payload) if status != 200 else True
    assert statuses[200] and statuses[400], statuses  # both paths were really exercised


def test_random_and_mutated_grpc_messages_never_internal_or_unknown(fuzz_server) -> None:
    server, _ = fuzz_server
    rng = random.Random(7)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs[SERVING_INPUT_USER].CopyFrom(to_tensor_proto(np.array([b"u1", b"u2"], dtype=object)))
    valid = request.SerializeToString()
    codes: "collections.Counter[object]" = collections.Counter()
    with grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}") as channel:
        call = channel.unary_unary("/tensorflow.serving.PredictionService/Predict")  # raw bytes
        for index in _bounded(MUTATION_CASES):
            if index % 4 == 0:
                message = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
            else:
                message = mutate(rng, valid)
            try:
                call(message, timeout=10)
                code = grpc.StatusCode.OK
            except grpc.RpcError as err:
                code = err.code()
                assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (
                    code, err.details(), message[:80])
            codes[code] += 1
            SEEN[("grpc-mutated", code)] += 1
    assert codes[grpc.StatusCode.OK] and codes[grpc.StatusCode.INVALID_ARGUMENT], codes


def test_server_is_healthy_after_fuzzing(fuzz_server) -> None:
    server, stub = fuzz_server
    connection = http.client.HTTPConnection("127.0.0.1", server.ports.rest, timeout=10)
    connection.request("GET", "/readyz")
    assert connection.getresponse().status == 200
    connection.close()
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs[SERVING_INPUT_USER].CopyFrom(to_tensor_proto(np.array([b"u1"], dtype=object)))
    assert stub.Predict(request, timeout=10).model_spec.version.value == 1
    assert server.metrics.errors.value("grpc") == 0 and server.metrics.errors.value("rest") == 0
    assert server.core.inflight == 0
    if SEEN:  # the generated cases really reached both the success and the refusal paths
        assert SEEN[("rest", 200)] and SEEN[("rest", 400)] and SEEN[("rest", 404)]
        assert SEEN[("grpc", grpc.StatusCode.INVALID_ARGUMENT)]
        print(sorted((str(k), v) for k, v in SEEN.items()))
