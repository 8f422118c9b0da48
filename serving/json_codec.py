"""TF Serving's REST JSON tensor format: request bodies to arrays, outputs to JSON.

Requests use the row format (``"instances"``: one element per row, each a value or an object
of named inputs) or the columnar format (``"inputs"``: a value or an object of named
inputs).  Binary strings are ``{"b64": "..."}``; other strings are UTF-8.  Every value is
checked against the signature's dtype (a string is never silently parsed as a number, ragged
lists and out-of-range integers are refused).  Responses mirror the request format:
``{"predictions": [...]}`` or ``{"outputs": ...}``; string outputs whose name ends in
``_bytes`` (or that are not UTF-8) are written as ``{"b64": ...}``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

from serving.errors import invalid_argument, resource_exhausted
from serving.signatures import SignatureSpec, TensorSpec
from serving.tensor_codec import dtype_name, numpy_dtype

ROW, COLUMNAR = "row", "columnar"


def parse_predict_body(body: Any) -> Tuple[str, str, Any]:
    """Split a parsed predict body into its parts.

    Args:
        body: the parsed JSON document.

    Returns:
        ``(signature_name, format, payload)`` with format ``'row'`` or ``'columnar'``.

    Raises:
        ServingError: INVALID_ARGUMENT for a body that is not a predict request.
    """
    if not isinstance(body, dict):
        raise invalid_argument("request body must be a JSON object")
    signature = body.get("signature_name", "")
    if not isinstance(signature, str):
        raise invalid_argument("'signature_name' must be a string")
    has_rows, has_cols = "instances" in body, "inputs" in body
    if has_rows == has_cols:
        raise invalid_argument("request must have exactly one of 'instances' (row format) "
                               "or 'inputs' (columnar format)")
    if has_rows:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise invalid_argument("'instances' must be a non-empty list")
        return signature, ROW, rows
    return signature, COLUMNAR, body["inputs"]


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _named(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def decode_inputs(payload: Any, fmt: str, spec: SignatureSpec, max_elements: int
                  ) -> Dict[str, np.ndarray]:
    """Convert a row or columnar payload to arrays of the signature's dtypes.

    Args:
        payload: ``instances`` list or ``inputs`` value from ``parse_predict_body``.
        fmt: ``'row'`` or ``'columnar'``.
        spec: the signature being called.
        max_elements: the largest element count accepted per input.

    Returns:
        Input name -> array.

    Raises:
        ServingError: INVALID_ARGUMENT for anything that does not fit the signature.
    """
    names = list(spec.inputs)
    if fmt == ROW:
        if all(_named(row) for row in payload):
            columns: Dict[str, List[Any]] = {n: [] for n in names}
            for index, row in enumerate(payload):
                if set(row) != set(names):
                    raise invalid_argument(f"instance {index} has inputs {sorted(row)}, "
                                           f"signature '{spec.name}' expects {sorted(names)}")
                for name in names:
                    columns[name].append(row[name])
        elif any(_named(row) for row in payload):
            raise invalid_argument("instances mix named-input objects and plain values")
        elif len(names) != 1:
            raise invalid_argument(f"signature '{spec.name}' has {len(names)} inputs "
                                   f"{sorted(names)}: each instance must be an object of them")
        else:
            columns = {names[0]: payload}
    else:
        if _named(payload):
            if set(payload) != set(names):
                raise invalid_argument(f"'inputs' has {sorted(payload)}, signature "
                                       f"'{spec.name}' expects {sorted(names)}")
            columns = dict(payload)
        elif len(names) != 1:
            raise invalid_argument(f"signature '{spec.name}' has {len(names)} inputs "
                                   f"{sorted(names)}: 'inputs' must be an object of them")
        else:
            columns = {names[0]: payload}
    return {name: to_array(value, spec.inputs[name], max_elements) for name, value in columns.items()}


def to_array(value: Any, tensor: TensorSpec, max_elements: int) -> np.ndarray:
    """Convert one JSON value (nested lists) to an array of ``tensor``'s dtype.

    Raises:
        ServingError: INVALID_ARGUMENT for ragged lists and wrong leaf types,
            RESOURCE_EXHAUSTED beyond ``max_elements``.
    """
    name = tensor.name
    try:
        raw = np.array(value, dtype=object)
    except (ValueError, TypeError) as err:
        raise invalid_argument(f"input '{name}' is not a regular nested list: {err}") from None
    if raw.size > max_elements:
        raise resource_exhausted(f"input '{name}' has more than {max_elements} elements")
    flat = raw.ravel()
    target = numpy_dtype(tensor.dtype)
    if any(isinstance(v, list) for v in flat):
        raise invalid_argument(f"input '{name}' is a ragged list (all rows must have equal length)")
    if target.kind == "O":
        out = np.empty(flat.shape, dtype=object)
        for index, leaf in enumerate(flat):
            out[index] = _to_bytes(leaf, name)
        return out.reshape(raw.shape)
    if target == np.bool_:
        if not all(isinstance(v, bool) for v in flat):
            raise invalid_argument(f"input '{name}' must hold true/false values")
        return flat.astype(np.bool_).reshape(raw.shape)
    if not all(type(v) in (int, float) for v in flat):
        bad = next(v for v in flat if type(v) not in (int, float))
        raise invalid_argument(f"input '{name}' expects numbers ({dtype_name(tensor.dtype)}), "
                               f"got {type(bad).__name__} {str(bad)[:40]!r}")
    if target.kind in "iu":
        info = np.iinfo(target)
        for leaf in flat:
            if isinstance(leaf, float) and not (np.isfinite(leaf) and leaf.is_integer()):
                raise invalid_argument(f"input '{name}' expects integers, got {leaf!r}")
            if not info.min <= leaf <= info.max:
                raise invalid_argument(f"input '{name}' value {leaf!r} is out of range for "
                                       f"{dtype_name(tensor.dtype)}")
    try:
        return flat.astype(target).reshape(raw.shape)
    except (OverflowError, ValueError) as err:
        raise invalid_argument(f"input '{name}' has a value out of range: {err}") from None


def _to_bytes(leaf: Any, name: str) -> bytes:
    if isinstance(leaf, str):
        return leaf.encode("utf-8", errors="surrogatepass")
    if _is_b64(leaf) and isinstance(leaf["b64"], str):
        try:
            return base64.b64decode(leaf["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise invalid_argument(f"input '{name}' has invalid base64 data") from None
    raise invalid_argument(f"input '{name}' expects strings or {{\"b64\": ...}} objects, "
                           f"got {type(leaf).__name__}")


def _jsonable(name: str, array: np.ndarray) -> Any:
    if array.dtype in (np.float32, np.float16):
        # shortest text that reads back as the same float32 (1.3, not 1.2999999523162842)
        shortest = np.array([float(str(v)) for v in array.ravel()], dtype=np.float64)
        return shortest.reshape(array.shape).tolist()
    if array.dtype != object and array.dtype.kind not in ("S", "U"):
        return array.tolist()
    as_b64 = name.endswith("_bytes")
    flat = [_string_value(v, as_b64) for v in array.ravel()]
    holder = np.empty(len(flat), dtype=object)
    holder[:] = flat
    return holder.reshape(array.shape).tolist()


def _string_value(value: Any, as_b64: bool) -> Any:
    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
    if not as_b64:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass  # not text: fall through to base64, as the format prescribes for binary
    return {"b64": base64.b64encode(data).decode("ascii")}


def encode_outputs(outputs: Mapping[str, np.ndarray], fmt: str) -> Dict[str, Any]:
    """The JSON response of a predict call.

    Args:
        outputs: output name -> array.
        fmt: the request's format.

    Returns:
        ``{"predictions": [...]}`` (row) or ``{"outputs": ...}`` (columnar).

    Raises:
        ServingError: INVALID_ARGUMENT when row format is asked of outputs whose first
            dimensions differ.
    """
    names = list(outputs)
    if fmt == COLUMNAR:
        if len(names) == 1:
            return {"outputs": _jsonable(names[0], outputs[names[0]])}
        return {"outputs": {n: _jsonable(n, outputs[n]) for n in names}}
    sizes = {outputs[n].shape[0] if outputs[n].ndim else None for n in names}
    if len(sizes) != 1 or None in sizes:
        raise invalid_argument("row format needs every output to have the same first "
                               "dimension; use the columnar 'inputs' format")
    columns = {n: _jsonable(n, outputs[n]) for n in names}
    if len(names) == 1:
        return {"predictions": columns[names[0]]}
    count = sizes.pop()
    return {"predictions": [{n: columns[n][i] for n in names} for i in range(count)]}
