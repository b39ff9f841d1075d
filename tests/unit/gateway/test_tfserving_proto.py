"""The TensorFlow-free TF Serving messages against ``tensorflow-serving-api``'s own descriptors: every field
we declare has TF Serving's name, number, type and repetition, and bytes cross both ways."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gateway import tfserving_proto


@pytest.fixture(scope="module")
def official() -> dict[str, Any]:
    from tensorflow.core.framework import tensor_pb2
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, model_pb2, predict_pb2

    return {
        "TensorProto": tensor_pb2.TensorProto,
        "SignatureDef": meta_graph_pb2.SignatureDef,
        "ModelSpec": model_pb2.ModelSpec,
        "PredictRequest": predict_pb2.PredictRequest,
        "PredictResponse": predict_pb2.PredictResponse,
        "SignatureDefMap": get_model_metadata_pb2.SignatureDefMap,
        "GetModelMetadataRequest": get_model_metadata_pb2.GetModelMetadataRequest,
        "GetModelMetadataResponse": get_model_metadata_pb2.GetModelMetadataResponse,
        "ModelVersionStatus": get_model_status_pb2.ModelVersionStatus,
        "GetModelStatusRequest": get_model_status_pb2.GetModelStatusRequest,
        "GetModelStatusResponse": get_model_status_pb2.GetModelStatusResponse,
    }


def same_fields(ours: Any, theirs: Any, path: str) -> None:
    for field in ours.fields:
        other = theirs.fields_by_number.get(field.number)
        where = f"{path}.{field.name}"
        assert other is not None, f"{where}: no field {field.number} in TF Serving"
        assert other.name == field.name, where
        other_type = 5 if other.type == 14 else other.type  # an enum (14) travels as int32 (5): both varints
        assert field.type == other_type, where
        assert field.is_repeated == other.is_repeated, where
        if field.message_type is not None:
            same_fields(field.message_type, other.message_type, where)


def test_every_declared_field_matches_tf_serving(official: dict[str, Any]) -> None:
    messages = tfserving_proto.messages()
    for name, real in official.items():
        ours = getattr(messages, name).DESCRIPTOR
        assert ours.full_name == real.DESCRIPTOR.full_name
        same_fields(ours, real.DESCRIPTOR, name)


def test_bytes_cross_both_ways(official: dict[str, Any]) -> None:
    messages = tfserving_proto.messages()
    images = np.arange(2 * 28 * 28, dtype="<f4").reshape(2, 28, 28)
    request = messages.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = "mnist", "serving_default"
    request.model_spec.version.value = 3
    tensor = request.inputs["image"]
    tensor.dtype = tfserving_proto.DT_FLOAT
    for size in images.shape:
        tensor.tensor_shape.dim.add().size = size
    tensor.tensor_content = images.tobytes()
    theirs = official["PredictRequest"].FromString(request.SerializeToString())
    assert theirs.model_spec.version.value == 3
    assert [d.size for d in theirs.inputs["image"].tensor_shape.dim] == [2, 28, 28]
    assert np.array_equal(
        np.frombuffer(theirs.inputs["image"].tensor_content, "<f4").reshape(2, 28, 28), images
    )
    back = messages.PredictRequest.FromString(theirs.SerializeToString())
    assert back == request

    signatures = messages.SignatureDefMap()
    signatures.signature_def["serving_default"].inputs["image"].dtype = tfserving_proto.DT_FLOAT
    metadata = messages.GetModelMetadataResponse()
    metadata.metadata["signature_def"].Pack(signatures)
    unpacked = official["SignatureDefMap"]()
    assert (
        official["GetModelMetadataResponse"]
        .FromString(metadata.SerializeToString())
        .metadata["signature_def"]
        .Unpack(unpacked)
    )
    assert unpacked.signature_def["serving_default"].inputs["image"].dtype == tfserving_proto.DT_FLOAT


def test_building_the_messages_loads_no_tensorflow() -> None:
    import subprocess
    import sys

    code = (
        "import sys; "
        "from gateway import tfserving_proto as p; p.messages(); print('tensorflow' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
