"""The Open Inference Protocol V2 contract, checked with the official client (``tritonclient``) against
the real gateway (``python -m gateway``) serving a real exported model, with real MNIST test digits."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from exporters.mnist import MnistData
from model_store import ModelStore
from tests.integration.gateway.conftest import running_gateway

pytestmark = pytest.mark.integration
COUNT = 32


@pytest.fixture(scope="module")
def gateway(exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("v2")
    routing = "models: {mnist: {backends: {embedded-pytorch: 1}}}\n"
    with running_gateway(folder, routing, {"GATEWAY_MODEL_STORE": str(exported_store.root)}) as running:
        yield f"127.0.0.1:{running.port}"


@pytest.fixture(scope="module")
def client(gateway: str) -> triton_http.InferenceServerClient:
    return triton_http.InferenceServerClient(gateway, connection_timeout=5.0, network_timeout=10.0)


@pytest.fixture(scope="module")
def digits(mnist: MnistData) -> tuple[np.ndarray, np.ndarray]:
    return mnist.test_images[:COUNT].astype(np.float32) / 255.0, mnist.test_labels[:COUNT]


def v1_digits(gateway: str, images: np.ndarray) -> list[int]:
    """The same images through the gateway's TF Serving REST API: the V2 answers must match."""
    body = json.dumps({"instances": images.tolist()}).encode()
    request = urllib.request.Request(
        f"http://{gateway}/v1/models/mnist:predict", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return [int(np.argmax(row)) for row in json.loads(response.read())["predictions"]]


def test_health_and_metadata(client: triton_http.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mnist")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("mnist")
    assert meta["inputs"][0] == {"name": "image", "datatype": "FP32", "shape": [-1, 28, 28]}
    assert meta["outputs"][0] == {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}
    assert not client.is_model_ready("nope")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_real_digits(
    client: triton_http.InferenceServerClient,
    gateway: str,
    digits: tuple[np.ndarray, np.ndarray],
    binary: bool,
) -> None:
    images, labels = digits
    tensor = triton_http.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images, binary_data=binary)
    wanted = triton_http.InferRequestedOutput("probabilities", binary_data=binary)
    result = client.infer("mnist", [tensor], outputs=[wanted], request_id="v2-test")
    probabilities = result.as_numpy("probabilities")
    assert probabilities is not None and probabilities.shape == (COUNT, 10)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    predicted = probabilities.argmax(axis=1)
    assert predicted.tolist() == v1_digits(gateway, images)  # same backend, same answers
    assert (predicted == labels).mean() >= 0.8  # a model trained for one short epoch
    assert result.get_response()["id"] == "v2-test"


def test_flat_784_inputs_and_default_binary_output(
    client: triton_http.InferenceServerClient, digits: tuple[np.ndarray, np.ndarray]
) -> None:
    images, _ = digits
    flat = images.reshape(COUNT, 784)
    tensor = triton_http.InferInput("image", [COUNT, 784], "FP32")
    tensor.set_data_from_numpy(flat)
    result = client.infer("mnist", [tensor])  # no outputs named: tritonclient asks for binary
    probabilities = result.as_numpy("probabilities")
    assert probabilities is not None and probabilities.shape == (COUNT, 10)


@pytest.mark.parametrize(
    ("datatype", "shape", "fragment"),
    [
        ("FP64", [1, 28, 28], "datatype"),
        ("FP32", [1, 27, 28], "shape"),
        ("INT32", [1, 784], "datatype"),
    ],
)
def test_bad_input_is_400_with_a_message(
    client: triton_http.InferenceServerClient, datatype: str, shape: list[int], fragment: str
) -> None:
    dtype = {"FP64": np.float64, "FP32": np.float32, "INT32": np.int32}[datatype]
    tensor = triton_http.InferInput("image", shape, datatype)
    tensor.set_data_from_numpy(np.zeros(shape, dtype=dtype))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("mnist", [tensor])
    assert caught.value.status() == "400" and fragment in str(caught.value.message())


def test_unknown_model_is_404(client: triton_http.InferenceServerClient) -> None:
    tensor = triton_http.InferInput("image", [1, 784], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 784), dtype=np.float32))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("nope", [tensor])
    assert caught.value.status() == "404"
