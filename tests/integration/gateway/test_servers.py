"""REST and gRPC backends against servers speaking the real protocols.

TF Serving: the project's stand-in (``serving.tfserving.devserver``, same wire protocol) on free ports.
TorchServe gRPC: an in-process server built from the same generated stubs, checking the bearer metadata.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from flask.testing import FlaskClient

from exporters.mnist import MnistData
from gateway.app import create_app
from gateway.backends.torchserve import TorchServeGrpcBackend
from gateway.backends.torchserve_keys import TokenSource
from gateway.errors import InvalidInput
from gateway.settings import Settings
from model_store import ModelStore
from serving.tfserving import devserver  # a plain import: an ImportError fails, never skips
from serving.torchserve.grpc_stubs import ensure_torchserve_stubs
from tests.integration.gateway.conftest import free_port, start, stop, wait_until_ok

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tf_serving(
    exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, int]]:
    rest, grpc_port = free_port(), free_port()
    args = ["-m", devserver.__name__, "--model-name", "mnist"]
    args += ["--model-base-path", str(exported_store.model_dir), "--host", "127.0.0.1"]
    args += ["--rest-port", str(rest), "--grpc-port", str(grpc_port)]
    process = start(args, {}, tmp_path_factory.mktemp("tfs") / "devserver.log")
    try:
        wait_until_ok(f"http://127.0.0.1:{rest}/v1/models/mnist", 120, process)
        yield rest, grpc_port
    finally:
        stop(process)


@pytest.fixture(scope="module")
def client(tf_serving: tuple[int, int], tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    rest, grpc_port = tf_serving
    routing = tmp_path_factory.mktemp("routing") / "routing.yaml"
    routing.write_text("models: {mnist: {backends: {tfserving-rest: 1, tfserving-grpc: 1}}}")
    settings = Settings(
        routing_file=routing,
        tfserving_rest_url=f"http://127.0.0.1:{rest}",
        tfserving_grpc_target=f"127.0.0.1:{grpc_port}",
        deadline_s=10,
        attempt_timeout_s=10,
    )
    return create_app(settings).test_client()


@pytest.mark.parametrize("backend", ["tfserving-rest", "tfserving-grpc"])
def test_tf_serving_backends_answer_real_digits(client: FlaskClient, mnist: MnistData, backend: str) -> None:
    images = mnist.test_images[:32] / 255.0
    response = client.post(f"/v1/models/mnist:predict?backend={backend}", json={"instances": images.tolist()})
    assert response.status_code == 200, response.get_json()
    assert response.headers["X-Gateway-Backend"] == backend
    predictions = np.asarray(response.get_json()["predictions"])
    assert (predictions.argmax(axis=1) == mnist.test_labels[:32]).mean() >= 0.75
    status = client.get("/v1/models/mnist").get_json()
    assert all(b["ready"] and b["versions"] == [1] for b in status["backends"])


@pytest.mark.parametrize("backend", ["tfserving-rest", "tfserving-grpc"])
def test_tf_serving_errors_map_to_ours(client: FlaskClient, backend: str) -> None:
    response = client.post(
        f"/v1/models/mnist/versions/42:predict?backend={backend}", json={"instances": [[0.0] * 784]}
    )
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


class _Servicer:
    """TorchServe's InferenceAPIsService.Predictions: checks the token, answers digit 4."""

    Ping = StreamPredictions = StreamPredictions2 = None  # registered by the generated helper, never called

    def Predictions(self, request: Any, context: grpc.ServicerContext) -> Any:
        messages, _ = ensure_torchserve_stubs()
        if dict(context.invocation_metadata()).get("authorization") != "Bearer k3y":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        payload = json.loads(request.input["data"])
        if len(payload["instances"]) > 2:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "InvalidInput: too many")
        row = [0.0] * 4 + [1.0] + [0.0] * 5
        return messages.PredictionResponse(
            prediction=json.dumps({"predictions": [row] * len(payload["instances"])}).encode()
        )


def test_torchserve_grpc_backend(tmp_path: Path) -> None:
    _, services = ensure_torchserve_stubs()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = _Servicer()
    services.add_InferenceAPIsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    key_file = tmp_path / "key_file.json"
    key_file.write_text(  # shaped like TorchServe's own key file
        json.dumps({"management": {"key": "m"}, "inference": {"key": "k3y"}, "API": {"key": "a"}})
    )
    backend = TorchServeGrpcBackend("torchserve-grpc", f"127.0.0.1:{port}", TokenSource(key_file))
    try:
        prediction = backend.predict("mnist", np.zeros((2, 28, 28), np.float32), 1, timeout=5)
        assert prediction.probabilities.argmax(axis=1).tolist() == [4, 4]
        with pytest.raises(InvalidInput):
            backend.predict("mnist", np.zeros((3, 28, 28), np.float32), None, timeout=5)
    finally:
        backend.close()
        server.stop(0)
