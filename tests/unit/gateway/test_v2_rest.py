"""Open Inference Protocol V2 over REST through Flask's test client, with fake backends (no network)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from gateway.codecs.json_body import Limits
from gateway.codecs.v2_json import HEADER_LENGTH, decode_infer, encode_infer
from gateway.errors import InvalidInput, PayloadTooLarge
from tests.unit.gateway.conftest import FakeBackend

IMAGES = np.linspace(0, 1, 2 * 784, dtype=np.float32).reshape(2, 28, 28)


def tensor(data: Any = None, shape: list[int] | None = None, **extra: Any) -> dict[str, Any]:
    base = {"name": "image", "datatype": "FP32", "shape": shape or [2, 28, 28]}
    if data is not None:
        base["data"] = data
    return {**base, **extra}


def binary_body(images: np.ndarray, document: dict[str, Any] | None = None) -> tuple[bytes, str]:
    raw = images.astype("<f4").tobytes()
    head = json.dumps(
        document
        or {
            "inputs": [tensor(shape=list(images.shape), parameters={"binary_data_size": len(raw)})],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    return head + raw, str(len(head))


def test_json_tensors_flat_or_nested_decode_the_same() -> None:
    flat = json.dumps({"inputs": [tensor(IMAGES.ravel().tolist())]}).encode()
    nested = json.dumps({"id": "r1", "inputs": [tensor(IMAGES.tolist())]}).encode()
    a, b = decode_infer(flat, None, Limits()), decode_infer(nested, None, Limits())
    assert np.array_equal(a.images, IMAGES) and np.array_equal(b.images, IMAGES)
    assert b.id == "r1" and not b.binary_output


def test_binary_tensor_extension_round_trip() -> None:
    body, length = binary_body(IMAGES)
    decoded = decode_infer(body, length, Limits())
    assert np.array_equal(decoded.images, IMAGES) and decoded.binary_output
    probabilities = np.full((2, 10), 0.1, dtype=np.float32)
    answer, headers = encode_infer(probabilities, "mnist", "3", "r1", binary=True)
    head = json.loads(answer[: int(headers[HEADER_LENGTH])])
    assert head["outputs"][0]["parameters"]["binary_data_size"] == 80 and head["id"] == "r1"
    raw = answer[int(headers[HEADER_LENGTH]) :]
    assert np.array_equal(np.frombuffer(raw, dtype="<f4").reshape(2, 10), probabilities)


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"inputs": []}, "non-empty"),
        ({"inputs": [tensor(IMAGES.tolist(), datatype="INT8")]}, "datatype"),
        ({"inputs": [tensor(IMAGES.tolist(), shape=[2, 27, 28])]}, "shape"),
        ({"inputs": [tensor(IMAGES.tolist(), shape=[3, 28, 28])]}, "values for shape"),
        ({"inputs": [tensor(IMAGES.tolist(), name="pixels")]}, "unknown input"),
        ({"inputs": [tensor()]}, "no 'data'"),
        ({"inputs": [tensor((IMAGES * 2).tolist())]}, "[0, 1]"),
        ({"inputs": [tensor([[True] * 784] * 2)]}, "booleans"),
        ({"inputs": [tensor(IMAGES.tolist())], "outputs": [{"name": "logits"}]}, "unknown output"),
        ({"inputs": [tensor(IMAGES.tolist()), tensor(IMAGES.tolist())]}, "twice"),
        ({"inputs": [tensor(IMAGES.tolist())], "id": 7}, "'id'"),
    ],
)
def test_bad_infer_requests_say_what_is_wrong(document: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_infer(json.dumps(document).encode(), None, Limits())
    assert fragment in caught.value.message


def test_binary_sizes_must_add_up() -> None:
    body, length = binary_body(IMAGES)
    with pytest.raises(InvalidInput, match="fewer were sent"):
        decode_infer(body[:-4], length, Limits())
    with pytest.raises(InvalidInput, match="belong to no input"):
        decode_infer(body + b"\0\0\0\0", length, Limits())
    with pytest.raises(InvalidInput, match="does not fit"):
        decode_infer(body, str(len(body) + 1), Limits())


def test_too_many_images_is_413() -> None:
    document = {"inputs": [tensor(np.zeros((3, 784)).tolist(), shape=[3, 784])]}
    with pytest.raises(PayloadTooLarge):
        decode_infer(json.dumps(document).encode(), None, Limits(max_instances=2))


def test_infer_endpoint_json_and_binary(client: FlaskClient, fakes: dict[str, FakeBackend]) -> None:
    answer = client.post("/v2/models/mnist/infer", json={"id": "x", "inputs": [tensor(IMAGES.tolist())]})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["id"] == "x" and body["model_name"] == "mnist" and body["outputs"][0]["shape"] == [2, 10]
    assert np.argmax(np.reshape(body["outputs"][0]["data"], (2, 10)), axis=1).tolist() == [3, 3]
    raw, length = binary_body(IMAGES)
    answer = client.post(
        "/v2/models/mnist/versions/2/infer",
        data=raw,
        headers={HEADER_LENGTH: length, "Content-Type": "application/octet-stream"},
    )
    assert answer.status_code == 200 and HEADER_LENGTH in answer.headers
    assert answer.headers["X-Model-Version"] == "2"


def test_errors_use_the_protocols_shape_with_our_request_id(client: FlaskClient) -> None:
    answer = client.post("/v2/models/mnist/infer", json={"inputs": []}, headers={"X-Request-ID": "req-1"})
    assert answer.status_code == 400 and set(answer.get_json()) == {"error"}
    assert answer.headers["X-Request-ID"] == "req-1"
    missing = client.post("/v2/models/nope/infer", json={"inputs": [tensor(IMAGES.tolist())]})
    assert missing.status_code == 404 and "nope" in missing.get_json()["error"]


def test_health_and_metadata(client: FlaskClient, fakes: dict[str, FakeBackend]) -> None:
    assert client.get("/v2").get_json()["extensions"] == ["binary_tensor_data"]
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get("/v2/models/mnist").get_json()
    assert meta["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 28, 28]}]
    assert meta["outputs"][0]["name"] == "probabilities"
    assert client.get("/v2/models/mnist/ready").get_json() == {"name": "mnist", "ready": True}
    for fake in fakes.values():
        fake.ready = False
    assert client.get("/v2/models/mnist/ready").status_code == 503
    assert client.get("/v2/health/ready").status_code == 503
