"""REST backends over an injected FunctionTransport, and the error translation at their boundary."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import numpy as np
import pytest

from gateway.backends.http import FunctionTransport, HttpRequest, HttpResponse
from gateway.backends.tfserving import TFServingRestBackend
from gateway.backends.torchserve import TorchServeRestBackend
from gateway.backends.torchserve_keys import TokenSource
from gateway.backends.translate import error_for_grpc, error_for_http
from gateway.errors import GatewayError

IMAGES = np.zeros((2, 28, 28), dtype=np.float32)
GOOD = json.dumps({"predictions": [[0.1] * 10, [0.1] * 10]}).encode()


def reply(status: int, body: object) -> FunctionTransport:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return FunctionTransport(lambda request: HttpResponse(status, raw))


def test_tfserving_rest_request_shape() -> None:
    transport = reply(200, GOOD)
    backend = TFServingRestBackend("tfserving-rest", "http://127.0.0.1:8501/", transport)
    prediction = backend.predict("mnist", IMAGES, 2, timeout=0.5)
    sent = transport.requests[0]
    assert sent.url == "http://127.0.0.1:8501/v1/models/mnist/versions/2:predict"
    assert np.asarray(json.loads(sent.body or b"")["instances"]).shape == (2, 28, 28)
    assert sent.timeout == 0.5 and prediction.version == "2" and prediction.probabilities.shape == (2, 10)


def test_tfserving_status_reads_state() -> None:
    body = {
        "model_version_status": [{"version": "1", "state": "AVAILABLE"}, {"version": "2", "state": "LOADING"}]
    }
    status = TFServingRestBackend("t", "http://h", reply(200, body)).status("mnist", 0.1)
    assert status.ready and status.versions == [1]
    loading = {"model_version_status": [{"version": "1", "state": "LOADING"}]}
    assert not TFServingRestBackend("t", "http://h", reply(200, loading)).status("mnist", 0.1).ready


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": "Expected shape [?,28,28]"}, 400),  # TF Serving's {"error"}
        (404, {"error": "Servable not found for request: Specific(mnist, 9)"}, 404),
        (503, {"error": "unavailable"}, 503),
        (504, {"error": "deadline"}, 504),
        (500, {"error": "boom"}, 502),
        (400, {"code": 400, "type": "InvalidInput", "message": "bad image"}, 400),  # TorchServe's shape
        (404, {"code": 404, "type": "ModelNotFoundException", "message": "Model not found"}, 404),
        (503, {"code": 503, "type": "ServiceUnavailableException", "message": "queue full"}, 503),
        (507, {"code": 507, "type": "InternalServerException", "message": "out of memory"}, 503),
        (408, {"code": 408, "type": "RequestTimeout", "message": "timeout"}, 504),
        (401, {"code": 401, "type": "Unauthorized", "message": "token"}, 502),
        (200, b"<html>not json</html>", 502),
        (200, {"predictions": [[0.1] * 9]}, 502),
        (200, {"outputs": []}, 502),
    ],
)
def test_http_errors_are_translated(status: int, body: object, expected: int) -> None:
    for backend in (
        TFServingRestBackend("tfs", "http://h", reply(status, body)),
        TorchServeRestBackend("ts", "http://h", reply(status, body), TokenSource(None)),
    ):
        with pytest.raises(GatewayError) as caught:
            backend.predict("mnist", IMAGES, None, 1.0)
        assert caught.value.status == expected
        assert "Traceback" not in caught.value.message


def test_backend_text_goes_to_the_detail_not_the_message() -> None:
    error = error_for_http(400, b'{"code": 400, "type": "InvalidInput", "message": "image is 27x28"}', "ts")
    assert error.message == "ts answered HTTP 400" and error.backend == "ts"
    assert "InvalidInput: image is 27x28" in error.detail  # for the log


def test_a_traceback_from_a_backend_stays_out_of_the_message() -> None:
    body = b'Traceback (most recent call last):\n  File "h.py"\nAWS_SECRET_ACCESS_KEY=abc\nRuntimeError: x'
    error = error_for_http(500, body, "ts")
    assert error.status == 502 and error.message == "ts answered HTTP 500"
    assert "AWS_SECRET" in error.detail


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "details"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.FAILED_PRECONDITION, 400),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNAUTHENTICATED, 502),
        (grpc.StatusCode.INTERNAL, 502),
        (grpc.StatusCode.UNKNOWN, 502),
    ],
)
def test_grpc_statuses_are_translated(code: grpc.StatusCode, expected: int) -> None:
    assert error_for_grpc(FakeRpcError(code), "b").status == expected


def _key_file(path: Path, inference: str) -> None:
    """A key file shaped like the one TorchServe 0.12 writes."""
    expires = "2999-01-01T00:00:00.123456789Z"
    path.write_text(
        json.dumps(
            {
                "management": {"key": "m", "expiration time": expires},
                "inference": {"key": inference, "expiration time": expires},
                "API": {"key": "a"},
            }
        )
    )


# TorchServe 0.12's answer to a missing or stale key (a 400, not a 401).
INVALID_KEY = b'{"code": 400, "type": "InvalidKeyException", "message": "Token Authorization failed."}'


def test_torchserve_sends_the_bearer_token_and_rereads_it_when_rejected(tmp_path: Path) -> None:
    key_file = tmp_path / "key_file.json"
    _key_file(key_file, "old")
    seen: list[str] = []

    def server(request: HttpRequest) -> HttpResponse:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != "Bearer new":
            _key_file(key_file, "new")  # TorchServe renewed its key
            return HttpResponse(400, INVALID_KEY)
        return HttpResponse(200, GOOD)

    backend = TorchServeRestBackend("ts", "http://h", FunctionTransport(server), TokenSource(key_file))
    assert backend.predict("mnist", IMAGES, None, 1.0).probabilities.shape == (2, 10)
    assert seen == ["Bearer old", "Bearer new"]


def test_a_key_torchserve_keeps_rejecting_is_a_502_not_a_client_error(tmp_path: Path) -> None:
    key_file = tmp_path / "key_file.json"
    _key_file(key_file, "stale")
    backend = TorchServeRestBackend(
        "ts",
        "http://h",
        FunctionTransport(lambda request: HttpResponse(400, INVALID_KEY)),
        TokenSource(key_file),
    )
    with pytest.raises(GatewayError) as caught:
        backend.predict("mnist", IMAGES, None, 1.0)
    assert caught.value.status == 502


def test_static_token_wins_and_missing_file_means_no_header(tmp_path: Path) -> None:
    assert TokenSource(tmp_path / "absent.json").header() == {}
    assert TokenSource(tmp_path / "absent.json", static_token="s3cret").header() == {
        "Authorization": "Bearer s3cret"
    }


def test_a_refused_connection_is_unavailable_not_a_timeout() -> None:
    """A closed port is a 503 (backend down), not a 504 (backend slow)."""
    from gateway.backends.http import CurlTransport
    from serving.ports import free_port

    transport = CurlTransport()
    with pytest.raises(GatewayError) as caught:
        transport.send(HttpRequest("GET", f"http://127.0.0.1:{free_port()}/", None, {}, 1.0))
    assert caught.value.status == 503


def test_tf_serving_rest_reports_the_version_its_status_says_is_served() -> None:
    calls: list[str] = []

    def server(request: HttpRequest) -> HttpResponse:
        calls.append(request.method)
        if request.method == "GET":
            states = [
                {"version": v, "state": "AVAILABLE", "status": {"error_code": "OK"}} for v in ("1", "3")
            ]
            return HttpResponse(200, json.dumps({"model_version_status": states}).encode())
        return HttpResponse(200, GOOD)

    backend = TFServingRestBackend("tf", "http://h", FunctionTransport(server))
    assert backend.predict("mnist", IMAGES, None, 1.0).version == "3"
    assert backend.predict("mnist", IMAGES, None, 1.0).version == "3"
    assert calls == ["POST", "GET", "POST"]  # the status is cached between predictions
    assert backend.predict("mnist", IMAGES, 1, 1.0).version == "1"  # an explicit version is what answered
