"""Front ends in several processes on one port: the TF Serving stubs and REST against them."""

from __future__ import annotations

import os
import socket

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)

from core.features import SERVING_INPUT_USER, SERVING_OUTPUT_ITEMS, SERVING_OUTPUT_SCORES
from serving.config import ServingConfigError
from serving.frontends import reserve_port
from serving.server import BindError, ModelServer
from serving.tensor_codec import to_ndarray, to_tensor_proto
from tests.serving.conftest import MODEL, http, make_config
from tests.serving.tiny_models import expected

CONNECTIONS = 12  # the chance that every connection lands on one of two processes: 2**-11


def _request(user: str) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs[SERVING_INPUT_USER].CopyFrom(to_tensor_proto(np.array([user.encode()],
                                                                         dtype=object)))
    return request


def _own_connection(port: int) -> grpc.Channel:
    # a local subchannel pool: each channel opens its own TCP connection
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])


def test_two_frontend_processes_answer_grpc_and_rest(base_path, start_server) -> None:
    server = start_server(make_config(base_path, frontend_processes=2))
    pids = server.frontends.pids()
    assert len(set(pids)) == 2 and os.getpid() not in pids
    for index in range(CONNECTIONS):
        user = f"u{index % 4}"
        with _own_connection(server.ports.grpc) as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                _request(user), timeout=20, metadata=(("x-priority", "high"),))
        items = [i.decode() for i in to_ndarray(response.outputs[SERVING_OUTPUT_ITEMS], "i", 10 ** 6)[0]]
        scores = to_ndarray(response.outputs[SERVING_OUTPUT_SCORES], "s", 10 ** 6)[0]
        want_items, want_scores = expected(user, 1)
        assert items == want_items and np.allclose(scores, want_scores)
        assert response.model_spec.version.value == 1
    for index in range(CONNECTIONS):  # urllib opens a connection per request
        user = f"u{index % 4}"
        status, body = http(server.ports.rest, "POST", f"/v1/models/{MODEL}:predict",
                            {"instances": [user]}, timeout_s=20)
        assert status == 200, body
        assert body["predictions"][0][SERVING_OUTPUT_ITEMS] == expected(user, 1)[0]
    counts = server.frontends.request_counts()
    assert sum(counts.values()) == 2 * CONNECTIONS
    assert all(count > 0 for count in counts.values()), counts  # both processes answered
    _metadata_status_errors_and_drain(server)


def _maps(pid: int) -> str:
    with open(f"/proc/{pid}/maps", encoding="utf-8") as handle:
        return handle.read()


def test_frontend_processes_load_no_tensorflow_runtime(base_path, start_server) -> None:
    server = start_server(make_config(base_path, frontend_processes=2, rest_port=None))
    runtime = "libtensorflow_framework"
    assert runtime in _maps(os.getpid())  # the model process has it
    for pid in server.frontends.pids():
        assert runtime not in _maps(pid)
    with _own_connection(server.ports.grpc) as channel:  # and they still answer
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            _request("u1"), timeout=20)
    assert response.model_spec.version.value == 1


def _metadata_status_errors_and_drain(server: ModelServer) -> None:
    with _own_connection(server.ports.grpc) as channel:
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        status = models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(
            model_spec={"name": MODEL}), timeout=20)
        assert [s.version for s in status.model_version_status] == [1]
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec={"name": MODEL},
                                                                 metadata_field=["signature_def"])
        assert predict.GetModelMetadata(request, timeout=20).model_spec.version.value == 1
        missing = _request("u1")
        missing.model_spec.name = "absent"
        with pytest.raises(grpc.RpcError) as caught:
            predict.Predict(missing, timeout=20)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as caught:
            predict.Predict(_request("u1"), timeout=20, metadata=(("x-priority", "urgent"),))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert http(server.ports.rest, "GET", "/readyz")[0] == 200
    status, body = http(server.ports.rest, "POST", f"/v1/models/{MODEL}:predict",
                        {"instances": [7]})
    assert status == 400 and "error" in body
    server.drain(1.0)  # draining reaches the front ends: readiness turns false
    assert http(server.ports.rest, "GET", "/readyz")[0] == 503


def test_frontend_processes_setting_is_checked(base_path) -> None:
    with pytest.raises(ServingConfigError, match="frontend_processes"):
        make_config(base_path, frontend_processes=0)
    with pytest.raises(ServingConfigError, match="frontend_processes"):
        ModelServer(make_config(base_path, frontend_processes=2), extra_routes={"/x": object()})


def test_a_taken_port_is_a_bind_error(base_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            reserve_port("127.0.0.1", port)
        server = ModelServer(make_config(base_path, frontend_processes=2, grpc_port=port))
        with pytest.raises(BindError, match=f"gRPC port 127.0.0.1:{port}"):
            server.start()


def test_a_front_end_that_dies_is_replaced(base_path, start_server) -> None:
    import signal

    from tests.serving.conftest import wait_for

    server = start_server(make_config(base_path, frontend_processes=2, rest_port=None))
    victim = server.frontends.pids()[0]
    os.kill(victim, signal.SIGKILL)
    assert wait_for(lambda: server.frontends.respawns == 1, timeout_s=60)
    pids = server.frontends.pids()
    assert victim not in pids and len(set(pids)) == 2
    for _ in range(4):  # new connections are answered, whichever process takes them
        with _own_connection(server.ports.grpc) as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                _request("u2"), timeout=20)
        assert response.model_spec.version.value == 1
