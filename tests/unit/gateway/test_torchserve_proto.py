"""TorchServe's inference messages declared without its stubs, against the stubs compiled from the
installed torchserve package: same names, numbers, types and repetition, and bytes cross both ways."""

from __future__ import annotations

from gateway import torchserve_proto
from serving.torchserve.grpc_stubs import ensure_torchserve_stubs
from tests.unit.gateway.test_tfserving_proto import same_fields


def test_every_declared_field_matches_torchserve() -> None:
    official, _ = ensure_torchserve_stubs()
    ours = torchserve_proto.messages()
    for name in ("PredictionsRequest", "PredictionResponse", "TorchServeHealthResponse"):
        mine, theirs = getattr(ours, name).DESCRIPTOR, getattr(official, name).DESCRIPTOR
        assert mine.full_name == theirs.full_name
        same_fields(mine, theirs, name)
    service = official.DESCRIPTOR.services_by_name["InferenceAPIsService"]
    assert service.full_name == torchserve_proto.INFERENCE_SERVICE
    assert {"Ping", "Predictions"} <= set(service.methods_by_name)


def test_bytes_cross_both_ways() -> None:
    official, _ = ensure_torchserve_stubs()
    ours = torchserve_proto.messages()
    request = ours.PredictionsRequest(model_name="mnist", model_version="2", input={"data": b'{"x": 1}'})
    theirs = official.PredictionsRequest.FromString(request.SerializeToString())
    assert (theirs.model_name, theirs.model_version, dict(theirs.input)) == (
        "mnist",
        "2",
        {"data": b'{"x": 1}'},
    )
    answer = official.PredictionResponse(prediction=b"[0.1]")
    assert ours.PredictionResponse.FromString(answer.SerializeToString()).prediction == b"[0.1]"
