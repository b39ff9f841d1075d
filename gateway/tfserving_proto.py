"""TF Serving's gRPC messages and services without TensorFlow.

``tensorflow-serving-api``'s generated modules import TensorFlow (seconds to load and hundreds of MiB in
every process that touches them), and the gateway image leaves TensorFlow out. Protobuf's wire format
carries field numbers and types only, so the messages a client and a server of TF Serving exchange for
``Predict``, ``GetModelMetadata`` and ``GetModelStatus`` are declared here with TF Serving's own package
names, field numbers and types: the bytes are the same, and ``tensorflow-serving-api``'s stubs talk to
a server built on these (and the other way round). Fields those calls never carry are left out; protobuf
keeps unknown fields, so nothing a peer sends is lost in transit.

The declarations live in a private descriptor pool, so they never clash with the real definitions when
TensorFlow is loaded in the same process. Importing this module costs protobuf and grpc only; the pool
is built on first use.

Shared by the gateway's gRPC ingress, its ``tfserving-grpc`` backend and the load tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import grpc
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

__all__ = [
    "AVAILABLE",
    "DT_FLOAT",
    "MODEL_SERVICE",
    "PREDICTION_SERVICE",
    "UNKNOWN",
    "Messages",
    "messages",
    "service_handler",
    "unary_call",
]

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
DT_FLOAT = 1
"""``tensorflow.DataType.DT_FLOAT``; dtypes travel as their enum numbers."""
UNKNOWN, AVAILABLE = 0, 30
"""``tensorflow.serving.ModelVersionStatus.State`` values the gateway reports."""

_F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {
    "string": _F.TYPE_STRING,
    "bytes": _F.TYPE_BYTES,
    "bool": _F.TYPE_BOOL,
    "int32": _F.TYPE_INT32,
    "int64": _F.TYPE_INT64,
    "float": _F.TYPE_FLOAT,
    "double": _F.TYPE_DOUBLE,
    "enum": _F.TYPE_INT32,  # an enum is a varint on the wire, like int32; proto3 enums are open
}

# message (a nested one after its parent) -> ((field, number, type, repeated), ...); a type that is
# not a scalar names a message, and "map:<message>" a map<string, message>. TF Serving's numbers.
_TENSORFLOW: dict[str, tuple[tuple[str, int, str, bool], ...]] = {
    "TensorShapeProto": (
        ("dim", 2, ".tensorflow.TensorShapeProto.Dim", True),
        ("unknown_rank", 3, "bool", False),
    ),
    "TensorShapeProto.Dim": (("size", 1, "int64", False), ("name", 2, "string", False)),
    "TensorProto": (
        ("dtype", 1, "enum", False),
        ("tensor_shape", 2, ".tensorflow.TensorShapeProto", False),
        ("version_number", 3, "int32", False),
        ("tensor_content", 4, "bytes", False),
        ("float_val", 5, "float", True),
        ("double_val", 6, "double", True),
        ("int_val", 7, "int32", True),
        ("string_val", 8, "bytes", True),
        ("int64_val", 10, "int64", True),
        ("bool_val", 11, "bool", True),
    ),
    "TensorInfo": (
        ("name", 1, "string", False),
        ("dtype", 2, "enum", False),
        ("tensor_shape", 3, ".tensorflow.TensorShapeProto", False),
    ),
    "SignatureDef": (
        ("inputs", 1, "map:.tensorflow.TensorInfo", True),
        ("outputs", 2, "map:.tensorflow.TensorInfo", True),
        ("method_name", 3, "string", False),
    ),
}
_SERVING: dict[str, tuple[tuple[str, int, str, bool], ...]] = {
    "ModelSpec": (
        ("name", 1, "string", False),
        ("version", 2, ".google.protobuf.Int64Value", False),
        ("signature_name", 3, "string", False),
        ("version_label", 4, "string", False),
    ),
    "PredictRequest": (
        ("model_spec", 1, ".tensorflow.serving.ModelSpec", False),
        ("inputs", 2, "map:.tensorflow.TensorProto", True),
        ("output_filter", 3, "string", True),
    ),
    "PredictResponse": (
        ("outputs", 1, "map:.tensorflow.TensorProto", True),
        ("model_spec", 2, ".tensorflow.serving.ModelSpec", False),
    ),
    "SignatureDefMap": (("signature_def", 1, "map:.tensorflow.SignatureDef", True),),
    "GetModelMetadataRequest": (
        ("model_spec", 1, ".tensorflow.serving.ModelSpec", False),
        ("metadata_field", 2, "string", True),
    ),
    "GetModelMetadataResponse": (
        ("model_spec", 1, ".tensorflow.serving.ModelSpec", False),
        ("metadata", 2, "map:.google.protobuf.Any", True),
    ),
    "StatusProto": (("error_code", 1, "enum", False), ("error_message", 2, "string", False)),
    "ModelVersionStatus": (
        ("version", 1, "int64", False),
        ("state", 2, "enum", False),
        ("status", 3, ".tensorflow.serving.StatusProto", False),
    ),
    "GetModelStatusRequest": (("model_spec", 1, ".tensorflow.serving.ModelSpec", False),),
    "GetModelStatusResponse": (("model_version_status", 1, ".tensorflow.serving.ModelVersionStatus", True),),
}


_HIDDEN = ("StatusProto",)
"""Messages reached only through another message's field: no attribute of :class:`Messages`."""


def _add_field(
    message: descriptor_pb2.DescriptorProto, name: str, number: int, kind: str, repeated: bool
) -> None:
    field = message.field.add(name=name, number=number)
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if kind in _SCALARS:
        field.type = _SCALARS[kind]
        return
    field.type = _F.TYPE_MESSAGE
    if not kind.startswith("map:"):
        field.type_name = kind
        return
    entry_name = "".join(part.capitalize() for part in name.split("_")) + "Entry"
    entry = message.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    _add_field(entry, "key", 1, "string", False)
    _add_field(entry, "value", 2, kind.removeprefix("map:"), False)
    field.type_name = entry_name  # resolved relative to the message


def _file(name: str, package: str, layout: Mapping[str, tuple[tuple[str, int, str, bool], ...]]) -> Any:
    proto = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto3")
    declared: dict[str, descriptor_pb2.DescriptorProto] = {}
    for dotted, fields in layout.items():
        parent, _, own = dotted.rpartition(".")
        holder = declared[parent].nested_type if parent else proto.message_type
        declared[dotted] = message = holder.add(name=own)
        for field in fields:
            _add_field(message, *field)
    return proto


@dataclass(frozen=True)
class Messages:
    """The message classes, by TF Serving's names."""

    TensorProto: Any
    SignatureDef: Any
    ModelSpec: Any
    PredictRequest: Any
    PredictResponse: Any
    SignatureDefMap: Any
    GetModelMetadataRequest: Any
    GetModelMetadataResponse: Any
    ModelVersionStatus: Any
    GetModelStatusRequest: Any
    GetModelStatusResponse: Any


@cache
def messages() -> Messages:
    """The message classes, built once per process in a private pool."""
    pool = descriptor_pool.DescriptorPool()
    for well_known in (any_pb2, wrappers_pb2):
        pool.AddSerializedFile(well_known.DESCRIPTOR.serialized_pb)
    tensorflow = _file("tfserving_proto/tensorflow.proto", "tensorflow", _TENSORFLOW)
    serving = _file("tfserving_proto/serving.proto", "tensorflow.serving", _SERVING)
    serving.dependency.extend(
        ["tfserving_proto/tensorflow.proto", "google/protobuf/any.proto", "google/protobuf/wrappers.proto"]
    )
    pool.Add(tensorflow)
    pool.Add(serving)

    def find(full_name: str) -> Any:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))

    return Messages(
        TensorProto=find("tensorflow.TensorProto"),
        SignatureDef=find("tensorflow.SignatureDef"),
        **{name: find(f"tensorflow.serving.{name}") for name in _SERVING if name not in _HIDDEN},
    )


def service_handler(service: str, methods: Mapping[str, tuple[Callable[[Any, Any], Any], str, str]]) -> Any:
    """A generic handler for ``grpc.Server.add_generic_rpc_handlers``: ``methods`` maps a method name
    to (behaviour, request message name, response message name)."""
    found = messages()
    handlers = {
        method: grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=getattr(found, request).FromString,
            response_serializer=getattr(found, response).SerializeToString,
        )
        for method, (behaviour, request, response) in methods.items()
    }
    return grpc.method_handlers_generic_handler(service, handlers)


def unary_call(
    channel: grpc.Channel, service: str, method: str, response: str
) -> grpc.UnaryUnaryMultiCallable:
    """A client callable for ``/service/method`` answering ``response`` messages."""
    return channel.unary_unary(
        f"/{service}/{method}",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=getattr(messages(), response).FromString,
    )
