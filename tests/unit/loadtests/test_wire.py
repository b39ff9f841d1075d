"""Request payloads and answer checks: digits, JSON bodies, and the TensorFlow-free gRPC messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gateway.tfserving_proto import messages as tfserving_messages
from loadtests.checks import check_gateway_headers, check_json_predictions, check_probabilities, check_status
from loadtests.grpc_wire import tfserving_codec, torchserve_codec
from loadtests.payloads import Digit, PayloadError, Payloads, choose_digits, load_payloads, write_payloads


def one_hot(digit: int, confidence: float = 0.91) -> list[float]:
    rest = (1 - confidence) / 9
    return [confidence if i == digit else rest for i in range(10)]


def test_probability_checks() -> None:
    assert check_probabilities(one_hot(7), 7) is None
    assert check_probabilities(one_hot(7), 1) == "wrong digit: 7 for a 1"
    assert check_probabilities([0.5] * 10, 0) == "probabilities do not sum to 1"
    assert check_probabilities([1.0], 0) == "shape: 1 values, expected 10"
    assert check_probabilities([float("nan")] * 10, 0) == "probabilities outside [0, 1]"


def test_json_answers_of_both_servers() -> None:
    tf_answer = json.dumps({"predictions": [one_hot(4)]}).encode()
    ts_answer = json.dumps({"predictions": [one_hot(4)], "digits": [4]}).encode()
    assert check_json_predictions(tf_answer, 4) is None
    assert check_json_predictions(ts_answer, 4, digits_field=True) is None
    assert check_json_predictions(tf_answer, 4, digits_field=True) == "wrong digit in 'digits': None for a 4"
    assert check_json_predictions(b"<html>", 4) == "body is not JSON"
    assert (
        check_json_predictions(b'{"predictions": [[1], [2]]}', 4)
        == "shape: expected predictions [[10 values]]"
    )
    assert check_status(503, b'{"error": "busy"}') == 'HTTP 503: {"error": "busy"}'
    assert check_status(200, b"") is None


def test_gateway_answer_must_come_from_the_chosen_backend() -> None:
    assert check_gateway_headers({"X-Gateway-Backend": "torchserve-grpc"}, "torchserve-grpc") is None
    assert check_gateway_headers({"x-gateway-backend": "tfserving-rest"}, "torchserve-rest") == (
        "served by tfserving-rest, not torchserve-rest"
    )


def digit(label: int = 3) -> Digit:
    image = np.zeros((28, 28), dtype=np.float32)
    image[5:20, 10:14] = 0.5
    return Digit(42, label, image)


def test_tfserving_request_bytes_decode_as_a_float_tensor() -> None:
    messages = tfserving_messages()
    request = messages.PredictRequest()
    request.ParseFromString(tfserving_codec("mnist").request(digit()))
    assert request.model_spec.name == "mnist"
    assert request.model_spec.signature_name == "serving_default"
    tensor = request.inputs["image"]
    assert tensor.dtype == 1 and [d.size for d in tensor.tensor_shape.dim] == [1, 28, 28]
    assert np.array_equal(np.frombuffer(tensor.tensor_content, "<f4").reshape(28, 28), digit().image)


@pytest.mark.parametrize("packed", [True, False])
def test_tfserving_answers_are_checked_for_the_digit(packed: bool) -> None:
    messages = tfserving_messages()
    response = messages.PredictResponse()
    output = response.outputs["probabilities"]
    output.dtype = 1
    for size in (1, 10):
        output.tensor_shape.dim.add().size = size
    if packed:
        output.tensor_content = np.asarray(one_hot(3), dtype="<f4").tobytes()
    else:
        output.float_val.extend(one_hot(3))
    answer = response.SerializeToString()
    codec = tfserving_codec("mnist")
    assert codec.check(answer, 3) is None
    assert codec.check(answer, 8) == "wrong digit: 3 for a 8"
    assert codec.check(b"\xff\xff", 3) == "answer is not a PredictResponse"


def test_torchserve_grpc_carries_the_rest_body() -> None:
    from serving.torchserve.grpc_stubs import ensure_torchserve_stubs

    messages, _ = ensure_torchserve_stubs()
    request = messages.PredictionsRequest()
    request.ParseFromString(torchserve_codec("mnist").request(digit()))
    assert request.model_name == "mnist"
    assert request.input["data"] == digit().rest_body()
    answer = messages.PredictionResponse(
        prediction=json.dumps({"predictions": [one_hot(3)], "digits": [3]}).encode()
    ).SerializeToString()
    assert torchserve_codec("mnist").check(answer, 3) is None


def test_digits_are_those_every_model_gets_right_spread_over_classes() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    right = np.eye(10)[labels]
    wrong_on_2 = right.copy()
    wrong_on_2[2] = np.eye(10)[5]
    chosen = choose_digits(labels, [right, wrong_on_2], count=4)
    assert 2 not in chosen  # one model misclassifies image 2
    assert sorted(labels[chosen].tolist()) == [0, 0, 1, 2]
    with pytest.raises(PayloadError):
        choose_digits(labels, [np.zeros((7, 10)) + np.eye(10)[9]], count=3)


def test_payload_file_round_trip(tmp_path: Path) -> None:
    payloads = Payloads("mnist", 2, (digit(3), digit(5)), "test")
    write_payloads(payloads, tmp_path / "p.json")
    loaded = load_payloads(tmp_path / "p.json")
    assert [d.label for d in loaded.digits] == [3, 5]
    assert loaded.digits[0].rest_body() == digit(3).rest_body()
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(PayloadError):
        load_payloads(tmp_path / "bad.json")
