"""Signatures of a SavedModel, read from its ``saved_model.pb``, and request checks against them.

The server serves any signature generically: the SignatureDef gives each input's dtype and
shape, and ``validate_inputs`` checks a request against it (names, dtype, rank, fixed dims,
a shared batch dimension, element count, NaN/Inf) before anything reaches a model worker.
``check_contract`` enforces the recommender contract of ``core.features`` on load.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Dict, Mapping, Optional, Tuple

import grpc
import numpy as np
from google.protobuf.message import DecodeError
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from core.features import SERVING_INPUT_USER, SERVING_OUTPUT_ITEMS, SERVING_OUTPUT_SCORES, SERVING_SIGNATURE
from serving.errors import ServingError, invalid_argument, resource_exhausted
from serving.tensor_codec import dtype_name, numpy_dtype

SAVED_MODEL_PB = "saved_model.pb"
SERVE_TAG = "serve"
PREDICT_METHOD = "tensorflow/serving/predict"


class LoadError(Exception):
    """A model version cannot be served; the message says why."""


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One input or output of a signature: dtype enum and shape (None = unknown rank)."""

    name: str
    dtype: int
    shape: Optional[Tuple[int, ...]]

    @property
    def batched(self) -> bool:
        """True when the first dimension is free (-1), i.e. the batch dimension."""
        return self.shape is not None and len(self.shape) >= 1 and self.shape[0] == -1


@dataclasses.dataclass(frozen=True)
class SignatureSpec:
    """A signature's inputs and outputs; ``batchable`` when every tensor has a free batch dim."""

    name: str
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]
    batchable: bool = dataclasses.field(init=False)  # may requests be concatenated on dim 0?

    def __post_init__(self) -> None:
        tensors = list(self.inputs.values()) + list(self.outputs.values())
        object.__setattr__(self, "batchable", bool(self.inputs) and all(t.batched for t in tensors))


def _tensor_spec(name: str, info: meta_graph_pb2.TensorInfo) -> TensorSpec:
    shape = info.tensor_shape
    dims = None if shape.unknown_rank else tuple(int(d.size) for d in shape.dim)
    return TensorSpec(name=name, dtype=info.dtype, shape=dims)


def spec_from_def(name: str, signature: meta_graph_pb2.SignatureDef) -> SignatureSpec:
    """Build the spec of one SignatureDef.

    Args:
        name: the signature key.
        signature: the SignatureDef proto.

    Returns:
        The SignatureSpec.
    """
    return SignatureSpec(
        name=name, method_name=signature.method_name,
        inputs={k: _tensor_spec(k, v) for k, v in sorted(signature.inputs.items())},
        outputs={k: _tensor_spec(k, v) for k, v in sorted(signature.outputs.items())})


def read_signature_defs(saved_model_dir: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
    """Read the SignatureDefs of the 'serve' meta graph of a SavedModel.

    Args:
        saved_model_dir: the version directory.

    Returns:
        Signature key -> SignatureDef proto (as TF Serving reports them in metadata).

    Raises:
        LoadError: the file is missing, unreadable, not a SavedModel, or has no 'serve' graph.
    """
    path = os.path.join(saved_model_dir, SAVED_MODEL_PB)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise LoadError(f"cannot read {path}: {err.strerror or err}") from None
    model = saved_model_pb2.SavedModel()
    try:
        with warnings.catch_warnings():
            # the C++ parser only warns about trailing garbage; a version must parse cleanly
            warnings.simplefilter("error", RuntimeWarning)
            model.ParseFromString(data)
    except (DecodeError, RuntimeError, RuntimeWarning, ValueError) as err:
        raise LoadError(f"{path} is not a valid SavedModel: {err}") from None
    for graph in model.meta_graphs:
        if SERVE_TAG in graph.meta_info_def.tags:
            return dict(graph.signature_def)
    raise LoadError(f"{path} has no meta graph tagged '{SERVE_TAG}'")


def servable_specs(defs: Mapping[str, meta_graph_pb2.SignatureDef]) -> Dict[str, SignatureSpec]:
    """Specs of the signatures a client may call (internal '__' keys excluded)."""
    return {k: spec_from_def(k, v) for k, v in defs.items() if not k.startswith("__")}


def check_contract(specs: Mapping[str, SignatureSpec]) -> None:
    """Require the recommender contract on the default signature.

    Raises:
        LoadError: the signature, its user input or its item/score outputs are missing or
            have the wrong dtype.
    """
    spec = specs.get(SERVING_SIGNATURE)
    if spec is None:
        raise LoadError(f"no '{SERVING_SIGNATURE}' signature (has {sorted(specs)})")
    wanted_in = {SERVING_INPUT_USER: types_pb2.DT_STRING}
    wanted_out = {SERVING_OUTPUT_ITEMS: types_pb2.DT_STRING, SERVING_OUTPUT_SCORES: types_pb2.DT_FLOAT}
    if set(spec.inputs) != set(wanted_in):
        raise LoadError(f"'{SERVING_SIGNATURE}' must take exactly {sorted(wanted_in)}, "
                        f"takes {sorted(spec.inputs)}")
    for group, wanted in ((spec.inputs, wanted_in), (spec.outputs, wanted_out)):
        for key, dtype in wanted.items():
            if key not in group:
                raise LoadError(f"'{SERVING_SIGNATURE}' lacks '{key}' (has {sorted(group)})")
            if group[key].dtype != dtype:
                raise LoadError(f"'{SERVING_SIGNATURE}' tensor '{key}' is "
                                f"{dtype_name(group[key].dtype)}, expected {dtype_name(dtype)}")


def validate_inputs(spec: SignatureSpec, inputs: Mapping[str, np.ndarray], max_elements: int,
                    reject_non_finite: bool = True) -> int:
    """Check request inputs against a signature.

    Args:
        spec: the signature.
        inputs: input name -> array (already decoded).
        max_elements: the largest total element count of a request.
        reject_non_finite: refuse NaN and Inf in floating inputs.

    Returns:
        The number of rows (dimension 0 shared by all inputs), or 1 for an unbatchable signature.

    Raises:
        ServingError: INVALID_ARGUMENT naming the offending input, RESOURCE_EXHAUSTED when
            the request has too many elements.
    """
    missing = sorted(set(spec.inputs) - set(inputs))
    extra = sorted(set(inputs) - set(spec.inputs))
    if missing or extra:
        raise invalid_argument(
            f"input names do not match signature '{spec.name}': missing {missing}, "
            f"unexpected {extra}; expected {sorted(spec.inputs)}")
    total = sum(int(a.size) for a in inputs.values())
    if total > max_elements:
        raise resource_exhausted(f"request has {total} elements, more than {max_elements}")
    rows = set()
    for name, tensor in spec.inputs.items():
        array = inputs[name]
        _check_one(name, tensor, array, reject_non_finite)
        if tensor.batched:
            rows.add(array.shape[0])
    if spec.batchable:
        if len(rows) != 1:
            raise invalid_argument(
                f"inputs of signature '{spec.name}' disagree on the batch size: {sorted(rows)}")
        count = rows.pop()
        if count < 1:
            raise invalid_argument("the batch dimension must be at least 1")
        return count
    return 1


def _check_one(name: str, tensor: TensorSpec, array: np.ndarray, reject_non_finite: bool) -> None:
    expected = numpy_dtype(tensor.dtype)
    if array.dtype != expected:
        raise invalid_argument(
            f"input '{name}' has dtype {array.dtype}, signature expects {dtype_name(tensor.dtype)}")
    if tensor.shape is not None:
        if array.ndim != len(tensor.shape):
            raise invalid_argument(f"input '{name}' has rank {array.ndim} (shape "
                                   f"{list(array.shape)}), signature expects rank "
                                   f"{len(tensor.shape)} ({list(tensor.shape)})")
        for got, want in zip(array.shape, tensor.shape):
            if want >= 0 and got != want:
                raise invalid_argument(f"input '{name}' has shape {list(array.shape)}, "
                                       f"signature expects {list(tensor.shape)}")
    if expected.kind == "O":
        if not all(isinstance(v, bytes) for v in array.ravel()):
            raise invalid_argument(f"input '{name}' must hold byte strings")
    elif reject_non_finite and expected.kind == "f" and not np.isfinite(array).all():
        raise invalid_argument(f"input '{name}' contains NaN or Inf")


def batch_signature(spec: SignatureSpec, inputs: Mapping[str, np.ndarray]) -> Tuple:
    """The part of a request that must match for two requests to share a batch.

    Returns:
        A hashable tuple of (input name, non-batch dims) pairs, or a unique object for
        unbatchable signatures (so they never merge).
    """
    if not spec.batchable:
        return (object(),)
    return tuple((name, inputs[name].shape[1:]) for name in sorted(inputs))


def raise_if_unknown(specs: Mapping[str, SignatureSpec], name: str) -> SignatureSpec:
    """The spec of signature ``name``, or FAILED_PRECONDITION as TF Serving answers."""
    if name not in specs:
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                           f"Serving signature key \"{name}\" not found.")
    return specs[name]
