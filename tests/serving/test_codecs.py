"""TensorProto and REST JSON conversion, and request limits, without a server."""

from __future__ import annotations

import gzip
import io
import json
import zlib

import grpc
import numpy as np
import pytest
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.errors import ServingError
from serving.json_codec import COLUMNAR, ROW, decode_inputs, encode_outputs, parse_predict_body
from serving.limits import HttpError, parse_json, read_body
from serving.signatures import SignatureSpec, TensorSpec, validate_inputs
from serving.tensor_codec import to_ndarray, to_tensor_proto

RANK = SignatureSpec(
    name="rank", method_name="",
    inputs={"user_id": TensorSpec("user_id", types_pb2.DT_STRING, (-1,)),
            "item_ids": TensorSpec("item_ids", types_pb2.DT_STRING, (-1, -1)),
            "boost": TensorSpec("boost", types_pb2.DT_FLOAT, (-1,))},
    outputs={"scores": TensorSpec("scores", types_pb2.DT_FLOAT, (-1, -1))})
DEFAULT = SignatureSpec(
    name="serving_default", method_name="",
    inputs={"user_id": TensorSpec("user_id", types_pb2.DT_STRING, (-1,))},
    outputs={"scores": TensorSpec("scores", types_pb2.DT_FLOAT, (-1, 3))})


@pytest.mark.parametrize("array", [
    np.array([[1.5, -2.0]], np.float32), np.array([1, 2, 3], np.int64), np.array([7], np.int32),
    np.array([True, False]), np.array([0.25], np.float64), np.array([1.5], np.float16),
    np.array([b"a", b"\xff\x00"], dtype=object), np.zeros((2, 0), np.float32)])
def test_tensor_proto_round_trip(array: np.ndarray) -> None:
    back = to_ndarray(to_tensor_proto(array), "x", 100)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tolist() == array.tolist()


def test_tensor_content_and_broadcast_are_read() -> None:
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT,
                                   tensor_content=np.array([1, 2, 3, 4], np.float32).tobytes())
    proto.tensor_shape.dim.add(size=2)
    proto.tensor_shape.dim.add(size=2)
    assert to_ndarray(proto, "x", 10).tolist() == [[1, 2], [3, 4]]
    single = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, int64_val=[5])
    single.tensor_shape.dim.add(size=3)
    assert to_ndarray(single, "x", 10).tolist() == [5, 5, 5]


def _proto(dtype: int, dims, **values) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, **values)
    for size in dims:
        proto.tensor_shape.dim.add(size=size)
    return proto


@pytest.mark.parametrize("proto, code", [
    (_proto(types_pb2.DT_FLOAT, [2], float_val=[1, 2, 3]), grpc.StatusCode.INVALID_ARGUMENT),
    (_proto(types_pb2.DT_FLOAT, [2], tensor_content=b"123"), grpc.StatusCode.INVALID_ARGUMENT),
    (_proto(types_pb2.DT_FLOAT, [-1], float_val=[1]), grpc.StatusCode.INVALID_ARGUMENT),
    (_proto(types_pb2.DT_FLOAT, [10 ** 6, 10 ** 6]), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (_proto(types_pb2.DT_COMPLEX64, [1]), grpc.StatusCode.INVALID_ARGUMENT),
    (_proto(types_pb2.DT_INT8, [1], int_val=[300]), grpc.StatusCode.INVALID_ARGUMENT),
    (tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT,
                            tensor_shape={"unknown_rank": True}), grpc.StatusCode.INVALID_ARGUMENT),
])
def test_malformed_tensor_protos_are_refused(proto, code) -> None:
    with pytest.raises(ServingError) as caught:
        to_ndarray(proto, "x", 1000)
    assert caught.value.code == code


def test_row_and_columnar_decode_to_the_same_arrays() -> None:
    rows = [{"user_id": "u1", "item_ids": ["a", {"b64": "YmI="}], "boost": 2},
            {"user_id": "u2", "item_ids": ["c", "d"], "boost": 0.5}]
    by_row = decode_inputs(rows, ROW, RANK, 100)
    columns = {"user_id": ["u1", "u2"], "item_ids": [["a", "bb"], ["c", "d"]], "boost": [2, 0.5]}
    by_column = decode_inputs(columns, COLUMNAR, RANK, 100)
    for name in RANK.inputs:
        assert by_row[name].tolist() == by_column[name].tolist()
    assert by_row["item_ids"].tolist() == [[b"a", b"bb"], [b"c", b"d"]]
    assert by_row["boost"].dtype == np.float32
    assert validate_inputs(RANK, by_row, 100) == 2


@pytest.mark.parametrize("payload, fmt, spec, fragment", [
    (["u1", 3], ROW, DEFAULT, "expects strings"),
    ([{"user_id": "u1", "item_ids": [["a"], ["b", "c"]], "boost": 1}], ROW, RANK, "ragged"),
    ([{"user_id": "u1", "item_ids": ["a"], "boost": "1.5"}], ROW, RANK, "expects numbers"),
    ([{"user_id": "u1", "item_ids": ["a"]}], ROW, RANK, "expects"),
    (["u1"], ROW, RANK, "must be an object"),
    ({"user_id": ["u"], "extra": [1]}, COLUMNAR, DEFAULT, "expects"),
    ([{"b64": "!!notbase64"}], ROW, DEFAULT, "base64"),
    ([{"user_id": "u1"}, "u2"], ROW, DEFAULT, "mix"),
])
def test_malformed_json_inputs_are_refused(payload, fmt, spec, fragment) -> None:
    with pytest.raises(ServingError) as caught:
        decode_inputs(payload, fmt, spec, 100)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert fragment in caught.value.message


def test_validate_inputs_checks_signature() -> None:
    good = {"user_id": np.array([b"u"], dtype=object)}
    assert validate_inputs(DEFAULT, good, 10) == 1
    bad_cases = [
        {"user": np.array([b"u"], dtype=object)},
        {"user_id": np.array([[b"u"]], dtype=object)},
        {"user_id": np.array([1.0], np.float32)},
    ]
    for inputs in bad_cases:
        with pytest.raises(ServingError) as caught:
            validate_inputs(DEFAULT, inputs, 10)
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    nan = {"user_id": np.array([b"u"], dtype=object), "item_ids": np.array([[b"a"]], dtype=object),
           "boost": np.array([np.nan], np.float32)}
    with pytest.raises(ServingError, match="NaN"):
        validate_inputs(RANK, nan, 10)
    with pytest.raises(ServingError) as caught:
        validate_inputs(DEFAULT, {"user_id": np.array([b"u"] * 11, dtype=object)}, 10)
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_outputs_follow_the_request_format() -> None:
    outputs = {"item_ids": np.array([[b"i1", b"i2"]], dtype=object),
               "scores": np.array([[1.3, 1.2]], np.float32),
               "raw_bytes": np.array([b"\x00\x01"], dtype=object)}
    rows = encode_outputs(outputs, ROW)["predictions"]
    assert rows == [{"item_ids": ["i1", "i2"], "scores": [1.3, 1.2], "raw_bytes": {"b64": "AAE="}}]
    columns = encode_outputs({"scores": outputs["scores"]}, COLUMNAR)
    assert columns == {"outputs": [[1.3, 1.2]]}


def test_parse_predict_body_requires_one_format() -> None:
    assert parse_predict_body({"instances": ["u"]}) == ("", ROW, ["u"])
    assert parse_predict_body({"signature_name": "s", "inputs": {"a": 1}})[:2] == ("s", COLUMNAR)
    for body in ({}, {"instances": [], }, {"instances": ["u"], "inputs": ["u"]}, [1],
                 {"instances": ["u"], "signature_name": 3}):
        with pytest.raises(ServingError):
            parse_predict_body(body)


def _headers(**values):
    return {k.replace("_", "-"): v for k, v in values.items()}


def test_read_body_limits_size_before_and_after_decompression() -> None:
    body = b'{"instances": ["u1"]}'
    assert read_body(io.BytesIO(body), _headers(Content_Length=str(len(body))), 1024) == body
    packed = gzip.compress(body)
    assert read_body(io.BytesIO(packed), _headers(Content_Length=str(len(packed)),
                                                  Content_Encoding="gzip"), 1024) == body
    bomb = gzip.compress(b"[" + b"0," * 500_000 + b"0]")
    with pytest.raises(HttpError) as caught:
        read_body(io.BytesIO(bomb), _headers(Content_Length=str(len(bomb)),
                                             Content_Encoding="gzip"), 4096)
    assert caught.value.http_status == 413
    with pytest.raises(HttpError) as caught:
        read_body(io.BytesIO(b"x" * 2000), _headers(Content_Length="2000"), 1024)
    assert caught.value.http_status == 413
    with pytest.raises(HttpError) as caught:
        read_body(io.BytesIO(b"{}"), {}, 1024)
    assert caught.value.http_status == 411
    deflated = zlib.compress(body)[:-3]
    with pytest.raises(HttpError) as caught:
        read_body(io.BytesIO(deflated), _headers(Content_Length=str(len(deflated)),
                                                 Content_Encoding="deflate"), 1024)
    assert caught.value.http_status == 400


def test_parse_json_limits_depth() -> None:
    assert parse_json(json.dumps({"a": [[1]]}).encode(), 3) == {"a": [[1]]}
    with pytest.raises(ServingError, match="depth"):
        parse_json(json.dumps({"a": [[[1]]]}).encode(), 3)
    with pytest.raises(ServingError, match="depth"):
        parse_json(b"[" * 100_000 + b"]" * 100_000, 32)
    with pytest.raises(ServingError, match="UTF-8"):
        parse_json(b'{"a": "\xff"}', 32)
