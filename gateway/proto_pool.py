"""Protobuf messages declared in code, in a private descriptor pool: a peer's wire format without its
generated modules (which may import a framework, or need a compiler at build time).

Protobuf's wire format carries field numbers and types only: a message declared here with a peer's
package, names, numbers and types encodes and decodes the same bytes as the peer's own code. Fields a
call never carries can be left out; protobuf keeps unknown fields. Each module that declares messages
(:mod:`gateway.tfserving_proto`, :mod:`gateway.torchserve_proto`) has a unit test that compares them
field by field with the peer's own descriptors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["Layout", "build_pool", "file_proto", "message_class", "service_handler", "unary_call"]

Layout = Mapping[str, tuple[tuple[str, int, str, bool], ...]]
"""message (a nested one after its parent, ``Outer.Inner``) -> ((field, number, type, repeated), ...);
a type that is not a scalar names a message (``.package.Message``), and ``map:<type>`` a
``map<string, type>``."""

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


def file_proto(name: str, package: str, layout: Layout) -> Any:
    proto = descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto3")
    declared: dict[str, descriptor_pb2.DescriptorProto] = {}
    for dotted, fields in layout.items():
        parent, _, own = dotted.rpartition(".")
        holder = declared[parent].nested_type if parent else proto.message_type
        declared[dotted] = message = holder.add(name=own)
        for field in fields:
            _add_field(message, *field)
    return proto


def build_pool(files: list[Any], well_known: tuple[Any, ...] = ()) -> descriptor_pool.DescriptorPool:
    """A private pool holding ``well_known`` (protobuf's own ``*_pb2`` modules) and then ``files``."""
    pool = descriptor_pool.DescriptorPool()
    for module in well_known:
        pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
    for proto in files:
        pool.Add(proto)
    return pool


def message_class(pool: descriptor_pool.DescriptorPool, full_name: str) -> Any:
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))


def service_handler(service: str, methods: Mapping[str, tuple[Callable[[Any, Any], Any], Any, Any]]) -> Any:
    """A generic handler for ``grpc.Server.add_generic_rpc_handlers``: ``methods`` maps a method name
    to (behaviour, request message class, response message class)."""
    handlers = {
        method: grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
        for method, (behaviour, request, response) in methods.items()
    }
    return grpc.method_handlers_generic_handler(service, handlers)


def unary_call(
    channel: grpc.Channel, service: str, method: str, response: Any
) -> grpc.UnaryUnaryMultiCallable:
    """A client callable for ``/service/method`` answering ``response`` (a message class) messages."""
    return channel.unary_unary(
        f"/{service}/{method}",
        request_serializer=lambda message: message.SerializeToString(),
        response_deserializer=response.FromString,
    )
