"""TF Serving response protos for status and metadata, and their REST JSON forms.

Both front ends build the same ``GetModelStatusResponse`` and ``GetModelMetadataResponse``;
the REST API prints them with proto field names and default values, as TF Serving does.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence

from google.protobuf import json_format
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from serving.tensor_codec import fill_tensor_proto
from serving.version_manager import VersionRecord

SIGNATURE_DEF_FIELD = "signature_def"


def status_response(model: str, records: Sequence[VersionRecord]
                    ) -> get_model_status_pb2.GetModelStatusResponse:
    """The GetModelStatus answer for a model's version records."""
    response = get_model_status_pb2.GetModelStatusResponse()
    states = get_model_status_pb2.ModelVersionStatus.State
    for record in records:
        status = response.model_version_status.add()
        status.version = record.version
        status.state = states.Value(record.state)
        status.status.error_code = record.error_code.value[0]
        status.status.error_message = record.error_message
    return response


def metadata_response(model: str, version: int,
                      defs: Mapping[str, meta_graph_pb2.SignatureDef]
                      ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """The GetModelMetadata answer: the version's SignatureDefMap packed in ``metadata``."""
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = model
    response.model_spec.version.value = version
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature in defs.items():
        signature_map.signature_def[key].CopyFrom(signature)
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


def predict_response(model: str, version: int, signature: str, outputs: Mapping[str, Any]
                     ) -> predict_pb2.PredictResponse:
    """The Predict answer with typed-field output tensors."""
    response = predict_pb2.PredictResponse()
    response.model_spec.name = model
    response.model_spec.version.value = version
    response.model_spec.signature_name = signature
    for name, array in outputs.items():
        fill_tensor_proto(response.outputs[name], array)
    return response


def _to_dict(message: Any) -> Dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     including_default_value_fields=True)


def status_json(response: get_model_status_pb2.GetModelStatusResponse) -> Dict[str, Any]:
    """REST body of ``GET /v1/models/NAME``."""
    return _to_dict(response)


def metadata_json(response: get_model_metadata_pb2.GetModelMetadataResponse) -> Dict[str, Any]:
    """REST body of ``GET /v1/models/NAME/metadata`` (the signature map unpacked)."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata[SIGNATURE_DEF_FIELD].Unpack(signature_map)
    return {"model_spec": _to_dict(response.model_spec),
            "metadata": {SIGNATURE_DEF_FIELD: _to_dict(signature_map)}}
