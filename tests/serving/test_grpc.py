"""The gRPC API through the tensorflow-serving-api stubs against a real server on loopback."""

from __future__ import annotations

import logging
import time

import grpc
import numpy as np
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

from serving.config import BatchingConfig
from serving.tensor_codec import to_ndarray, to_tensor_proto
from tests.serving.conftest import MODEL, make_config
from tests.serving.tiny_models import expected
from core.features import (SERVING_INPUT_USER, SERVING_OUTPUT_ITEMS, SERVING_OUTPUT_SCORES,
                              SERVING_SIGNATURE)


@pytest.fixture
def stubs(base_path, start_server):
    server = start_server(make_config(base_path))
    channel = grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}")
    yield (server, prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    channel.close()


def _request(users, signature: str = "", **extra) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = signature
    request.inputs[SERVING_INPUT_USER].CopyFrom(
        to_tensor_proto(np.array([u.encode() for u in users], dtype=object)))
    for name, array in extra.items():
        request.inputs[name].CopyFrom(to_tensor_proto(array))
    return request


def _outputs(response):
    return {k: to_ndarray(v, k, 10 ** 6) for k, v in response.outputs.items()}


def test_predict_returns_items_and_scores_per_user(stubs) -> None:
    _, predict, _ = stubs
    response = predict.Predict(_request(["u1", "stranger", "u3"]), timeout=10)
    out = _outputs(response)
    for row, user in enumerate(["u1", "stranger", "u3"]):
        items, scores = expected(user, 1)
        assert [i.decode() for i in out[SERVING_OUTPUT_ITEMS][row]] == items
        assert np.allclose(out[SERVING_OUTPUT_SCORES][row], scores)
    assert response.model_spec.name == MODEL and response.model_spec.version.value == 1
    assert response.model_spec.signature_name == SERVING_SIGNATURE
    # typed fields, as tensorflow_model_server writes them
    assert list(response.outputs[SERVING_OUTPUT_ITEMS].string_val)[:3] == [b"i11", b"i12", b"i13"]
    assert len(response.outputs[SERVING_OUTPUT_SCORES].float_val) == 9


def test_predict_on_another_signature_with_output_filter(stubs) -> None:
    _, predict, _ = stubs
    request = _request(["u1", "u2"], signature="rank",
                       item_ids=np.array([[b"a", b"abc"], [b"ab", b""]], dtype=object),
                       boost=np.array([1.0, 2.0], np.float32))
    request.output_filter.append(SERVING_OUTPUT_SCORES)
    out = _outputs(predict.Predict(request, timeout=10))
    assert out[SERVING_OUTPUT_SCORES].tolist() == [[2.0, 4.0], [5.0, 1.0]]


@pytest.mark.parametrize("mutate, code, fragment", [
    (lambda r: r.model_spec.__setattr__("name", "missing"), grpc.StatusCode.NOT_FOUND, "missing"),
    (lambda r: r.model_spec.version.__setattr__("value", 42), grpc.StatusCode.NOT_FOUND, "42"),
    (lambda r: r.model_spec.__setattr__("version_label", "nolabel"),
     grpc.StatusCode.INVALID_ARGUMENT, "nolabel"),
    (lambda r: r.model_spec.__setattr__("signature_name", "nosig"),
     grpc.StatusCode.FAILED_PRECONDITION, "nosig"),
    (lambda r: r.inputs["other"].CopyFrom(to_tensor_proto(np.array([1.0], np.float32))),
     grpc.StatusCode.INVALID_ARGUMENT, "other"),
    (lambda r: r.inputs[SERVING_INPUT_USER].CopyFrom(to_tensor_proto(np.array([1], np.int64))),
     grpc.StatusCode.INVALID_ARGUMENT, "dtype"),
    (lambda r: r.output_filter.append("nothing"), grpc.StatusCode.INVALID_ARGUMENT, "nothing"),
])
def test_predict_errors_have_tf_serving_codes(stubs, mutate, code, fragment) -> None:
    _, predict, _ = stubs
    request = _request(["u1"])
    mutate(request)
    with pytest.raises(grpc.RpcError) as caught:
        predict.Predict(request, timeout=10)
    assert caught.value.code() == code
    assert fragment in caught.value.details()


def test_unknown_priority_is_invalid(stubs) -> None:
    _, predict, _ = stubs
    with pytest.raises(grpc.RpcError) as caught:
        predict.Predict(_request(["u1"]), timeout=10, metadata=(("x-priority", "urgent"),))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    response = predict.Predict(_request(["u1"]), timeout=10, metadata=(("x-priority", "high"),))
    assert response.model_spec.version.value == 1


def test_model_status_and_metadata(stubs) -> None:
    _, predict, models = stubs
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    status = models.GetModelStatus(request, timeout=10)
    assert [(s.version, get_model_status_pb2.ModelVersionStatus.State.Name(s.state))
            for s in status.model_version_status] == [(1, "AVAILABLE")]
    request.model_spec.version.value = 5
    with pytest.raises(grpc.RpcError) as caught:
        models.GetModelStatus(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    meta_request = get_model_metadata_pb2.GetModelMetadataRequest()
    meta_request.model_spec.name = MODEL
    meta_request.metadata_field.append("signature_def")
    meta = predict.GetModelMetadata(meta_request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert meta.metadata["signature_def"].Unpack(signatures)
    default = signatures.signature_def[SERVING_SIGNATURE]
    assert set(default.inputs) == {SERVING_INPUT_USER}
    assert set(default.outputs) == {SERVING_OUTPUT_ITEMS, SERVING_OUTPUT_SCORES}
    assert {"rank", "slow"} <= set(signatures.signature_def)
    assert meta.model_spec.version.value == 1
    meta_request.metadata_field[:] = ["other"]
    with pytest.raises(grpc.RpcError) as caught:
        predict.GetModelMetadata(meta_request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_classify_regress_are_unimplemented(stubs) -> None:
    _, predict, _ = stubs
    for call, request in ((predict.Classify, classification_pb2.ClassificationRequest()),
                          (predict.Regress, regression_pb2.RegressionRequest())):
        with pytest.raises(grpc.RpcError) as caught:
            call(request, timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert "Predict" in caught.value.details()


def _slow(users, delay_us: int) -> predict_pb2.PredictRequest:
    return _request(users, signature="slow", delay_us=np.full(len(users), delay_us, np.int64))


def test_grpc_deadline_drops_queued_request_before_compute(base_path, start_server) -> None:
    config = make_config(base_path, batching=BatchingConfig(
        max_batch_size=1, batch_timeout_micros=0, num_batch_threads=1, max_enqueued_batches=8))
    server = start_server(config)
    with grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}") as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        blocker = predict.Predict.future(_slow(["u1"], 600_000), timeout=10)
        time.sleep(0.15)
        with pytest.raises(grpc.RpcError) as caught:
            predict.Predict(_slow(["u2"], 0), timeout=0.2)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert blocker.result().model_spec.version.value == 1
    batches = server.metrics.batch_size.count(MODEL, "slow")
    assert batches == 1, "the expired request must not have been computed"


def test_queue_full_is_resource_exhausted_at_once(base_path, start_server) -> None:
    config = make_config(base_path, batching=BatchingConfig(
        max_batch_size=1, batch_timeout_micros=0, num_batch_threads=1, max_enqueued_batches=2))
    server = start_server(config)
    with grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}") as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        # The blocker holds the only worker for 2 s: on a loaded machine the five requests
        # below must all be queued before it finishes, or the first to arrive runs first.
        blocker = predict.Predict.future(_slow(["u1"], 2_000_000), timeout=10)
        time.sleep(0.15)
        queued = [predict.Predict.future(_slow(["u2"], 0), timeout=10) for _ in range(2)]
        time.sleep(0.1)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as caught:
            predict.Predict(_slow(["u3"], 0), timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert time.monotonic() - started < 0.3
        for future in [blocker] + queued:
            assert future.result().model_spec.version.value == 1


def test_priority_ordering_under_a_saturated_worker(base_path, start_server) -> None:
    config = make_config(base_path, batching=BatchingConfig(
        max_batch_size=1, batch_timeout_micros=0, num_batch_threads=1, max_enqueued_batches=16))
    server = start_server(config)
    finished = []
    with grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}") as channel:
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        # The blocker holds the only worker for 2 s: on a loaded machine the five requests
        # below must all be queued before it finishes, or the first to arrive runs first.
        blocker = predict.Predict.future(_slow(["u1"], 2_000_000), timeout=10)
        time.sleep(0.15)
        futures = []
        for index, priority in enumerate(["low", "normal", "high", "low", "high"]):
            future = predict.Predict.future(_slow([f"u{index}"], 0), timeout=10,
                                            metadata=(("x-priority", priority),))
            future.add_done_callback(lambda f, p=priority: finished.append(p))
            futures.append(future)
        blocker.result()
        for future in futures:
            future.result()
    assert finished == ["high", "high", "normal", "low", "low"]


def test_oversized_messages_and_tensors_are_refused(stubs) -> None:
    server, predict, _ = stubs
    huge = _request(["u" * 1000] * 100)  # ~100 KB, over the 64 KiB test limit
    with pytest.raises(grpc.RpcError) as caught:
        predict.Predict(huge, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    claimed = _request(["u1"])
    claimed.inputs[SERVING_INPUT_USER].tensor_shape.dim[0].size = 10 ** 9
    with pytest.raises(grpc.RpcError) as caught:
        predict.Predict(claimed, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert predict.Predict(_request(["u1"]), timeout=10).model_spec.version.value == 1
    assert server.metrics.errors.value("grpc") == 0


@pytest.mark.parametrize("dtype", [types_pb2.DT_STRING, types_pb2.DT_FLOAT])
def test_an_empty_tensor_with_an_absurd_dimension_is_refused(stubs, dtype) -> None:
    server, predict, _ = stubs
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    proto = request.inputs[SERVING_INPUT_USER]
    proto.dtype = dtype
    proto.tensor_shape.dim.add(size=0)
    proto.tensor_shape.dim.add(size=2 ** 62)
    with pytest.raises(grpc.RpcError) as caught:
        predict.Predict(request, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value.details()
    assert "elements" in caught.value.details()
    assert server.metrics.errors.value("grpc") == 0


@pytest.mark.parametrize("method", ["/tensorflow.serving.PredictionService/Predict",
                                    "/tensorflow.serving.PredictionService/GetModelMetadata",
                                    "/tensorflow.serving.ModelService/GetModelStatus"])
def test_unparseable_messages_are_invalid_argument_and_logged_once(stubs, caplog, method) -> None:
    server, predict, _ = stubs
    caplog.set_level(logging.WARNING)
    with grpc.insecure_channel(f"127.0.0.1:{server.ports.grpc}") as channel:
        call = channel.unary_unary(method)  # raw bytes in and out
        for garbage in [b"\xff\xff\xff\xff", b"\x0a\x05ab", b"\x12" * 7] * 10:
            with pytest.raises(grpc.RpcError) as caught:
                call(garbage, timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid" in caught.value.details()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and lines[0].startswith("1 unparseable"), lines
    assert not any(r.exc_info for r in caplog.records), "no tracebacks"
    assert server.metrics.errors.value("grpc") == 0
    assert predict.Predict(_request(["u1"]), timeout=10).model_spec.version.value == 1
