"""The ``v2-rest`` and ``v2-grpc`` backends against a real Open Inference Protocol server: a second
gateway serving the embedded TorchScript model over V2 REST and gRPC (Triton's own test is in
tests/integration/serving). Gateway A routes to gateway B; A's answers must equal B's."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest

from exporters.mnist import MnistData
from model_store import ModelStore
from tests.integration.gateway.conftest import free_port, running_gateway

pytestmark = pytest.mark.integration


def predict(base: str, images: np.ndarray, backend: str | None = None) -> tuple[list[int], str]:
    headers = {"Content-Type": "application/json", **({"X-Gateway-Backend": backend} if backend else {})}
    body = json.dumps({"instances": images.tolist()}).encode()
    request = urllib.request.Request(base + "/v1/models/mnist:predict", body, headers)
    with urllib.request.urlopen(request, timeout=15) as response:
        digits = [int(np.argmax(row)) for row in json.loads(response.read())["predictions"]]
        return digits, response.headers["X-Gateway-Backend"]


@pytest.fixture(scope="module")
def gateways(
    exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("v2-backends")
    (folder / "server").mkdir()
    (folder / "client").mkdir()
    grpc_port = free_port()
    server_env = {
        "GATEWAY_GRPC_BIND": f"127.0.0.1:{grpc_port}",
        "GATEWAY_MODEL_STORE": str(exported_store.root),
    }
    with running_gateway(
        folder / "server", "models: {mnist: {backends: {embedded-pytorch: 1}}}\n", server_env
    ) as server:
        client_env = {
            "GATEWAY_V2_REST_URL": server.base,
            "GATEWAY_V2_GRPC_TARGET": f"127.0.0.1:{grpc_port}",
        }
        routing = "models: {mnist: {backends: {v2-rest: 1, v2-grpc: 1}, failover: false}}\n"
        with running_gateway(folder / "client", routing, client_env) as client:
            yield server.base, client.base


@pytest.mark.parametrize("backend", ["v2-rest", "v2-grpc"])
def test_v2_backends_answer_like_the_server_itself(
    gateways: tuple[str, str], mnist: MnistData, backend: str
) -> None:
    server, client = gateways
    images = mnist.test_images[:16].astype(np.float32) / 255.0
    expected, _ = predict(server, images)
    digits, answered = predict(client, images, backend)
    assert answered == backend and digits == expected


def test_v2_backends_report_readiness(gateways: tuple[str, str]) -> None:
    _, client = gateways
    with urllib.request.urlopen(client + "/v1/models/mnist", timeout=15) as response:
        backends = {b["name"]: b for b in json.loads(response.read())["backends"]}
    assert backends["v2-rest"]["ready"] and backends["v2-grpc"]["ready"]
