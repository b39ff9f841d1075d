"""gRPC messages for both servers, encoded once per digit and decoded per answer, without TensorFlow.

TF Serving: the TensorFlow-free messages of :mod:`gateway.tfserving_proto` (``tensorflow-serving-api``'s
generated modules import TensorFlow: seconds and hundreds of MB, unwelcome in a gevent-patched load
generator).

TorchServe: :mod:`gateway.torchserve_proto` (its inference messages, declared without its stubs).
Open Inference Protocol (Triton): the ``inference.GRPCInferenceService`` modules ``tritonclient`` ships.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway import tfserving_proto, torchserve_proto
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
DT_FLOAT = tfserving_proto.DT_FLOAT


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
    request = tfserving_proto.messages().PredictRequest()
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
    response = tfserving_proto.messages().PredictResponse.FromString(answer)
    tensor = response.outputs[codec.output_name]
    if tensor.tensor_content:
        return np.frombuffer(tensor.tensor_content, dtype="<f4")
    return np.asarray(tensor.float_val, dtype=np.float32)


def _check_tfserving(codec: GrpcCodec, answer: bytes, label: int) -> str | None:
    response = tfserving_proto.messages().PredictResponse()
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


def _torchserve_request(model: str, digit: Digit) -> bytes:
    request = torchserve_proto.messages().PredictionsRequest(
        model_name=model, input={"data": digit.rest_body()}
    )
    return bytes(request.SerializeToString())


def _check_torchserve(answer: bytes, label: int) -> str | None:
    response = torchserve_proto.messages().PredictionResponse()
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
