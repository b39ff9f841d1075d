"""gRPC messages for both servers, encoded once per digit and decoded per answer, without TensorFlow.

TF Serving: ``tensorflow-serving-api``'s generated modules import TensorFlow (seconds and hundreds of MB,
and unwelcome in a gevent-patched load generator). Protobuf's wire format carries only field numbers,
so a *subset* of the messages (``PredictRequest``, ``PredictResponse``, ``ModelSpec``, ``TensorProto``,
``TensorShapeProto``) declared here with the same numbers and types encodes and decodes the same bytes.
It lives in a private descriptor pool, so it never clashes with the real definitions if both are loaded.

TorchServe: the stubs generated from its own ``inference.proto`` (``serving.torchserve.grpc_stubs``).
Open Inference Protocol (Triton): the ``inference.GRPCInferenceService`` modules ``tritonclient`` ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from loadtests.checks import check_json_predictions, check_probabilities
from loadtests.payloads import Digit

__all__ = [
    "TFSERVING_PREDICT",
    "TORCHSERVE_PREDICTIONS",
    "V2_MODEL_INFER",
    "GrpcCodec",
    "codec_for",
    "tfserving_codec",
    "torchserve_codec",
    "v2_codec",
]

TFSERVING_PREDICT = "/tensorflow.serving.PredictionService/Predict"
TORCHSERVE_PREDICTIONS = "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions"
V2_MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
DT_FLOAT = 1

_F = descriptor_pb2.FieldDescriptorProto


def _field(
    message: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    kind: int,
    *,
    repeated: bool = False,
    type_name: str = "",
) -> None:
    field = message.field.add(name=name, number=number, type=kind)
    field.label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    if type_name:
        field.type_name = type_name


def _map_entry(parent: descriptor_pb2.DescriptorProto, entry: str, value_type: str) -> None:
    nested = parent.nested_type.add(name=entry)
    nested.options.map_entry = True
    _field(nested, "key", 1, _F.TYPE_STRING)
    _field(nested, "value", 2, _F.TYPE_MESSAGE, type_name=value_type)


@cache
def _tfserving_messages() -> dict[str, Any]:
    package = "loadtests.tfserving_subset"
    proto = descriptor_pb2.FileDescriptorProto(
        name="loadtests/tfserving_subset.proto", package=package, syntax="proto3"
    )
    dim = proto.message_type.add(name="Dim")
    _field(dim, "size", 1, _F.TYPE_INT64)
    _field(dim, "name", 2, _F.TYPE_STRING)
    shape = proto.message_type.add(name="TensorShapeProto")
    _field(shape, "dim", 2, _F.TYPE_MESSAGE, repeated=True, type_name=f".{package}.Dim")
    tensor = proto.message_type.add(name="TensorProto")
    _field(tensor, "dtype", 1, _F.TYPE_INT32)  # an enum on the wire is a varint, like int32
    _field(tensor, "tensor_shape", 2, _F.TYPE_MESSAGE, type_name=f".{package}.TensorShapeProto")
    _field(tensor, "tensor_content", 4, _F.TYPE_BYTES)
    _field(tensor, "float_val", 5, _F.TYPE_FLOAT, repeated=True)  # packed by default in proto3, as in TF
    int64_value = proto.message_type.add(name="Int64Value")
    _field(int64_value, "value", 1, _F.TYPE_INT64)
    spec = proto.message_type.add(name="ModelSpec")
    _field(spec, "name", 1, _F.TYPE_STRING)
    _field(spec, "version", 2, _F.TYPE_MESSAGE, type_name=f".{package}.Int64Value")
    _field(spec, "signature_name", 3, _F.TYPE_STRING)
    request = proto.message_type.add(name="PredictRequest")
    _field(request, "model_spec", 1, _F.TYPE_MESSAGE, type_name=f".{package}.ModelSpec")
    _map_entry(request, "InputsEntry", f".{package}.TensorProto")
    _field(
        request,
        "inputs",
        2,
        _F.TYPE_MESSAGE,
        repeated=True,
        type_name=f".{package}.PredictRequest.InputsEntry",
    )
    response = proto.message_type.add(name="PredictResponse")
    _map_entry(response, "OutputsEntry", f".{package}.TensorProto")
    _field(
        response,
        "outputs",
        1,
        _F.TYPE_MESSAGE,
        repeated=True,
        type_name=f".{package}.PredictResponse.OutputsEntry",
    )
    _field(response, "model_spec", 2, _F.TYPE_MESSAGE, type_name=f".{package}.ModelSpec")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
        for name in ("PredictRequest", "PredictResponse", "TensorProto")
    }


@dataclass(frozen=True)
class GrpcCodec:
    """Encodes a digit into a request's bytes and checks the answer's bytes for that digit."""

    method: str
    """Full gRPC method path."""
    kind: str
    """``tfserving``, ``torchserve`` or ``v2``."""
    model: str
    signature: str = "serving_default"
    input_name: str = "image"
    output_name: str = "probabilities"

    def request(self, digit: Digit) -> bytes:
        if self.kind == "tfserving":
            return _tfserving_request(self, digit)
        if self.kind == "v2":
            return _v2_request(self, digit)
        return _torchserve_request(self.model, digit)

    def check(self, answer: bytes, label: int) -> str | None:
        if self.kind == "tfserving":
            return _check_tfserving(self, answer, label)
        if self.kind == "v2":
            return _check_v2(self, answer, label)
        return _check_torchserve(answer, label)


def tfserving_codec(model: str) -> GrpcCodec:
    from model_store import CONTRACT

    return GrpcCodec(
        TFSERVING_PREDICT,
        "tfserving",
        model,
        CONTRACT.signature_name,
        CONTRACT.input.name,
        CONTRACT.output.name,
    )


def torchserve_codec(model: str) -> GrpcCodec:
    return GrpcCodec(TORCHSERVE_PREDICTIONS, "torchserve", model)


def _tfserving_request(codec: GrpcCodec, digit: Digit) -> bytes:
    return tfserving_predict_request(codec, digit.image[np.newaxis])


def tfserving_predict_request(codec: GrpcCodec, images: np.ndarray) -> bytes:
    """TF Serving's ``PredictRequest`` for a batch of images, serialised."""
    request = _tfserving_messages()["PredictRequest"]()
    request.model_spec.name = codec.model
    request.model_spec.signature_name = codec.signature
    tensor = request.inputs[codec.input_name]
    tensor.dtype = DT_FLOAT
    for size in images.shape:
        tensor.tensor_shape.dim.add().size = size
    tensor.tensor_content = np.ascontiguousarray(images, dtype="<f4").tobytes()
    return bytes(request.SerializeToString())


def tfserving_outputs(codec: GrpcCodec, answer: bytes) -> np.ndarray:
    """The output tensor's values of a serialised ``PredictResponse``, flat, as float32."""
    response = _tfserving_messages()["PredictResponse"].FromString(answer)
    tensor = response.outputs[codec.output_name]
    if tensor.tensor_content:
        return np.frombuffer(tensor.tensor_content, dtype="<f4")
    return np.asarray(tensor.float_val, dtype=np.float32)


def _check_tfserving(codec: GrpcCodec, answer: bytes, label: int) -> str | None:
    response = _tfserving_messages()["PredictResponse"]()
    try:
        response.ParseFromString(answer)
    except Exception:  # protobuf raises its own DecodeError (a plain Exception subclass)
        return "answer is not a PredictResponse"
    if codec.output_name not in response.outputs:
        return f"answer has no '{codec.output_name}' output"
    tensor = response.outputs[codec.output_name]
    dims = [dim.size for dim in tensor.tensor_shape.dim]
    if dims and dims != [1, 10]:
        return f"shape: {dims}, expected [1, 10]"
    if tensor.tensor_content:
        values = np.frombuffer(tensor.tensor_content, dtype="<f4").tolist()
    else:
        values = list(tensor.float_val)
    return check_probabilities(values, label)


@cache
def _torchserve_messages() -> Any:
    from serving.torchserve.grpc_stubs import ensure_torchserve_stubs

    messages, _ = ensure_torchserve_stubs()
    return messages


def _torchserve_request(model: str, digit: Digit) -> bytes:
    request = _torchserve_messages().PredictionsRequest(model_name=model, input={"data": digit.rest_body()})
    return bytes(request.SerializeToString())


def _check_torchserve(answer: bytes, label: int) -> str | None:
    response = _torchserve_messages().PredictionResponse()
    try:
        response.ParseFromString(answer)
    except Exception:  # protobuf's DecodeError
        return "answer is not a PredictionResponse"
    return check_json_predictions(response.prediction, label, digits_field=True)


def v2_codec(model: str) -> GrpcCodec:
    return GrpcCodec(V2_MODEL_INFER, "v2", model)


def _v2_request(codec: GrpcCodec, digit: Digit) -> bytes:
    from tritonclient.grpc import service_pb2 as v2

    request = v2.ModelInferRequest(
        model_name=codec.model,
        inputs=[
            v2.ModelInferRequest.InferInputTensor(name=codec.input_name, datatype="FP32", shape=[1, 28, 28])
        ],
        outputs=[v2.ModelInferRequest.InferRequestedOutputTensor(name=codec.output_name)],
        raw_input_contents=[np.ascontiguousarray(digit.image, dtype="<f4").tobytes()],
    )
    return bytes(request.SerializeToString())


def _check_v2(codec: GrpcCodec, answer: bytes, label: int) -> str | None:
    from tritonclient.grpc import service_pb2 as v2

    response = v2.ModelInferResponse()
    try:
        response.ParseFromString(answer)
    except Exception:  # protobuf's DecodeError
        return "answer is not a ModelInferResponse"
    names = [output.name for output in response.outputs]
    if codec.output_name not in names:
        return f"answer has no '{codec.output_name}' output"
    index = names.index(codec.output_name)
    if response.raw_output_contents:
        values = np.frombuffer(response.raw_output_contents[index], dtype="<f4").tolist()
    else:
        values = list(response.outputs[index].contents.fp32_contents)
    return check_probabilities(values, label)


def codec_for(api: str, model: str) -> GrpcCodec:
    """The codec of a server's API (``tfserving``, ``torchserve`` or ``v2``: the registry's ``api``)."""
    return {"tfserving": tfserving_codec, "torchserve": torchserve_codec, "v2": v2_codec}[api](model)
