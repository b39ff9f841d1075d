"""The ``v2-rest`` backend's wire handling with an injected transport (no sockets)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gateway.backends.http import FunctionTransport, HttpRequest, HttpResponse
from gateway.backends.v2 import HEADER_LENGTH, V2RestBackend
from gateway.errors import BadBackendResponse, InvalidInput

IMAGES = np.zeros((2, 28, 28), dtype=np.float32)
PROBABILITIES = np.full((2, 10), 0.1, dtype=np.float32)


def binary_answer(values: np.ndarray, version: str = "3") -> bytes:
    raw = values.astype("<f4").tobytes()
    output = {"name": "probabilities", "datatype": "FP32", "shape": list(values.shape)}
    head = {
        "model_name": "mnist",
        "model_version": version,
        "outputs": [{**output, "parameters": {"binary_data_size": len(raw)}}],
    }
    return json.dumps(head).encode() + raw


def backend(answer: HttpResponse) -> tuple[V2RestBackend, FunctionTransport]:
    transport = FunctionTransport(lambda request: answer)
    return V2RestBackend("v2", "http://v2", transport, "pytorch"), transport


def test_sends_binary_tensors_and_reads_a_binary_answer() -> None:
    server, transport = backend(HttpResponse(200, binary_answer(PROBABILITIES)))
    prediction = server.predict("mnist", IMAGES, 3, 1.0)
    assert np.array_equal(prediction.probabilities, PROBABILITIES) and prediction.version == "3"
    sent: HttpRequest = transport.requests[0]
    assert sent.url == "http://v2/v2/models/mnist/versions/3/infer"
    length = int(sent.headers[HEADER_LENGTH])
    assert sent.body is not None and len(sent.body) == length + IMAGES.size * 4
    assert json.loads(sent.body[:length])["inputs"][0]["parameters"]["binary_data_size"] == IMAGES.size * 4


def test_reads_a_json_answer_too() -> None:
    answer = {
        "outputs": [
            {
                "name": "probabilities",
                "datatype": "FP32",
                "shape": [2, 10],
                "data": PROBABILITIES.ravel().tolist(),
            }
        ]
    }
    server, _ = backend(HttpResponse(200, json.dumps(answer).encode()))
    assert np.allclose(server.predict("mnist", IMAGES, None, 1.0).probabilities, PROBABILITIES)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (HttpResponse(400, b'{"error": "bad shape"}'), InvalidInput),
        (HttpResponse(200, binary_answer(PROBABILITIES[:1])), BadBackendResponse),
        (HttpResponse(200, b'{"outputs": []}'), BadBackendResponse),
        (HttpResponse(500, b"Traceback..."), BadBackendResponse),
    ],
)
def test_bad_answers_are_translated(answer: HttpResponse, error: type[Exception]) -> None:
    server, _ = backend(answer)
    with pytest.raises(error):
        server.predict("mnist", IMAGES, None, 1.0)
