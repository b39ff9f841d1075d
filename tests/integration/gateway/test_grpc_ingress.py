"""The gateway's gRPC ingress with the official clients: ``tritonclient.grpc`` (Open Inference Protocol V2)
and ``tensorflow-serving-api``'s stubs (TF Serving), against ``python -m gateway`` with two workers
sharing the port, a real exported model and real MNIST test digits."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from exporters.mnist import MnistData
from model_store import ModelStore
from tests.integration.gateway.conftest import REPO, free_port, running_gateway

pytestmark = pytest.mark.integration
COUNT = 16
KEY = "grpc-test-key"


@dataclass
class Gateway:
    http: str
    grpc_target: str
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def gateway(exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("grpc")
    grpc_port = free_port()
    env = {
        "GATEWAY_GRPC_BIND": f"127.0.0.1:{grpc_port}",
        "GATEWAY_WORKERS": "2",
        "GATEWAY_MODEL_STORE": str(exported_store.root),
        "GATEWAY_API_KEYS": KEY,
    }
    routing = "models: {mnist: {backends: {embedded-pytorch: 1}}}\n"
    with running_gateway(folder, routing, env, ready_path="/livez") as running:
        yield Gateway(running.base, f"127.0.0.1:{grpc_port}", running.process, running.log)
    assert running.process.returncode == 0, running.log_tail()  # SIGTERM: both servers stop cleanly


@pytest.fixture(scope="module")
def digits(mnist: MnistData) -> tuple[np.ndarray, np.ndarray]:
    return mnist.test_images[:COUNT].astype(np.float32) / 255.0, mnist.test_labels[:COUNT]


@pytest.fixture(scope="module")
def rest_digits(gateway: Gateway, digits: tuple[np.ndarray, np.ndarray]) -> list[int]:
    """The same images through the gateway's REST API: every gRPC answer must match."""
    body = json.dumps({"instances": digits[0].tolist()}).encode()
    request = urllib.request.Request(
        gateway.http + "/v1/models/mnist:predict",
        body,
        {"Content-Type": "application/json", "X-API-Key": KEY},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return [int(np.argmax(row)) for row in json.loads(response.read())["predictions"]]


def triton(gateway: Gateway) -> triton_grpc.InferenceServerClient:
    return triton_grpc.InferenceServerClient(gateway.grpc_target)


def test_v2_infer_real_digits(
    gateway: Gateway, digits: tuple[np.ndarray, np.ndarray], rest_digits: list[int]
) -> None:
    client, (images, labels) = triton(gateway), digits
    headers = {"x-api-key": KEY}
    assert client.is_server_live(headers=headers) and client.is_model_ready("mnist", headers=headers)
    meta = client.get_model_metadata("mnist", headers=headers)
    assert meta.inputs[0].name == "image" and list(meta.inputs[0].shape) == [-1, 28, 28]
    tensor = triton_grpc.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(images)
    for _ in range(4):  # both workers answer on the one port
        result = client.infer("mnist", [tensor], request_id="g1", headers=headers, client_timeout=10)
        probabilities = result.as_numpy("probabilities")
        assert probabilities is not None and probabilities.argmax(axis=1).tolist() == rest_digits
    assert (np.array(rest_digits) == labels).mean() >= 0.8
    assert result.get_response().id == "g1"


def test_v2_errors_have_standard_codes(gateway: Gateway) -> None:
    client = triton(gateway)
    bad = triton_grpc.InferInput("image", [1, 27, 28], "FP32")
    bad.set_data_from_numpy(np.zeros((1, 27, 28), dtype=np.float32))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("mnist", [bad], headers={"x-api-key": KEY}, client_timeout=10)
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT" and "shape" in caught.value.message()
    good = triton_grpc.InferInput("image", [1, 784], "FP32")
    good.set_data_from_numpy(np.zeros((1, 784), dtype=np.float32))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("nope", [good], headers={"x-api-key": KEY}, client_timeout=10)
    assert caught.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as caught:
        client.infer("mnist", [good], client_timeout=10)  # no API key
    assert caught.value.status() == "StatusCode.UNAUTHENTICATED"


def test_tf_serving_stubs_work_unchanged(
    gateway: Gateway, digits: tuple[np.ndarray, np.ndarray], rest_digits: list[int]
) -> None:
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    metadata = [("x-api-key", KEY)]
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "mnist", "serving_default"
        tensor = request.inputs["image"]
        tensor.dtype = 1  # DT_FLOAT
        for size in digits[0].shape:
            tensor.tensor_shape.dim.add().size = size
        tensor.tensor_content = digits[0].astype("<f4").tobytes()
        response = stub.Predict(request, timeout=10, metadata=metadata)
        output = response.outputs["probabilities"]
        shape = [dim.size for dim in output.tensor_shape.dim]
        probabilities = np.frombuffer(output.tensor_content, dtype="<f4").reshape(shape)
        assert probabilities.argmax(axis=1).tolist() == rest_digits
        assert response.model_spec.name == "mnist" and response.model_spec.version.value == 1
        request.inputs["image"].ClearField("tensor_content")
        request.inputs["image"].float_val.extend(digits[0].ravel().tolist())  # the other encoding
        again = stub.Predict(request, timeout=10, metadata=metadata).outputs["probabilities"]
        assert np.frombuffer(again.tensor_content, dtype="<f4").reshape(shape).argmax(axis=1).tolist() == (
            rest_digits
        )
        ask = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        ask.model_spec.name = "mnist"
        assert stub.GetModelMetadata(ask, timeout=10, metadata=metadata).metadata["signature_def"].value
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "mnist"}),
            timeout=10,
            metadata=metadata,
        )
        assert status.model_version_status[0].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
        request.model_spec.name = "nope"
        with pytest.raises(grpc.RpcError) as caught:
            stub.Predict(request, timeout=10, metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_taken_grpc_port_is_refused_at_start(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "gateway"],
            cwd=REPO,
            env={"PATH": "/usr/bin:/bin", "GATEWAY_GRPC_BIND": f"127.0.0.1:{taken}"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2 and f"GATEWAY_GRPC_BIND 127.0.0.1:{taken} is not available" in done.stderr
