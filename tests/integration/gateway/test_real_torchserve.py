"""The gateway in front of the real TorchServe 0.12 (token auth on), REST and gRPC."""

from __future__ import annotations

import numpy as np
import pytest
from flask.testing import FlaskClient

from exporters.mnist import MnistData
from gateway.app import create_app
from gateway.settings import Settings
from model_store import ModelStore
from serving.settings import ServingSettings
from serving.torchserve import launcher as torchserve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(torchserve_settings: ServingSettings, tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    routing = tmp_path_factory.mktemp("routing") / "routing.yaml"
    routing.write_text("models: {mnist: {backends: {torchserve-rest: 1, torchserve-grpc: 1}}}")
    endpoints = torchserve.endpoints(torchserve_settings)
    settings = Settings(
        routing_file=routing,
        torchserve_rest_url=endpoints.inference,
        torchserve_grpc_target=endpoints.grpc_inference,
        torchserve_key_file=torchserve_settings.key_file,
        torchserve_management_url=endpoints.management,
        deadline_s=10,
        attempt_timeout_s=10,
    )
    return create_app(settings).test_client()


def _expected_digits(store: ModelStore, count: int) -> list[int]:
    reference = np.load(store.version_dir(1) / "reference" / "pytorch_probabilities.npy")
    return [int(digit) for digit in reference[:count].argmax(axis=1)]


@pytest.mark.parametrize("backend", ["torchserve-rest", "torchserve-grpc"])
def test_real_digits_through_the_gateway(
    client: FlaskClient, exported_store: ModelStore, mnist: MnistData, backend: str
) -> None:
    body = {"instances": (mnist.test_images[:6] / 255.0).tolist()}
    response = client.post("/v1/models/mnist:predict", json=body, headers={"X-Gateway-Backend": backend})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["X-Gateway-Backend"] == backend
    assert response.headers["X-Model-Version"] == "1"
    predictions = np.asarray(response.get_json()["predictions"])
    assert predictions.argmax(axis=1).tolist() == _expected_digits(exported_store, 6)


def test_gateway_follows_a_renewed_torchserve_key(
    client: FlaskClient, torchserve_settings: ServingSettings, mnist: MnistData
) -> None:
    tokens = torchserve.token_source(torchserve_settings)
    assert tokens is not None
    tokens.renew_inference_key()  # TorchServe rewrites key_file.json; the old key stops working
    body = {"instances": (mnist.test_images[:1] / 255.0).tolist()}
    for backend in ("torchserve-rest", "torchserve-grpc"):
        response = client.post("/v1/models/mnist:predict", json=body, headers={"X-Gateway-Backend": backend})
        assert response.status_code == 200, response.get_data(as_text=True)


def test_readiness_sees_torchserve(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_data(as_text=True)
