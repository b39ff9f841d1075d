"""The Open Inference Protocol (V2) contract: one suite, run against the gateway and against Triton.

Each server runs once for the module and is always stopped: the gateway (``python -m gateway``, V2
REST and gRPC ingress) on its embedded TorchScript backend, and Triton (through its launcher) on the
same export. The cases speak through the official clients (``tritonclient`` HTTP and gRPC) and plain
JSON bodies, send real MNIST test digits, and compare every answer with that TorchScript run here.
Where the two servers legitimately differ, the case says so with :func:`per_server` and checks each
side's own answer; nothing is skipped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pytest
import requests
import torch
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from exporters.export import TORCHSCRIPT_PATH
from exporters.mnist import MnistData
from model_store import CONTRACT, MODEL_NAME, ModelStore
from tests.integration.gateway.conftest import free_port, running_gateway
from tests.integration.serving.triton_server import running_triton
from tests.support import serving_settings

pytestmark = pytest.mark.integration

COUNT = 32
TIMEOUT = 10.0
INPUT, OUTPUT = CONTRACT.input.name, CONTRACT.output.name
# The gateway serves what its routing file lists: version 1 (as `stable`), so it knows version 7 is not.
ROUTING = "models: {mnist: {backends: {embedded-pytorch: 1}, labels: {stable: 1}}}\n"
T = TypeVar("T")


@dataclass(frozen=True)
class V2Server:
    kind: str
    """``gateway`` or ``triton``."""
    http: str
    grpc: str
    """``host:port`` of each protocol."""

    def url(self, path: str) -> str:
        return f"http://{self.http}{path}"

    def http_client(self) -> triton_http.InferenceServerClient:
        return triton_http.InferenceServerClient(
            self.http, connection_timeout=TIMEOUT, network_timeout=TIMEOUT
        )

    def grpc_client(self) -> triton_grpc.InferenceServerClient:
        return triton_grpc.InferenceServerClient(self.grpc)


def per_server(server: V2Server, *, gateway: T, triton: T) -> T:
    """Where the two servers legitimately differ: what this one answers (each case says why)."""
    return gateway if server.kind == "gateway" else triton


def _wait_for_grpc(server: V2Server, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if server.grpc_client().is_server_live(client_timeout=1.0):
                return
        except InferenceServerException:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


@pytest.fixture(scope="module", params=["gateway", "triton"])
def server(
    request: pytest.FixtureRequest, exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[V2Server]:
    folder = tmp_path_factory.mktemp(f"v2-{request.param}")
    if request.param == "gateway":
        grpc_port = free_port()
        env = {"GATEWAY_MODEL_STORE": str(exported_store.root), "GATEWAY_GRPC_BIND": f"127.0.0.1:{grpc_port}"}
        with running_gateway(folder, ROUTING, env) as running:
            gateway = V2Server("gateway", f"127.0.0.1:{running.port}", f"127.0.0.1:{grpc_port}")
            _wait_for_grpc(gateway)
            yield gateway
        return
    with running_triton(serving_settings(exported_store.root, folder)) as ready:
        yield V2Server("triton", f"127.0.0.1:{ready.triton_http_port}", f"127.0.0.1:{ready.triton_grpc_port}")


@pytest.fixture(scope="module")
def digits(mnist: MnistData) -> tuple[np.ndarray, np.ndarray]:
    return mnist.test_images[:COUNT].astype(np.float32) / 255.0, mnist.test_labels[:COUNT]


@pytest.fixture(scope="module")
def reference(exported_store: ModelStore, digits: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The exported TorchScript run in this process: both servers must answer exactly this."""
    path = exported_store.version_dir(1) / TORCHSCRIPT_PATH
    model = torch.jit.load(str(path), map_location="cpu").eval()
    with torch.inference_mode():
        result: np.ndarray = model(torch.from_numpy(digits[0])).numpy()
    return result


def _tensor(images: np.ndarray, **changes: Any) -> dict[str, Any]:
    tensor = {"name": INPUT, "shape": list(images.shape), "datatype": "FP32", "data": images.ravel().tolist()}
    return {**tensor, **changes}


def _error(reply: requests.Response) -> str:
    """The spec's error body, ``{"error": "<message>"}``, with a message."""
    message = reply.json()["error"]
    assert isinstance(message, str) and message.strip(), reply.text
    return message


def _check_answer(probabilities: np.ndarray | None, reference: np.ndarray, labels: np.ndarray) -> None:
    assert probabilities is not None and probabilities.shape == reference.shape
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, reference, atol=1e-6)
    assert (probabilities.argmax(axis=1) == labels).mean() >= 0.8  # a model trained for one short epoch


# -- health and metadata ----------------------------------------------------------------------


def test_health(server: V2Server) -> None:
    for client in (server.http_client(), server.grpc_client()):
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(MODEL_NAME) and client.is_model_ready(MODEL_NAME, "1")


def test_server_metadata(server: V2Server) -> None:
    http = server.http_client().get_server_metadata()
    grpc = server.grpc_client().get_server_metadata(as_json=True)
    # Each names itself.
    assert (
        http["name"] == grpc["name"] == per_server(server, gateway="mnist-serving-gateway", triton="triton")
    )
    assert http["version"] and http["version"] == grpc["version"]
    assert "binary_tensor_data" in http["extensions"]  # the HTTP extension tritonclient uses by default


@pytest.mark.parametrize("version", ["", "1"], ids=["latest", "version-1"])
def test_model_metadata_is_the_contract(server: V2Server, version: str) -> None:
    # The platform differs: Triton runs it on its Python backend, the gateway names itself.
    platform = per_server(server, gateway="mnist-serving-gateway", triton="python")
    assert server.http_client().get_model_metadata(MODEL_NAME, version) == {
        "name": MODEL_NAME,
        "versions": ["1"],
        "platform": platform,
        "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, 28, 28]}],
        "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, 10]}],
    }
    grpc = server.grpc_client().get_model_metadata(MODEL_NAME, version, as_json=True)
    assert (grpc["name"], grpc["versions"], grpc["platform"]) == (MODEL_NAME, ["1"], platform)
    assert grpc["inputs"] == [{"name": INPUT, "datatype": "FP32", "shape": ["-1", "28", "28"]}]
    assert grpc["outputs"] == [{"name": OUTPUT, "datatype": "FP32", "shape": ["-1", "10"]}]


# -- inference ------------------------------------------------------------------------------------


def test_infer_json(server: V2Server, digits: tuple[np.ndarray, np.ndarray], reference: np.ndarray) -> None:
    """The plain JSON body of the REST protocol, with the version in the path and an id to echo."""
    images, labels = digits
    reply = requests.post(
        server.url(f"/v2/models/{MODEL_NAME}/versions/1/infer"),
        json={"id": "json-1", "inputs": [_tensor(images)], "outputs": [{"name": OUTPUT}]},
        timeout=TIMEOUT,
    )
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert (answer["id"], answer["model_name"], answer["model_version"]) == ("json-1", MODEL_NAME, "1")
    (output,) = answer["outputs"]
    assert (output["name"], output["datatype"], output["shape"]) == (OUTPUT, "FP32", [COUNT, 10])
    _check_answer(np.asarray(output["data"], dtype=np.float32).reshape(COUNT, 10), reference, labels)


@pytest.mark.parametrize("name_output", [True, False], ids=["output-named", "output-default"])
def test_infer_binary(
    server: V2Server, digits: tuple[np.ndarray, np.ndarray], reference: np.ndarray, name_output: bool
) -> None:
    """The binary tensor data extension both ways, as ``tritonclient`` sends it: with the output named,
    or with none named (then it asks for every output in binary)."""
    images, labels = digits
    tensor = triton_http.InferInput(INPUT, list(images.shape), "FP32")
    tensor.set_data_from_numpy(images, binary_data=True)
    outputs = [triton_http.InferRequestedOutput(OUTPUT, binary_data=True)] if name_output else None
    result = server.http_client().infer(MODEL_NAME, [tensor], outputs=outputs, request_id="binary-1")
    assert result.get_response()["id"] == "binary-1"
    _check_answer(result.as_numpy(OUTPUT), reference, labels)


def test_infer_grpc(server: V2Server, digits: tuple[np.ndarray, np.ndarray], reference: np.ndarray) -> None:
    """``ModelInfer`` with ``raw_input_contents``, as ``tritonclient.grpc`` sends it."""
    images, labels = digits
    tensor = triton_grpc.InferInput(INPUT, list(images.shape), "FP32")
    tensor.set_data_from_numpy(images)
    result = server.grpc_client().infer(
        MODEL_NAME, [tensor], model_version="1", request_id="grpc-1", client_timeout=TIMEOUT
    )
    response = result.get_response(as_json=True)
    assert (response["id"], response["model_version"]) == ("grpc-1", "1")
    _check_answer(result.as_numpy(OUTPUT), reference, labels)


def test_flat_784_images(
    server: V2Server, digits: tuple[np.ndarray, np.ndarray], reference: np.ndarray
) -> None:
    """``[N, 784]`` differs: the gateway's contract takes it beside ``[N, 28, 28]``; Triton's model
    configuration declares ``[-1, 28, 28]`` only, so Triton refuses it as a wrong shape."""
    images, labels = digits
    flat = images.reshape(COUNT, 784)
    reply = requests.post(
        server.url(f"/v2/models/{MODEL_NAME}/infer"), json={"inputs": [_tensor(flat)]}, timeout=TIMEOUT
    )
    assert reply.status_code == per_server(server, gateway=200, triton=400), reply.text
    if server.kind == "gateway":
        data = reply.json()["outputs"][0]["data"]
        _check_answer(np.asarray(data, dtype=np.float32).reshape(COUNT, 10), reference, labels)
    else:
        assert "shape" in _error(reply)


# -- bad input and unknown names -----------------------------------------------------------------

ONE = np.zeros((1, 28, 28), dtype=np.float32)
BAD_INPUTS = [
    pytest.param(_tensor(ONE, datatype="FP64"), r"data-?type", id="datatype-fp64"),
    pytest.param(_tensor(ONE, datatype="INT32", data=[0] * 784), r"data-?type", id="datatype-int32"),
    pytest.param(_tensor(ONE[:, :27], shape=[1, 27, 28]), r"shape", id="shape"),
    pytest.param(_tensor(ONE, name="pixels"), r"'pixels'", id="unknown-input"),
    pytest.param(None, r"inputs", id="missing-input"),
]


@pytest.mark.parametrize(("tensor", "pattern"), BAD_INPUTS)
def test_bad_input_is_400_with_a_message(
    server: V2Server, tensor: dict[str, Any] | None, pattern: str
) -> None:
    reply = requests.post(
        server.url(f"/v2/models/{MODEL_NAME}/infer"),
        json={"inputs": [tensor] if tensor else []},
        timeout=TIMEOUT,
    )
    assert reply.status_code == 400, reply.text
    assert re.search(pattern, _error(reply)), reply.text
    # The gateway also names the request in a header (for its logs); Triton sends none.
    assert ("X-Request-ID" in reply.headers) == per_server(server, gateway=True, triton=False)

    inputs = []
    if tensor is not None:
        dtype = {"FP32": np.float32, "FP64": np.float64, "INT32": np.int32}[tensor["datatype"]]
        item = triton_grpc.InferInput(tensor["name"], tensor["shape"], tensor["datatype"])
        item.set_data_from_numpy(np.zeros(tensor["shape"], dtype=dtype))
        inputs.append(item)
    with pytest.raises(InferenceServerException) as caught:
        server.grpc_client().infer(MODEL_NAME, inputs, client_timeout=TIMEOUT)
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert re.search(pattern, str(caught.value.message())), caught.value.message()


UNKNOWN = [pytest.param("nope", "", id="unknown-model"), pytest.param(MODEL_NAME, "7", id="unknown-version")]


@pytest.mark.parametrize(("model", "version"), UNKNOWN)
def test_unknown_model_or_version_is_404_with_a_message(server: V2Server, model: str, version: str) -> None:
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
    body = {"inputs": [_tensor(ONE)]}
    for reply in (
        requests.get(server.url(path), timeout=TIMEOUT),
        requests.post(server.url(path + "/infer"), json=body, timeout=TIMEOUT),
    ):
        assert reply.status_code == 404, reply.text
        assert (version or model) in _error(reply)

    client = server.grpc_client()
    tensor = triton_grpc.InferInput(INPUT, [1, 28, 28], "FP32")
    tensor.set_data_from_numpy(ONE)
    for call in (
        lambda: client.get_model_metadata(model, version),
        lambda: client.infer(model, [tensor], model_version=version, client_timeout=TIMEOUT),
    ):
        with pytest.raises(InferenceServerException) as caught:
            call()
        assert caught.value.status() == "StatusCode.NOT_FOUND"
        assert (version or model) in str(caught.value.message())


@pytest.mark.parametrize(("model", "version"), UNKNOWN)
def test_unknown_model_or_version_is_not_ready(server: V2Server, model: str, version: str) -> None:
    """Not ready on both; how it is said differs. REST: Triton answers 400 ``Model version not ready``,
    the gateway 404 as for the metadata. gRPC ``ModelReady``: Triton answers ``ready: false``, the
    gateway ``NOT_FOUND`` (the spec allows either: the model is not there to be ready)."""
    assert not server.http_client().is_model_ready(model, version)
    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + "/ready"
    reply = requests.get(server.url(path), timeout=TIMEOUT)
    assert reply.status_code == per_server(server, gateway=404, triton=400), reply.text
    _error(reply)
    client = server.grpc_client()
    if server.kind == "triton":
        assert client.is_model_ready(model, version) is False
    else:
        with pytest.raises(InferenceServerException) as caught:
            client.is_model_ready(model, version)
        assert caught.value.status() == "StatusCode.NOT_FOUND"
