"""TensorProto <-> numpy conversion for the gRPC API, with the element limit checked first.

Decoding reads the shape from the proto, refuses unknown ranks, negative or oversized shapes
before allocating anything, then reads either ``tensor_content`` (exact byte length required)
or the typed ``*_val`` field (one value per element, or a single value broadcast, as
TensorFlow allows).  Encoding writes the typed fields, as ``tensorflow_model_server`` does,
so clients reading ``outputs['scores'].float_val`` work unchanged.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.errors import invalid_argument, resource_exhausted

# dtype enum -> (numpy dtype, TensorProto field holding the values)
_DTYPES: Dict[int, Tuple[np.dtype, str]] = {
    types_pb2.DT_FLOAT: (np.dtype(np.float32), "float_val"),
    types_pb2.DT_DOUBLE: (np.dtype(np.float64), "double_val"),
    types_pb2.DT_HALF: (np.dtype(np.float16), "half_val"),
    types_pb2.DT_INT8: (np.dtype(np.int8), "int_val"),
    types_pb2.DT_INT16: (np.dtype(np.int16), "int_val"),
    types_pb2.DT_INT32: (np.dtype(np.int32), "int_val"),
    types_pb2.DT_INT64: (np.dtype(np.int64), "int64_val"),
    types_pb2.DT_UINT8: (np.dtype(np.uint8), "int_val"),
    types_pb2.DT_UINT16: (np.dtype(np.uint16), "int_val"),
    types_pb2.DT_UINT32: (np.dtype(np.uint32), "uint32_val"),
    types_pb2.DT_UINT64: (np.dtype(np.uint64), "uint64_val"),
    types_pb2.DT_BOOL: (np.dtype(np.bool_), "bool_val"),
    types_pb2.DT_STRING: (np.dtype(object), "string_val"),
}
_NUMPY_TO_ENUM = {np.dtype(np.float32): types_pb2.DT_FLOAT, np.dtype(np.float64): types_pb2.DT_DOUBLE,
                  np.dtype(np.float16): types_pb2.DT_HALF, np.dtype(np.int8): types_pb2.DT_INT8,
                  np.dtype(np.int16): types_pb2.DT_INT16, np.dtype(np.int32): types_pb2.DT_INT32,
                  np.dtype(np.int64): types_pb2.DT_INT64, np.dtype(np.uint8): types_pb2.DT_UINT8,
                  np.dtype(np.uint16): types_pb2.DT_UINT16, np.dtype(np.uint32): types_pb2.DT_UINT32,
                  np.dtype(np.uint64): types_pb2.DT_UINT64, np.dtype(np.bool_): types_pb2.DT_BOOL}


def dtype_name(dtype: int) -> str:
    """The ``DT_*`` name of a dtype enum (``DT_<number>`` when unknown)."""
    try:
        return types_pb2.DataType.Name(dtype)
    except ValueError:
        return f"DT_{dtype}"


def numpy_dtype(dtype: int) -> np.dtype:
    """The numpy dtype used for a ``DT_*`` enum (object for strings).

    Raises:
        ServingError: INVALID_ARGUMENT for dtypes the server does not carry.
    """
    if dtype not in _DTYPES:
        raise invalid_argument(f"unsupported tensor dtype {dtype_name(dtype)}")
    return _DTYPES[dtype][0]


def dtype_enum(array: np.ndarray) -> int:
    """The ``DT_*`` enum of a numpy array (object and bytes arrays are DT_STRING)."""
    if array.dtype == object or array.dtype.kind in ("S", "U"):
        return types_pb2.DT_STRING
    try:
        return _NUMPY_TO_ENUM[array.dtype]
    except KeyError:
        raise invalid_argument(f"unsupported numpy dtype {array.dtype}") from None


def proto_shape(proto: tensor_pb2.TensorProto, name: str, max_elements: int) -> Tuple[int, ...]:
    """The shape of a TensorProto, checked against the element limit.

    Args:
        proto: the tensor.
        name: the input name, for messages.
        max_elements: the largest element count accepted.

    Returns:
        The shape as a tuple.

    Raises:
        ServingError: INVALID_ARGUMENT for unknown rank or negative dims, RESOURCE_EXHAUSTED
            when the element count exceeds ``max_elements``.
    """
    if proto.tensor_shape.unknown_rank:
        raise invalid_argument(f"input '{name}' has an unknown rank")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    if any(d < 0 for d in shape):
        raise invalid_argument(f"input '{name}' has a negative dimension in shape {list(shape)}")
    count = 1
    for d in shape:
        # a zero dim makes the tensor empty, but the other dims still size the array that
        # would be built (shape [0, 2**62] cannot exist): each must fit the limit too
        count *= max(d, 1)
        if count > max_elements:
            raise resource_exhausted(
                f"input '{name}' has more than {max_elements} elements (shape {list(shape)})")
    return shape


def to_ndarray(proto: tensor_pb2.TensorProto, name: str, max_elements: int) -> np.ndarray:
    """Decode a request TensorProto.

    Args:
        proto: the tensor from a PredictRequest.
        name: the input name, for messages.
        max_elements: the largest element count accepted.

    Returns:
        The array: numeric dtypes as numpy, DT_STRING as an object array of bytes.

    Raises:
        ServingError: INVALID_ARGUMENT for unsupported dtypes and inconsistent contents.
    """
    shape = proto_shape(proto, name, max_elements)
    dtype, field = _DTYPES.get(proto.dtype, (None, None))
    if dtype is None:
        raise invalid_argument(f"input '{name}' has unsupported dtype {dtype_name(proto.dtype)}")
    count = int(np.prod(shape, dtype=np.int64))
    if proto.tensor_content and dtype.kind != "O":
        expected = count * dtype.itemsize
        if len(proto.tensor_content) != expected:
            raise invalid_argument(
                f"input '{name}' tensor_content has {len(proto.tensor_content)} bytes, "
                f"expected {expected} for shape {list(shape)} and {dtype_name(proto.dtype)}")
        return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape).copy()
    values = getattr(proto, field)
    if len(values) not in (count, 1) or (count == 0 and len(values) != 0):
        raise invalid_argument(
            f"input '{name}' has {len(values)} values in {field}, expected {count} "
            f"for shape {list(shape)}")
    if dtype.kind == "O":
        flat = np.empty(len(values), dtype=object)
        flat[:] = list(values)
    elif proto.dtype == types_pb2.DT_HALF:
        flat = np.asarray(values, dtype=np.uint16).view(np.float16)
    else:
        try:
            flat = np.asarray(values, dtype=dtype)
        except (OverflowError, ValueError) as err:
            raise invalid_argument(f"input '{name}' has values out of range for "
                                   f"{dtype_name(proto.dtype)}: {err}") from None
        if dtype.kind in "iu":
            wide = np.asarray(values, dtype=np.int64 if dtype.kind == "i" else np.uint64)
            if not np.array_equal(wide, flat.astype(wide.dtype)):
                raise invalid_argument(
                    f"input '{name}' has values out of range for {dtype_name(proto.dtype)}")
    if len(values) == 1 and count != 1:
        return np.full(shape, flat[0], dtype=dtype)
    return flat.reshape(shape)


def fill_tensor_proto(proto: tensor_pb2.TensorProto, array: np.ndarray) -> tensor_pb2.TensorProto:
    """Write a response array into ``proto`` (typed fields, as tensorflow_model_server does).

    Args:
        proto: an empty TensorProto (e.g. ``response.outputs[name]``), filled in place.
        array: a numeric array or an object/bytes array of strings.

    Returns:
        ``proto``.
    """
    array = np.asarray(array)
    enum = dtype_enum(array)
    proto.dtype = enum
    dims = proto.tensor_shape.dim
    for size in array.shape:
        dims.add().size = size
    if enum == types_pb2.DT_STRING:
        values = array.ravel().tolist()
        try:
            proto.string_val.extend(values)
        except TypeError:  # str or other objects: encode them one by one
            proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode("utf-8")
                                    for v in values)
    elif enum == types_pb2.DT_HALF:
        proto.half_val.extend(array.ravel().view(np.uint16).tolist())
    else:
        getattr(proto, _DTYPES[enum][1]).extend(array.ravel().tolist())
    return proto


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A new TensorProto holding ``array`` (see ``fill_tensor_proto``)."""
    return fill_tensor_proto(tensor_pb2.TensorProto(), array)
