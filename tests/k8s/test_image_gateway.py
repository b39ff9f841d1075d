"""The gateway image's gateway, started the way the image starts it: ``python -m gateway`` with the image's
and the Deployment's settings (gRPC ingress on, two workers), the packages the image leaves out blocked
from import in every process, against fakes of TF Serving, TorchServe and Triton (REST and gRPC each).

It is driven through every protocol the image serves: TF Serving REST, Open Inference Protocol V2 REST and
gRPC (``tritonclient``), TF Serving gRPC (``tensorflow-serving-api``'s own stubs), and through each of the
six non-embedded backends (towards fakes; the gRPC ones built on the
official stubs: TF Serving's, TorchServe's compiled from the installed package, and tritonclient's)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import yaml

from serving.ports import free_port
from tests.integration.gateway.conftest import stop, wait_until_ok
from tests.k8s.conftest import K8S, REPO, FakeServer, Handler, Reply, Seen
from tests.k8s.test_images import BLOCKED_IMPORTS, fake_tfserving, fake_torchserve, write_key_file

pytestmark = pytest.mark.integration

_BLOCKER = """
import importlib.abc, os, sys

BLOCKED = set(os.environ["TEST_BLOCKED_IMPORTS"].split(","))


class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is not in the gateway image")
        return None


sys.meta_path.insert(0, Blocked())
with open(os.environ["TEST_BLOCKER_PIDS"], "a") as pids:
    pids.write(f"{os.getpid()}\\n")
"""
"""Installed as ``sitecustomize`` through PYTHONPATH: it runs first in the launcher and in every worker. A
module the gateway needs fails its start or the call that needs it (``grpc`` probes for ``grpc_tools``
and goes on without it, as it does in the image). Each process it ran in writes its pid: a blocker that
failed to load would be reported by Python and ignored, and the test would prove nothing. Workers that
granian forks inherit it; spawned ones would run it themselves."""

NINE = [0.0] * 9 + [1.0]


def image_environment() -> dict[str, str]:
    """The gateway stage's ``ENV`` lines of the Dockerfile and the Deployment's plain ``value`` settings."""
    text = (REPO / "Dockerfile").read_text()
    stage = text[text.index("FROM python AS gateway\n") :]
    block = stage[stage.index("\nENV ") + 5 :].split("\nUSER ")[0]
    env = dict(pair.split("=", 1) for pair in block.replace("\\\n", " ").split())
    deployment = yaml.safe_load((K8S / "base" / "gateway" / "deployment.yaml").read_text())
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "gateway"]
    env.update({item["name"]: str(item["value"]) for item in container["env"] if "value" in item})
    return env


@dataclass
class FakeTFServingGrpc:
    """TF Serving's gRPC API built on ``tensorflow-serving-api``'s stubs: every predict answers digit 9."""

    target: str = ""
    predicts: list[Any] = field(default_factory=list)
    server: grpc.Server | None = None

    def start(self) -> None:
        from tensorflow_serving.apis import (
            get_model_status_pb2,
            model_service_pb2_grpc,
            predict_pb2,
            prediction_service_pb2_grpc,
        )

        fake = self

        class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request: Any, context: Any) -> Any:
                fake.predicts.append(request)
                count = request.inputs["image"].tensor_shape.dim[0].size
                response = predict_pb2.PredictResponse()
                response.model_spec.name = request.model_spec.name
                response.model_spec.version.value = 1
                output = response.outputs["probabilities"]
                output.dtype = 1
                output.tensor_shape.dim.add().size = count
                output.tensor_shape.dim.add().size = 10
                output.tensor_content = np.asarray([NINE] * count, dtype="<f4").tobytes()
                return response

        class Models(model_service_pb2_grpc.ModelServiceServicer):
            def GetModelStatus(self, request: Any, context: Any) -> Any:
                available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
                return get_model_status_pb2.GetModelStatusResponse(
                    model_version_status=[get_model_status_pb2.ModelVersionStatus(version=1, state=available)]
                )

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Prediction(), self.server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(Models(), self.server)
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()


@dataclass
class FakeTorchServeGrpc:
    """TorchServe's gRPC inference API on the stubs compiled from the installed torchserve package."""

    target: str = ""
    predictions: list[Any] = field(default_factory=list)
    server: grpc.Server | None = None

    def start(self) -> None:
        from serving.torchserve.grpc_stubs import ensure_torchserve_stubs

        messages, services = ensure_torchserve_stubs()
        fake = self

        class Inference(services.InferenceAPIsServiceServicer):
            def Ping(self, request: Any, context: Any) -> Any:
                return messages.TorchServeHealthResponse(health='{"status": "Healthy"}')

            def Predictions(self, request: Any, context: Any) -> Any:
                fake.predictions.append(request)
                count = len(json.loads(request.input["data"])["instances"])
                answer = {"predictions": [NINE] * count, "digits": [9] * count}
                return messages.PredictionResponse(prediction=json.dumps(answer).encode())

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        services.add_InferenceAPIsServiceServicer_to_server(Inference(), self.server)
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()


def fake_v2_rest(seen: Seen) -> Reply:
    """Triton's Open Inference Protocol over REST: ready, metadata, and JSON answers to binary requests."""
    if not seen.path.startswith("/v2/models/mnist"):
        return 404, {"error": "unknown model"}
    if seen.method == "GET":
        return 200, {"name": "mnist", "versions": ["1"], "platform": "fake"}
    head = json.loads(seen.body[: int(seen.headers["Inference-Header-Content-Length"])])
    count = head["inputs"][0]["shape"][0]
    output = {"name": "probabilities", "datatype": "FP32", "shape": [count, 10], "data": NINE * count}
    return 200, {"model_name": "mnist", "model_version": "1", "outputs": [output]}


@dataclass
class FakeV2Grpc:
    """Triton's Open Inference Protocol over gRPC, on the stubs ``tritonclient`` ships."""

    target: str = ""
    infers: list[Any] = field(default_factory=list)
    server: grpc.Server | None = None

    def start(self) -> None:
        from tritonclient.grpc import service_pb2 as v2
        from tritonclient.grpc import service_pb2_grpc as v2_grpc

        fake = self

        class Inference(v2_grpc.GRPCInferenceServiceServicer):
            def ModelReady(self, request: Any, context: Any) -> Any:
                return v2.ModelReadyResponse(ready=True)

            def ModelMetadata(self, request: Any, context: Any) -> Any:
                return v2.ModelMetadataResponse(name=request.name, versions=["1"])

            def ModelInfer(self, request: Any, context: Any) -> Any:
                fake.infers.append(request)
                count = request.inputs[0].shape[0]
                output = v2.ModelInferResponse.InferOutputTensor(
                    name="probabilities", datatype="FP32", shape=[count, 10]
                )
                raw = np.asarray([NINE] * count, dtype="<f4").tobytes()
                return v2.ModelInferResponse(
                    model_name=request.model_name,
                    model_version="1",
                    outputs=[output],
                    raw_output_contents=[raw],
                )

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        v2_grpc.add_GRPCInferenceServiceServicer_to_server(Inference(), self.server)
        self.target = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()


@pytest.fixture
def fake_v2_grpc() -> Iterator[FakeV2Grpc]:
    fake = FakeV2Grpc()
    fake.start()
    yield fake
    assert fake.server is not None
    fake.server.stop(0).wait(5)


@pytest.fixture
def fake_torchserve_grpc() -> Iterator[FakeTorchServeGrpc]:
    fake = FakeTorchServeGrpc()
    fake.start()
    yield fake
    assert fake.server is not None
    fake.server.stop(0).wait(5)


@pytest.fixture
def fake_tfserving_grpc() -> Iterator[FakeTFServingGrpc]:
    fake = FakeTFServingGrpc()
    fake.start()
    yield fake
    assert fake.server is not None
    fake.server.stop(0).wait(5)


@dataclass
class ImageGateway:
    http: str
    grpc_target: str
    blocker_pids: Path
    launcher_pid: int


@pytest.fixture
def image_gateway(
    tmp_path: Path,
    fake_http: Callable[[Handler], FakeServer],
    fake_tfserving_grpc: FakeTFServingGrpc,
    fake_torchserve_grpc: FakeTorchServeGrpc,
    fake_v2_grpc: FakeV2Grpc,
) -> Iterator[ImageGateway]:
    tf, ts, triton = fake_http(fake_tfserving), fake_http(fake_torchserve), fake_http(fake_v2_rest)
    routing = yaml.safe_load((K8S / "base" / "gateway" / "routing.yaml").read_text())
    for backend in ("tfserving-grpc", "torchserve-grpc", "v2-rest", "v2-grpc"):  # by explicit choice
        routing["models"]["mnist"]["backends"][backend] = 0
    routing_file = tmp_path / "routing.yaml"
    routing_file.write_text(yaml.safe_dump(routing))
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_BLOCKER)
    http_port, grpc_port = free_port(), free_port()
    env = {
        **image_environment(),
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PYTHONPATH": str(site),
        "TEST_BLOCKED_IMPORTS": ",".join(BLOCKED_IMPORTS),
        "TEST_BLOCKER_PIDS": str(tmp_path / "blocker.pids"),
        # Loopback instead of every interface; fakes instead of the cluster's Services.
        "GATEWAY_BIND": f"127.0.0.1:{http_port}",
        "GATEWAY_GRPC_BIND": f"127.0.0.1:{grpc_port}",
        "GATEWAY_ROUTING_FILE": str(routing_file),
        "GATEWAY_TFSERVING_REST_URL": tf.url,
        "GATEWAY_TFSERVING_GRPC_TARGET": fake_tfserving_grpc.target,
        "GATEWAY_TORCHSERVE_REST_URL": ts.url,
        "GATEWAY_TORCHSERVE_GRPC_TARGET": fake_torchserve_grpc.target,
        "GATEWAY_V2_REST_URL": triton.url,
        "GATEWAY_V2_GRPC_TARGET": fake_v2_grpc.target,
        "GATEWAY_TORCHSERVE_KEY_FILE": str(write_key_file(tmp_path)),
        "GATEWAY_METRICS_DIR": str(tmp_path / "metrics"),
    }
    log = tmp_path / "gateway.log"
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway"],
            cwd=tmp_path,  # not the repository: the installed packages, as in the image
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        gateway = ImageGateway(
            f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", tmp_path / "blocker.pids", process.pid
        )
        try:
            wait_until_ok(gateway.http + "/readyz", 90, process)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}\n--- gateway log ---\n{log.read_text(errors='replace')[-4000:]}"
            ) from None
        yield gateway
        assert process.poll() is None, log.read_text(errors="replace")[-4000:]
    finally:
        stop(process)


def _post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def test_the_image_gateway_starts_and_serves_every_protocol(
    image_gateway: ImageGateway,
    fake_tfserving_grpc: FakeTFServingGrpc,
    fake_torchserve_grpc: FakeTorchServeGrpc,
    fake_v2_grpc: FakeV2Grpc,
) -> None:
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )
    from tritonclient import grpc as triton_grpc

    images = np.zeros((2, 28, 28), dtype=np.float32)
    # TF Serving REST, through each backend the image serves (the gRPC one included).
    backends = (
        "tfserving-rest",
        "torchserve-rest",
        "tfserving-grpc",
        "torchserve-grpc",
        "v2-rest",
        "v2-grpc",
    )
    for backend in backends:
        answer = _post(
            image_gateway.http + "/v1/models/mnist:predict",
            {"instances": images.tolist()},
            {"X-Gateway-Backend": backend},
        )
        assert np.argmax(answer["predictions"], axis=1).tolist() == [9, 9], backend
    assert fake_tfserving_grpc.predicts, "the tfserving-grpc backend called TF Serving over gRPC"
    assert fake_torchserve_grpc.predictions, "the torchserve-grpc backend called TorchServe over gRPC"
    assert fake_v2_grpc.infers, "the v2-grpc backend called Triton over gRPC"
    # Open Inference Protocol V2 over REST.
    v2 = _post(
        image_gateway.http + "/v2/models/mnist/infer",
        {
            "inputs": [
                {"name": "image", "datatype": "FP32", "shape": [2, 28, 28], "data": images.ravel().tolist()}
            ]
        },
    )
    assert np.argmax(np.reshape(v2["outputs"][0]["data"], (2, 10)), axis=1).tolist() == [9, 9]
    # ... and over gRPC, with Triton's client.
    client = triton_grpc.InferenceServerClient(image_gateway.grpc_target)
    tensor = triton_grpc.InferInput("image", [2, 28, 28], "FP32")
    tensor.set_data_from_numpy(images)
    result = client.infer("mnist", [tensor], client_timeout=10)
    assert result.as_numpy("probabilities").argmax(axis=1).tolist() == [9, 9]
    client.close()
    # TF Serving gRPC, with tensorflow-serving-api's stubs.
    with grpc.insecure_channel(image_gateway.grpc_target) as channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "mnist"
        request.inputs["image"].dtype = 1
        for size in images.shape:
            request.inputs["image"].tensor_shape.dim.add().size = size
        request.inputs["image"].tensor_content = images.tobytes()
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        output = stub.Predict(request, timeout=10).outputs["probabilities"]
        assert np.frombuffer(output.tensor_content, "<f4").reshape(2, 10).argmax(axis=1).tolist() == [9, 9]
        ask = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        ask.model_spec.name = "mnist"
        signatures = get_model_metadata_pb2.SignatureDefMap()
        assert stub.GetModelMetadata(ask, timeout=10).metadata["signature_def"].Unpack(signatures)
        assert list(signatures.signature_def["serving_default"].inputs) == ["image"]
        status = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
            get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "mnist"}), timeout=10
        )
        assert status.model_version_status[0].state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    # Granian forks its workers from the launcher: they inherit its blocker.
    assert str(image_gateway.launcher_pid) in image_gateway.blocker_pids.read_text().split()
