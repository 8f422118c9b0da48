"""Client of the model server (or of a stock ``tensorflow_model_server``).

``RecommendationClient("HOST:PORT")`` talks gRPC through the ``tensorflow-serving-api`` stubs;
``transport="rest"`` talks to the REST port with the same methods.  ``recommend`` returns,
per user, the recommended item ids and their scores, best first.  Every failure is a
``ServingClientError`` carrying the gRPC status code (and, for REST, the HTTP status).
"""

from __future__ import annotations

import base64
import http.client
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import grpc
import numpy as np
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from core.features import SERVING_INPUT_USER, SERVING_OUTPUT_ITEMS, SERVING_OUTPUT_SCORES, SERVING_SIGNATURE
from serving.errors import HTTP_STATUS
from serving.tensor_codec import dtype_name, to_ndarray, to_tensor_proto

PRIORITY_KEY = "x-priority"
_NO_LIMIT = 2 ** 62
_CODE_BY_HTTP = {status: code for code, status in HTTP_STATUS.items()
                 if code not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE,
                                 grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS,
                                 grpc.StatusCode.ABORTED)}


class ServingClientError(Exception):
    """A request failed: ``code`` is the gRPC status, ``http_status`` set for REST."""

    def __init__(self, code: grpc.StatusCode, message: str, http_status: Optional[int] = None) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


class RecommendationClient:
    """Ask a TF-Serving-compatible server for recommendations.

    Args:
        target: ``host:port`` of the gRPC port (or the REST port with ``transport='rest'``).
        transport: ``'grpc'`` or ``'rest'``.
        timeout_s: default deadline of each call.
    """

    def __init__(self, target: str, transport: str = "grpc", timeout_s: float = 10.0) -> None:
        if transport not in ("grpc", "rest"):
            raise ValueError(f"transport must be 'grpc' or 'rest', got {transport!r}")
        host, sep, port = target.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"target must be HOST:PORT, got {target!r}")
        self.target = target
        self.transport = transport
        self.timeout_s = timeout_s
        self._host, self._port = host, int(port)
        self._channel: Optional[grpc.Channel] = None
        self._rest: Optional[http.client.HTTPConnection] = None
        if transport == "grpc":
            self._channel = grpc.insecure_channel(
                target, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
            self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
            self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    # ---- public API -------------------------------------------------------------------------
    def recommend(self, user_ids: Sequence[str], model_name: str,
                  signature: str = SERVING_SIGNATURE, timeout_s: Optional[float] = None,
                  priority: str = "normal", version: Optional[int] = None,
                  label: Optional[str] = None) -> List[Tuple[List[str], List[float]]]:
        """Top items per user.

        Args:
            user_ids: the users.
            model_name: the served model.
            signature: signature taking ``user_id`` and returning items and scores.
            timeout_s: deadline of the call (default: the client's).
            priority: priority class sent with the request.
            version: a specific version, or None for the latest.
            label: a version label, or None.

        Returns:
            One ``(item ids, scores)`` pair per user, best first.

        Raises:
            ServingClientError: the server refused or failed the request.
        """
        if not user_ids:
            return []
        inputs = {SERVING_INPUT_USER: np.array([u.encode("utf-8") for u in user_ids], dtype=object)}
        outputs = self.predict(model_name, inputs, signature, timeout_s, priority, version, label)
        items, scores = outputs[SERVING_OUTPUT_ITEMS], outputs[SERVING_OUTPUT_SCORES]
        return [([i.decode("utf-8") if isinstance(i, bytes) else str(i) for i in row_items],
                 [float(s) for s in row_scores]) for row_items, row_scores in zip(items, scores)]

    def predict(self, model_name: str, inputs: Mapping[str, Any], signature: str = SERVING_SIGNATURE,
                timeout_s: Optional[float] = None, priority: str = "normal",
                version: Optional[int] = None, label: Optional[str] = None) -> Dict[str, np.ndarray]:
        """Call any signature; inputs and outputs are numpy arrays (strings as bytes).

        Raises:
            ServingClientError: the server refused or failed the request.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        arrays = {k: _as_array(v) for k, v in inputs.items()}
        if self.transport == "rest":
            body = {"signature_name": signature,
                    "inputs": {k: _json_value(v) for k, v in arrays.items()}}
            reply = self._rest_call("POST", _rest_path(model_name, version, label) + ":predict",
                                    body, timeout, priority)
            outputs = reply["outputs"]
            if not isinstance(outputs, dict):  # a single output is sent bare: name it
                names = self.metadata(model_name, version, label, timeout)["signatures"]
                outputs = {next(iter(names[signature]["outputs"])): outputs}
            return {k: _from_json(v) for k, v in outputs.items()}
        request = predict_pb2.PredictRequest()
        _fill_spec(request.model_spec, model_name, version, label)
        request.model_spec.signature_name = signature
        for name, array in arrays.items():
            request.inputs[name].CopyFrom(to_tensor_proto(array))
        response = self._grpc_call(self._predict.Predict, request, timeout,
                                   metadata=((PRIORITY_KEY, priority),))
        return {k: to_ndarray(v, k, _NO_LIMIT) for k, v in response.outputs.items()}

    def model_status(self, model_name: str, version: Optional[int] = None,
                     timeout_s: Optional[float] = None) -> List[Dict[str, Any]]:
        """Version states: ``[{'version', 'state', 'error_code', 'error_message'}]``."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        if self.transport == "rest":
            reply = self._rest_call("GET", _rest_path(model_name, version, None), None, timeout)
            return [{"version": int(s["version"]), "state": s["state"],
                     "error_code": s["status"]["error_code"],
                     "error_message": s["status"]["error_message"]}
                    for s in reply.get("model_version_status", [])]
        request = get_model_status_pb2.GetModelStatusRequest()
        _fill_spec(request.model_spec, model_name, version, None)
        response = self._grpc_call(self._models.GetModelStatus, request, timeout)
        states = get_model_status_pb2.ModelVersionStatus.State
        return [{"version": s.version, "state": states.Name(s.state),
                 "error_code": grpc.StatusCode(_status_tuple(s.status.error_code)).name,
                 "error_message": s.status.error_message} for s in response.model_version_status]

    def metadata(self, model_name: str, version: Optional[int] = None, label: Optional[str] = None,
                 timeout_s: Optional[float] = None) -> Dict[str, Any]:
        """Signatures: ``{'version': V, 'signatures': {name: {'inputs': {...}, 'outputs': {...}}}}``
        where each tensor is ``{'dtype': 'DT_STRING', 'shape': [-1]}``."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        if self.transport == "rest":
            reply = self._rest_call("GET", _rest_path(model_name, version, label) + "/metadata",
                                    None, timeout)
            defs = reply["metadata"]["signature_def"].get("signature_def", {})
            signatures = {name: {side: {k: {"dtype": t["dtype"], "shape": _json_shape(t)}
                                        for k, t in sig.get(side, {}).items()}
                                 for side in ("inputs", "outputs")} for name, sig in defs.items()}
            return {"version": int(reply["model_spec"]["version"]), "signatures": signatures}
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        _fill_spec(request.model_spec, model_name, version, label)
        request.metadata_field.append("signature_def")
        response = self._grpc_call(self._predict.GetModelMetadata, request, timeout)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        signatures = {name: {side: {k: {"dtype": dtype_name(t.dtype),
                                        "shape": None if t.tensor_shape.unknown_rank else
                                        [d.size for d in t.tensor_shape.dim]}
                                    for k, t in getattr(sig, side).items()}
                             for side in ("inputs", "outputs")}
                      for name, sig in signature_map.signature_def.items()}
        return {"version": response.model_spec.version.value, "signatures": signatures}

    def close(self) -> None:
        """Close the channel or connection."""
        if self._channel is not None:
            self._channel.close()
        if self._rest is not None:
            self._rest.close()

    def __enter__(self) -> "RecommendationClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transports -------------------------------------------------------------------------
    def _grpc_call(self, method: Any, request: Any, timeout: float,
                   metadata: Sequence[Tuple[str, str]] = ()) -> Any:
        try:
            return method(request, timeout=timeout, metadata=tuple(metadata))
        except grpc.RpcError as err:
            raise ServingClientError(err.code(), err.details() or "") from None

    def _rest_call(self, method: str, path: str, body: Optional[dict], timeout: float,
                   priority: Optional[str] = None) -> Dict[str, Any]:
        headers = {"X-Request-Timeout-Ms": str(int(timeout * 1000))}
        if priority:
            headers["X-Priority"] = priority
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        for attempt in range(2):  # one retry when a kept-alive connection was closed
            if self._rest is None:
                self._rest = http.client.HTTPConnection(self._host, self._port, timeout=timeout + 5)
            try:
                self._rest.request(method, path, body=data, headers=headers)
                response = self._rest.getresponse()
                payload = response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    self._rest.close()
                    self._rest = None
                break
            except (http.client.HTTPException, ConnectionError) as err:
                self._rest.close()
                self._rest = None
                if attempt:
                    raise ServingClientError(grpc.StatusCode.UNAVAILABLE, str(err)) from None
            except OSError as err:
                self._rest.close()
                self._rest = None
                raise ServingClientError(grpc.StatusCode.UNAVAILABLE, str(err)) from None
        try:
            reply = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            reply = {"error": payload[:200].decode("utf-8", "replace")}
        if status != 200:
            code = _CODE_BY_HTTP.get(status, grpc.StatusCode.UNKNOWN)
            raise ServingClientError(code, str(reply.get("error", reply)), http_status=status)
        return reply


def _status_tuple(number: int) -> Tuple[int, str]:
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code.value
    return grpc.StatusCode.UNKNOWN.value


def _fill_spec(spec: Any, model: str, version: Optional[int], label: Optional[str]) -> None:
    spec.name = model
    if version is not None:
        spec.version.value = version
    elif label:
        spec.version_label = label


def _rest_path(model: str, version: Optional[int], label: Optional[str]) -> str:
    path = f"/v1/models/{model}"
    if version is not None:
        return f"{path}/versions/{version}"
    return f"{path}/labels/{label}" if label else path


def _as_array(value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind in ("U", "S", "O"):
        flat = [v.encode("utf-8") if isinstance(v, str) else v for v in array.ravel()]
        holder = np.empty(len(flat), dtype=object)
        holder[:] = flat
        return holder.reshape(array.shape)
    return array


def _json_value(array: np.ndarray) -> Any:
    if array.dtype == object:
        flat = [{"b64": base64.b64encode(v).decode("ascii")} for v in array.ravel()]
        holder = np.empty(len(flat), dtype=object)
        holder[:] = flat
        return holder.reshape(array.shape).tolist()
    return array.tolist()


def _from_json(value: Any) -> np.ndarray:
    raw = np.array(value, dtype=object)
    if raw.size and all(isinstance(v, (str, dict)) for v in raw.ravel()):
        flat = [base64.b64decode(v["b64"]) if isinstance(v, dict) else v.encode("utf-8")
                for v in raw.ravel()]
        holder = np.empty(len(flat), dtype=object)
        holder[:] = flat
        return holder.reshape(raw.shape)
    return np.array(value)


def _json_shape(tensor: Mapping[str, Any]) -> Optional[List[int]]:
    shape = tensor.get("tensor_shape", {})
    if shape.get("unknown_rank"):
        return None
    return [int(d["size"]) for d in shape.get("dim", [])]
