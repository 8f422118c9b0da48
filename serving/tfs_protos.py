"""TF Serving config messages that the ``tensorflow-serving-api`` wheel does not ship.

The wheel has ``ModelServerConfig`` but not ``BatchingParameters``
(servables/tensorflow/session_bundle_config.proto) nor ``MonitoringConfig``
(config/monitoring_config.proto).  This module declares both with TF Serving's package,
field names and numbers in a private descriptor pool, so the generated
``batching_parameters.txt`` and ``monitoring.config`` are parsed by the same schema the stock
``tensorflow_model_server`` uses.
"""

from __future__ import annotations

from typing import Any, Type

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_F = descriptor_pb2.FieldDescriptorProto
_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb))


def _field(message: Any, name: str, number: int, kind: int, type_name: str = "",
           repeated: bool = False) -> None:
    field = message.field.add(name=name, number=number, type=kind,
                              label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if type_name:
        field.type_name = type_name


def _batching_file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving", syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"])
    message = proto.message_type.add(name="BatchingParameters")
    int64 = ".google.protobuf.Int64Value"
    _field(message, "max_batch_size", 1, _F.TYPE_MESSAGE, int64)
    _field(message, "batch_timeout_micros", 2, _F.TYPE_MESSAGE, int64)
    _field(message, "max_enqueued_batches", 3, _F.TYPE_MESSAGE, int64)
    _field(message, "num_batch_threads", 4, _F.TYPE_MESSAGE, int64)
    _field(message, "thread_pool_name", 5, _F.TYPE_MESSAGE, ".google.protobuf.StringValue")
    _field(message, "allowed_batch_sizes", 6, _F.TYPE_INT64, repeated=True)
    _field(message, "pad_variable_length_inputs", 7, _F.TYPE_BOOL)
    return proto


def _monitoring_file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/monitoring_config.proto",
        package="tensorflow.serving", syntax="proto3")
    prometheus = proto.message_type.add(name="PrometheusConfig")
    _field(prometheus, "enable", 1, _F.TYPE_BOOL)
    _field(prometheus, "path", 2, _F.TYPE_STRING)
    monitoring = proto.message_type.add(name="MonitoringConfig")
    _field(monitoring, "prometheus_config", 1, _F.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig")
    return proto


_POOL.Add(_batching_file())
_POOL.Add(_monitoring_file())
_FACTORY = message_factory.MessageFactory(_POOL)

BatchingParameters: Type[Any] = _FACTORY.GetPrototype(
    _POOL.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))
MonitoringConfig: Type[Any] = _FACTORY.GetPrototype(
    _POOL.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))
