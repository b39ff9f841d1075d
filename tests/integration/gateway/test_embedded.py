"""The app with the embedded backends (no servers) answering real MNIST test digits correctly."""

from __future__ import annotations

import io

import numpy as np
import pytest
from flask.testing import FlaskClient
from PIL import Image

from exporters.mnist import MnistData
from gateway.app import create_app
from gateway.settings import Settings
from model_store import ModelStore

pytestmark = pytest.mark.integration
COUNT = 64


@pytest.fixture(scope="module")
def client(exported_store: ModelStore) -> FlaskClient:
    return create_app(Settings(model_store=exported_store.root)).test_client()


@pytest.mark.parametrize("backend", ["embedded-tensorflow", "embedded-pytorch"])
def test_tf_serving_docs_body_gets_right_digits(client: FlaskClient, mnist: MnistData, backend: str) -> None:
    images = mnist.test_images[:COUNT] / 255.0
    # The row format as TF Serving's REST docs show it, signature name included.
    body = {"signature_name": "serving_default", "instances": images.tolist()}
    response = client.post(f"/v1/models/mnist:predict?backend={backend}", json=body)
    assert response.status_code == 200, response.get_json()
    assert response.headers["X-Gateway-Backend"] == backend and response.headers["X-Model-Version"] == "1"
    predictions = np.asarray(response.get_json()["predictions"])
    assert predictions.shape == (COUNT, 10)
    assert (predictions.argmax(axis=1) == mnist.test_labels[:COUNT]).mean() >= 0.75


def test_png_upload_of_a_test_digit(client: FlaskClient, mnist: MnistData) -> None:
    buffer = io.BytesIO()
    Image.fromarray(mnist.test_images[0]).save(buffer, format="PNG")
    response = client.post("/predict", data=buffer.getvalue(), content_type="image/png")
    assert response.status_code == 200
    assert response.get_json()["predictions"][0]["digit"] == int(mnist.test_labels[0])
    assert response.headers["X-Gateway-Backend"].startswith("embedded-")


def test_unknown_version_is_404(client: FlaskClient) -> None:
    response = client.post("/v1/models/mnist/versions/99:predict", json={"instances": [[0.0] * 784]})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_ready_with_the_store(client: FlaskClient) -> None:
    body = client.get("/readyz").get_json()
    assert body["ready"] and all(b["versions"] == [1] for b in body["models"]["mnist"]["backends"])
