"""The floor app's two ways of answering by itself: a fixed prediction, or a TorchScript's own."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gatewaybench.floorproxy import FIXED_ANSWER, create_app


def _post(app: Any, document: object) -> tuple[str, Any]:
    body = json.dumps(document).encode()
    environ = {"CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body)}
    statuses: list[str] = []
    answer = b"".join(app(environ, lambda status, headers: statuses.append(status)))
    return statuses[0], json.loads(answer)


def test_without_a_model_it_answers_a_fixed_prediction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOOR_BACKEND_URL", raising=False)
    monkeypatch.delenv("FLOOR_MODEL", raising=False)
    assert _post(create_app(), {"instances": [[[0.0] * 28] * 28]}) == ("200 OK", FIXED_ANSWER)


def test_with_a_torchscript_it_answers_what_the_model_computes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10), torch.nn.Softmax(dim=1))
    script = tmp_path / "model.pt"
    with warnings.catch_warnings():  # TorchScript is what the store holds, deprecated or not
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit\.\w+.* is deprecated", category=DeprecationWarning
        )
        torch.jit.script(model).save(str(script))
    monkeypatch.delenv("FLOOR_BACKEND_URL", raising=False)
    monkeypatch.setenv("FLOOR_MODEL", str(script))
    image = np.random.default_rng(1).random((28, 28)).astype(np.float32)
    status, answer = _post(create_app(), {"instances": [image.tolist()]})
    with torch.inference_mode():
        expected = model(torch.from_numpy(image[None])).numpy()
    assert status == "200 OK"
    np.testing.assert_allclose(np.asarray(answer["predictions"]), expected, rtol=1e-5)


def test_over_grpc_it_sends_the_image_as_a_tensor_and_answers_the_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against a fake TF Serving gRPC Predict (a grpcio server on loopback, in this test only): the
    request carries the image as a [1, 28, 28] float32 tensor, and the answer's tensor comes back."""
    from concurrent import futures

    import grpc

    from gateway.tfserving_proto import messages as tfserving_messages
    from loadtests.grpc_wire import TFSERVING_PREDICT

    messages = tfserving_messages()
    seen: list[Any] = []
    output = np.arange(10, dtype="<f4") / 10

    def predict(request: bytes, context: Any) -> bytes:
        seen.append(messages.PredictRequest.FromString(request))
        response = messages.PredictResponse()
        tensor = response.outputs["probabilities"]
        tensor.dtype = 1
        tensor.tensor_shape.dim.add().size = 1
        tensor.tensor_shape.dim.add().size = 10
        tensor.tensor_content = output.tobytes()
        return bytes(response.SerializeToString())

    service, method = TFSERVING_PREDICT.rsplit("/", 1)
    handler = grpc.method_handlers_generic_handler(
        service.lstrip("/"), {method: grpc.unary_unary_rpc_method_handler(predict)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        monkeypatch.delenv("FLOOR_BACKEND_URL", raising=False)
        monkeypatch.delenv("FLOOR_MODEL", raising=False)
        monkeypatch.setenv("FLOOR_BACKEND_GRPC", f"127.0.0.1:{port}")
        image = np.random.default_rng(2).random((28, 28)).astype(np.float32)
        status, answer = _post(create_app(), {"instances": [image.tolist()]})
    finally:
        server.stop(grace=None)
    assert status == "200 OK"
    np.testing.assert_allclose(np.asarray(answer["predictions"]), output[None], rtol=1e-6)
    tensor = seen[0].inputs["image"]
    assert [dim.size for dim in tensor.tensor_shape.dim] == [1, 28, 28]
    np.testing.assert_array_equal(np.frombuffer(tensor.tensor_content, dtype="<f4"), image.ravel())


def test_over_rest_it_forwards_the_body_with_the_backends_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a fake REST backend (http.server on loopback, in this test only): the JSON body and the
    Authorization header arrive, and the backend's answer comes back."""
    import http.server

    from tests.support import answer_json, served_in_thread

    seen: list[tuple[str, str | None, Any]] = []

    class Backend(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, self.headers.get("Authorization"), json.loads(body)))
            answer_json(self, json.dumps({"predictions": [[0.5] * 10]}).encode())

        def log_message(self, *args: object) -> None:
            pass

    with served_in_thread(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)) as server:
        monkeypatch.delenv("FLOOR_BACKEND_GRPC", raising=False)
        monkeypatch.delenv("FLOOR_MODEL", raising=False)
        monkeypatch.setenv("FLOOR_BACKEND_URL", f"http://127.0.0.1:{server.server_port}/predictions/mnist")
        monkeypatch.setenv("FLOOR_BACKEND_AUTHORIZATION", "Bearer abc123")
        document = {"instances": [[0.25] * 784]}
        assert _post(create_app(), document) == ("200 OK", {"predictions": [[0.5] * 10]})
    assert seen == [("/predictions/mnist", "Bearer abc123", document)]


def test_with_a_replayed_answer_it_calls_no_backend_and_answers_that_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The instant backend of ``gatewaybench.stages``: the backend URL names a port where nothing
    listens, so a call would fail; the replayed answer comes back instead, decoded and encoded."""
    from serving.ports import free_port

    monkeypatch.delenv("FLOOR_BACKEND_GRPC", raising=False)
    monkeypatch.delenv("FLOOR_MODEL", raising=False)
    monkeypatch.setenv("FLOOR_BACKEND_URL", f"http://127.0.0.1:{free_port()}/v1/models/mnist:predict")
    replayed = {"predictions": [[0.25] * 10]}
    app = create_app(replay=json.dumps(replayed, indent=2).encode())
    assert _post(app, {"instances": [[[0.0] * 28] * 28]}) == ("200 OK", replayed)
