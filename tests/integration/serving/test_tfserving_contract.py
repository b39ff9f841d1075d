"""TF Serving's wire contract, checked against a real server process on ephemeral loopback ports.

The same tests run against the project's stand-in (always) and the official
``tensorflow_model_server`` (only where it is installed). One server per target is started for
the whole module and always stopped. The server starts with versions 1 and 2 (copies of one
export), policy ``latest {num_versions: 2}`` and labels stable=1, canary=2; the last test copies
in version 3, so it must stay last.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pytest
import requests
import tensorflow as tf
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from exporters.mnist import MnistData
from model_store import CONTRACT, MODEL_NAME, ModelStore
from serving.ports import free_port
from serving.tfserving import (
    SERVED_BY_HEADER,
    STANDIN_NAME,
    TfServingOptions,
    VersionPolicy,
    build_command,
    find_official_binary,
    standin_command,
)

pytestmark = pytest.mark.integration

OFFICIAL_MISSING = "official tensorflow_model_server binary not installed (not on PyPI or Debian)"
HTTP_TIMEOUT_S = 10.0
GRPC_TIMEOUT_S = 10.0
READY_DEADLINE_S = 120.0
STOP_DEADLINE_S = 10.0
POLL_SECONDS = 1.0
NEW_VERSION_DEADLINE_S = 20.0
SAMPLE = 32

INPUT = CONTRACT.input.name
OUTPUT = CONTRACT.output.name
SIGNATURE = CONTRACT.signature_name
Floats = npt.NDArray[np.float32]


@dataclass
class RunningServer:
    target: str
    process: subprocess.Popen[bytes]
    rest: str
    grpc_address: str
    base_path: Path
    log_path: Path
    channel: grpc.Channel

    @property
    def is_standin(self) -> bool:
        return self.target == "standin"

    def url(self, path: str) -> str:
        return f"{self.rest}/v1/models/{path}"

    def predict_stub(self) -> prediction_service_pb2_grpc.PredictionServiceStub:
        return prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def _copy_version(source: Path, base: Path, version: int) -> None:
    """Copy a version directory in under a hidden name, then rename: servers never see half a copy."""
    staging = base / f".staging-{version}"
    shutil.copytree(source, staging)
    staging.rename(base / str(version))


def _versions_state(server: RunningServer) -> dict[str, str]:
    reply = requests.get(server.url(MODEL_NAME), timeout=HTTP_TIMEOUT_S)
    if reply.status_code != 200:
        return {}
    return {row["version"]: row["state"] for row in reply.json()["model_version_status"]}


def _wait_until(condition: Callable[[], bool], deadline_s: float, what: str, server: RunningServer) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"{server.target} exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            if condition():
                return
        except requests.RequestException:
            pass  # not listening yet
        time.sleep(0.25)
    pytest.fail(f"{server.target}: {what} not seen within {deadline_s:.0f} s:\n{server.log_tail()}")


def _stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL to the whole process group if it has not ended within the deadline."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return process.wait(STOP_DEADLINE_S)


TARGETS = [
    pytest.param("standin"),
    pytest.param(
        "official", marks=pytest.mark.skipif(find_official_binary() is None, reason=OFFICIAL_MISSING)
    ),
]


@pytest.fixture(scope="module", params=TARGETS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, exported_store: ModelStore
) -> Iterator[RunningServer]:
    target: str = request.param
    workdir = tmp_path_factory.mktemp(f"tfserving-{target}")
    base = workdir / MODEL_NAME
    base.mkdir()
    for version in (1, 2):
        _copy_version(exported_store.version_dir(1), base, version)
    options = TfServingOptions(
        base_path=base,
        config_dir=workdir / "config",
        rest_port=free_port(),
        grpc_port=free_port(),
        version_labels={"stable": 1, "canary": 2},
        version_policy=VersionPolicy("latest", num_versions=2),
        poll_seconds=POLL_SECONDS,
        intra_op_threads=1,
        inter_op_threads=1,
        rest_threads=4,
    )
    command = build_command(options) if target == "official" else None
    argv = command.argv if command is not None else standin_command(options)
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    channel = grpc.insecure_channel(f"127.0.0.1:{options.grpc_port}")
    running = RunningServer(
        target,
        process,
        f"http://127.0.0.1:{options.rest_port}",
        f"127.0.0.1:{options.grpc_port}",
        base,
        log_path,
        channel,
    )
    try:
        _wait_until(
            lambda: _versions_state(running) == {"1": "AVAILABLE", "2": "AVAILABLE"},
            READY_DEADLINE_S,
            "versions 1 and 2 AVAILABLE",
            running,
        )
        yield running
    finally:
        channel.close()
        returncode = _stop(process)
    if target == "standin":
        assert returncode == 0, f"the stand-in did not exit cleanly on SIGTERM:\n{running.log_tail()}"


@pytest.fixture(scope="module")
def digits(mnist: MnistData) -> tuple[Floats, npt.NDArray[np.uint8]]:
    """The first test digits as model input (pixels / 255), with their labels."""
    return (mnist.test_images[:SAMPLE] / 255.0).astype(np.float32), mnist.test_labels[:SAMPLE]


@pytest.fixture(scope="module")
def reference(exported_store: ModelStore, digits: tuple[Floats, Any]) -> Floats:
    """What the exported SavedModel itself answers, in this process."""
    loaded = tf.saved_model.load(str(exported_store.version_dir(1)))
    outputs = loaded.signatures[SIGNATURE](**{INPUT: tf.constant(digits[0])})
    return np.asarray(outputs[OUTPUT].numpy())


def _post(url: str, body: Any) -> requests.Response:
    return requests.post(url, json=body, timeout=HTTP_TIMEOUT_S)


def _grpc_request(images: Floats, **spec: Any) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec.pop("name", MODEL_NAME)
    request.model_spec.signature_name = SIGNATURE
    if "version" in spec:
        request.model_spec.version.value = spec.pop("version")
    if "label" in spec:
        request.model_spec.version_label = spec.pop("label")
    request.inputs[INPUT].CopyFrom(tf.make_tensor_proto(images))
    return request


def _grpc_error(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def _assert_same_digits(probabilities: Any, reference: Floats) -> None:
    answer = np.asarray(probabilities, dtype=np.float32)
    assert answer.shape == reference.shape
    np.testing.assert_array_equal(answer.argmax(axis=1), reference.argmax(axis=1))
    np.testing.assert_allclose(answer, reference, atol=1e-4)


# --- status and metadata ------------------------------------------------------------------------


def test_status_shows_every_version_available(server: RunningServer) -> None:
    reply = requests.get(server.url(MODEL_NAME), timeout=HTTP_TIMEOUT_S)
    assert reply.status_code == 200
    assert reply.json() == {
        "model_version_status": [
            {"version": v, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            for v in ("1", "2")
        ]
    }
    one = requests.get(server.url(f"{MODEL_NAME}/versions/1"), timeout=HTTP_TIMEOUT_S).json()
    assert [row["version"] for row in one["model_version_status"]] == ["1"]
    stub = model_service_pb2_grpc.ModelServiceStub(server.channel)
    status = stub.GetModelStatus(
        get_model_status_pb2.GetModelStatusRequest(model_spec={"name": MODEL_NAME}), timeout=GRPC_TIMEOUT_S
    )
    assert [(row.version, row.state) for row in status.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE),
        (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE),
    ]


def test_metadata_describes_the_contract_signature(server: RunningServer) -> None:
    reply = requests.get(server.url(f"{MODEL_NAME}/metadata"), timeout=HTTP_TIMEOUT_S)
    assert reply.status_code == 200
    body = reply.json()
    assert body["model_spec"]["name"] == MODEL_NAME and body["model_spec"]["version"] == "2"
    signature = body["metadata"]["signature_def"]["signature_def"][SIGNATURE]
    assert signature["method_name"] == "tensorflow/serving/predict"
    assert list(signature["inputs"]) == [INPUT] and list(signature["outputs"]) == [OUTPUT]
    image = signature["inputs"][INPUT]
    assert image["dtype"] == "DT_FLOAT"
    assert [int(d["size"]) for d in image["tensor_shape"]["dim"]] == [-1, 28, 28]
    assert [int(d["size"]) for d in signature["outputs"][OUTPUT]["tensor_shape"]["dim"]] == [-1, 10]

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL_NAME
    response = server.predict_stub().GetModelMetadata(request, timeout=GRPC_TIMEOUT_S)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def[SIGNATURE].inputs) == {INPUT}
    assert set(signatures.signature_def[SIGNATURE].outputs) == {OUTPUT}
    assert response.model_spec.version.value == 2


# --- predictions match the exported model -------------------------------------------------------


def test_rest_row_format_matches_the_saved_model(
    server: RunningServer, digits: tuple[Floats, Any], reference: Floats
) -> None:
    images, labels = digits
    # The request body exactly as TF Serving's REST docs show it.
    reply = _post(
        server.url(f"{MODEL_NAME}:predict"), {"signature_name": SIGNATURE, "instances": images.tolist()}
    )
    assert reply.status_code == 200, reply.text
    assert set(reply.json()) == {"predictions"}
    _assert_same_digits(reply.json()["predictions"], reference)
    assert np.mean(np.asarray(reply.json()["predictions"]).argmax(axis=1) == labels) > 0.7


def test_rest_named_instances_and_columnar_format(
    server: RunningServer, digits: tuple[Floats, Any], reference: Floats
) -> None:
    images = digits[0][:4]
    named = _post(
        server.url(f"{MODEL_NAME}:predict"), {"instances": [{INPUT: image} for image in images.tolist()]}
    )
    assert named.status_code == 200, named.text
    _assert_same_digits(named.json()["predictions"], reference[:4])
    for inputs in (images.tolist(), {INPUT: images.tolist()}):
        columnar = _post(server.url(f"{MODEL_NAME}:predict"), {"inputs": inputs})
        assert columnar.status_code == 200, columnar.text
        assert set(columnar.json()) == {"outputs"}
        _assert_same_digits(columnar.json()["outputs"], reference[:4])


def test_grpc_predict_matches_the_saved_model(
    server: RunningServer, digits: tuple[Floats, Any], reference: Floats
) -> None:
    response = server.predict_stub().Predict(_grpc_request(digits[0]), timeout=GRPC_TIMEOUT_S)
    assert response.model_spec.name == MODEL_NAME
    assert response.model_spec.version.value == 2
    assert response.model_spec.signature_name == SIGNATURE
    _assert_same_digits(tf.make_ndarray(response.outputs[OUTPUT]), reference)


def test_concurrent_requests_are_all_answered(server: RunningServer, digits: tuple[Floats, Any]) -> None:
    body = {"instances": digits[0][:1].tolist()}
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda _: _post(server.url(f"{MODEL_NAME}:predict"), body), range(16)))
    assert [reply.status_code for reply in replies] == [200] * 16


# --- versions and labels --------------------------------------------------------------------------


def test_version_addressing(server: RunningServer, digits: tuple[Floats, Any]) -> None:
    one = digits[0][:1]
    for version in (1, 2):
        reply = _post(server.url(f"{MODEL_NAME}/versions/{version}:predict"), {"instances": one.tolist()})
        assert reply.status_code == 200, reply.text
        response = server.predict_stub().Predict(_grpc_request(one, version=version), timeout=GRPC_TIMEOUT_S)
        assert response.model_spec.version.value == version
    missing = _post(server.url(f"{MODEL_NAME}/versions/9:predict"), {"instances": one.tolist()})
    assert missing.status_code == 404 and "error" in missing.json()
    status = requests.get(server.url(f"{MODEL_NAME}/versions/9"), timeout=HTTP_TIMEOUT_S)
    assert status.status_code == 404 and "error" in status.json()
    error = _grpc_error(
        lambda: server.predict_stub().Predict(_grpc_request(one, version=9), timeout=GRPC_TIMEOUT_S)
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_label_addressing(server: RunningServer, digits: tuple[Floats, Any]) -> None:
    one = digits[0][:1]
    for label, version in (("stable", 1), ("canary", 2)):
        reply = _post(server.url(f"{MODEL_NAME}/labels/{label}:predict"), {"instances": one.tolist()})
        assert reply.status_code == 200, reply.text
        metadata = requests.get(server.url(f"{MODEL_NAME}/labels/{label}/metadata"), timeout=HTTP_TIMEOUT_S)
        assert metadata.json()["model_spec"]["version"] == str(version)
        response = server.predict_stub().Predict(_grpc_request(one, label=label), timeout=GRPC_TIMEOUT_S)
        assert response.model_spec.version.value == version
    # TF Serving answers an unknown label with INVALID_ARGUMENT ("Unrecognized servable version label").
    unknown = _post(server.url(f"{MODEL_NAME}/labels/nope:predict"), {"instances": one.tolist()})
    assert unknown.status_code == 400 and "label" in unknown.json()["error"]
    error = _grpc_error(
        lambda: server.predict_stub().Predict(_grpc_request(one, label="nope"), timeout=GRPC_TIMEOUT_S)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- errors ----------------------------------------------------------------------------------------


def test_unknown_model_is_not_found(server: RunningServer, digits: tuple[Floats, Any]) -> None:
    one = digits[0][:1]
    reply = _post(server.url("no-such-model:predict"), {"instances": one.tolist()})
    assert reply.status_code == 404
    assert reply.json()["error"] == "Servable not found for request: Latest(no-such-model)"
    assert requests.get(server.url("no-such-model"), timeout=HTTP_TIMEOUT_S).status_code == 404
    error = _grpc_error(
        lambda: server.predict_stub().Predict(
            _grpc_request(one, name="no-such-model"), timeout=GRPC_TIMEOUT_S
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    stub = model_service_pb2_grpc.ModelServiceStub(server.channel)
    request = get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "no-such-model"})
    error = _grpc_error(lambda: stub.GetModelStatus(request, timeout=GRPC_TIMEOUT_S))
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_wrong_shape_is_invalid_argument(server: RunningServer) -> None:
    narrow = np.zeros((1, 28, 27), dtype=np.float32)
    reply = _post(server.url(f"{MODEL_NAME}:predict"), {"instances": narrow.tolist()})
    assert reply.status_code == 400 and reply.json()["error"]
    error = _grpc_error(lambda: server.predict_stub().Predict(_grpc_request(narrow), timeout=GRPC_TIMEOUT_S))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_malformed_bodies_are_rejected(server: RunningServer, digits: tuple[Floats, Any]) -> None:
    instances = digits[0][:1].tolist()
    both = _post(server.url(f"{MODEL_NAME}:predict"), {"instances": instances, "inputs": instances})
    assert both.status_code == 400 and "error" in both.json()
    text = requests.post(server.url(f"{MODEL_NAME}:predict"), data=b"{not json", timeout=HTTP_TIMEOUT_S)
    assert text.status_code == 400 and "error" in text.json()
    strings = _post(server.url(f"{MODEL_NAME}:predict"), {"instances": [[["x"] * 28] * 28]})
    assert strings.status_code == 400


def test_nan_tokens_are_accepted_as_tf_serving_accepts_them(server: RunningServer) -> None:
    row = "[" + ",".join(["NaN"] * 14 + ["Infinity"] * 14) + "]"
    body = '{"instances": [[' + ",".join([row] * 28) + "]]}"
    reply = requests.post(server.url(f"{MODEL_NAME}:predict"), data=body, timeout=HTTP_TIMEOUT_S)
    # api_rest.md, "JSON mapping" and "JSON conformance": NaN, Infinity and -Infinity are valid
    # DT_FLOAT values in a request; the request is accepted (200), whatever the model makes of them.
    assert reply.status_code == 200, reply.text
    assert set(json.loads(reply.text)) == {"predictions"}  # json.loads accepts NaN tokens in the answer
    assert _versions_state(server)["2"] == "AVAILABLE"


def test_hostile_bodies_get_an_answer_not_a_crash(server: RunningServer) -> None:
    if not server.is_standin:
        pytest.skip("TF Serving itself crashes on deeply nested JSON (CVE-2025-0649); the gateway guards it")
    deep = b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    reply = requests.post(server.url(f"{MODEL_NAME}:predict"), data=deep, timeout=HTTP_TIMEOUT_S)
    assert reply.status_code == 400 and "error" in reply.json()
    huge = b" " * (17 * 1024 * 1024)
    reply = requests.post(server.url(f"{MODEL_NAME}:predict"), data=huge, timeout=HTTP_TIMEOUT_S)
    assert reply.status_code == 413
    assert _versions_state(server)["2"] == "AVAILABLE"


# --- golden pairs: TF Serving's documented behaviour, not the stand-in's own ----------------------
#
# Each pair is (request, expected answer) taken from TF Serving itself, so the contract is not written
# by the stand-in's authors. Sources:
#   [doc]  https://www.tensorflow.org/tfx/serving/api_rest (tensorflow_serving/g3doc/api_rest.md):
#          error body {"error": <message>}; the status response shape; the 404 example
#          "Servable not found for request: Latest(<model>)"; NaN/Infinity accepted for DT_FLOAT.
#   [test] tensorflow_serving/model_servers/http_rest_api_handler_test.cc (PredictRequestErrors,
#          UnsupportedApiCalls): the error codes and message fragments for bad bodies and paths.
#   [json] tensorflow_serving/util/json_tensor.cc (FillPredictRequestFromJson): "Missing 'inputs' or
#          'instances' key", "expecting only one of 'inputs' or 'instances' keys to exist".
#   [http] tensorflow_serving/model_servers/http_server.cc (ToHTTPStatusCode): INVALID_ARGUMENT -> 400,
#          NOT_FOUND -> 404.
#   [core] tensorflow_serving/model_servers/server_core.cc: "Unrecognized servable version label: <l>".

IMAGE_ROW = json.dumps([[0.0] * 28] * 28)
GOLDEN_REST = [
    # (id, method, path under /v1/models/, body, status, error fragment; None: success)
    (
        "unknown-model",
        "POST",
        "no-such-model:predict",
        f'{{"instances": [{IMAGE_ROW}]}}',
        404,
        "Servable not found for request: Latest(no-such-model)",
    ),  # [doc] exact message
    (
        "empty-body",
        "POST",
        f"{MODEL_NAME}:predict",
        "",
        400,
        "JSON Parse error: The document is empty",
    ),  # [test]
    (
        "not-json",
        "POST",
        f"{MODEL_NAME}:predict",
        "instances = [1, 2]",
        400,
        "JSON Parse error: Invalid value",
    ),
    (
        "strings",
        "POST",
        f"{MODEL_NAME}:predict",
        '{"instances": ["x", "y"]}',
        400,
        "not of expected type: float",
    ),
    (
        "unknown-label",
        "POST",
        f"{MODEL_NAME}/labels/nope:predict",
        f'{{"instances": [{IMAGE_ROW}]}}',
        400,
        "Unrecognized servable version label: nope",
    ),  # [test] [core]
    (
        "signature-not-string",
        "POST",
        f"{MODEL_NAME}:predict",
        '{"signature_name": 100}',
        400,
        "'signature_name' key must be a string value.",
    ),  # [test]
    (
        "both-keys",
        "POST",
        f"{MODEL_NAME}:predict",
        f'{{"instances": [{IMAGE_ROW}], "inputs": [{IMAGE_ROW}]}}',
        400,
        "expecting only one of 'inputs' or 'instances' keys to exist",
    ),  # [json]
    ("no-keys", "POST", f"{MODEL_NAME}:predict", "{}", 400, "Missing 'inputs' or 'instances' key"),  # [json]
    ("no-model-name", "GET", "", None, 400, "Missing model name"),  # [test] GET /v1/models
    ("post-metadata", "POST", f"{MODEL_NAME}/metadata", "", 400, "Malformed request"),  # [test]
    ("get-predict", "GET", f"{MODEL_NAME}:predict", None, 400, "Malformed request"),  # [test]
    (
        "nan-tokens",
        "POST",
        f"{MODEL_NAME}:predict",
        '{"instances": ['
        + json.dumps([[0.0] * 28] * 27 + [[0.0] * 26 + [0.0, 0.0]]).replace("0.0]]", "NaN]]", 1)
        + "]}",
        200,
        None,
    ),  # [doc] JSON conformance
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [pytest.param(*case[1:], id=case[0]) for case in GOLDEN_REST],
)
def test_golden_rest_pairs_from_tf_serving_docs_and_source(
    server: RunningServer, method: str, path: str, body: str | None, status: int, fragment: str | None
) -> None:
    url = f"{server.rest}/v1/models" + (f"/{path}" if path else "")
    data = body.encode() if body is not None else None
    reply = requests.request(method, url, data=data, timeout=HTTP_TIMEOUT_S)
    assert reply.status_code == status, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    answer = json.loads(reply.text)
    if fragment is None:
        assert set(answer) == {"predictions"} and len(answer["predictions"]) == 1
    else:
        assert set(answer) == {"error"} and fragment in answer["error"], answer  # [doc] error body


def test_golden_status_shape_from_tf_serving_docs(server: RunningServer) -> None:
    """[doc] "Make REST API calls": GET /v1/models/<m> lists versions with state and an OK status."""
    reply = requests.get(server.url(f"{MODEL_NAME}/versions/2"), timeout=HTTP_TIMEOUT_S)
    assert reply.status_code == 200
    assert reply.json() == {
        "model_version_status": [
            {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }


GOLDEN_GRPC = [
    # (id, model_spec fields, status code, details fragment) -- [core] and TF Serving's gRPC status codes
    (
        "unknown-model",
        {"name": "no-such-model"},
        grpc.StatusCode.NOT_FOUND,
        "Servable not found for request: Latest(no-such-model)",
    ),
    ("unknown-version", {"version": 9}, grpc.StatusCode.NOT_FOUND, "Servable not found for request"),
    (
        "unknown-label",
        {"label": "nope"},
        grpc.StatusCode.INVALID_ARGUMENT,
        "Unrecognized servable version label: nope",
    ),
]


@pytest.mark.parametrize(("spec", "code", "fragment"), [pytest.param(*c[1:], id=c[0]) for c in GOLDEN_GRPC])
def test_golden_grpc_pairs_from_tf_serving_source(
    server: RunningServer, spec: dict[str, Any], code: grpc.StatusCode, fragment: str
) -> None:
    request = _grpc_request(np.zeros((1, 28, 28), dtype=np.float32), **dict(spec))
    error = _grpc_error(lambda: server.predict_stub().Predict(request, timeout=GRPC_TIMEOUT_S))
    assert error.code() == code
    assert fragment in (error.details() or "")


# --- identity and metrics ------------------------------------------------------------------------


def test_standin_names_itself_on_every_answer(server: RunningServer) -> None:
    answers = [
        requests.get(server.url(MODEL_NAME), timeout=HTTP_TIMEOUT_S),
        requests.get(server.url("no-such-model"), timeout=HTTP_TIMEOUT_S),
        requests.post(server.url(f"{MODEL_NAME}:predict"), data=b"", timeout=HTTP_TIMEOUT_S),
        requests.get(f"{server.rest}/monitoring/prometheus/metrics", timeout=HTTP_TIMEOUT_S),
    ]
    for answer in answers:
        if server.is_standin:
            assert answer.headers[SERVED_BY_HEADER] == STANDIN_NAME
        else:
            assert SERVED_BY_HEADER not in answer.headers
    if server.is_standin:
        assert STANDIN_NAME in server.log_path.read_text(errors="replace")


REST_PREDICT_OK = (("api", "predict"), ("outcome", "200"), ("protocol", "rest"))


def test_prometheus_metrics_are_exposed(server: RunningServer) -> None:
    reply = requests.get(f"{server.rest}/monitoring/prometheus/metrics", timeout=HTTP_TIMEOUT_S)
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/plain")
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }
    if server.is_standin:
        assert ("tfserving_standin_requests_total", REST_PREDICT_OK) in samples
        grpc_predict = (("api", "predict"), ("le", "+Inf"), ("protocol", "grpc"))
        assert ("tfserving_standin_request_duration_seconds_bucket", grpc_predict) in samples
    # TF Serving's own names, from the official server and the stand-in alike
    counted = [  # read as lines: prometheus_client's parser renames a counter's samples to `..._total`
        float(line.rsplit(" ", 1)[1])
        for line in reply.text.splitlines()
        if line.startswith(":tensorflow:serving:request_count{")
        and f'model_name="{MODEL_NAME}"' in line
        and 'status="OK"' in line
    ]
    assert counted and counted[0] > 0, reply.text
    for entrypoint in ("GRPC", "REST"):
        labels = (("API", "Predict"), ("entrypoint", entrypoint), ("le", "+Inf"), ("model_name", MODEL_NAME))
        assert samples[(":tensorflow:serving:request_latency_bucket", labels)] > 0


# --- keep last: changes the versions being served ------------------------------------------------


def test_zz_new_version_directory_is_picked_up(server: RunningServer, digits: tuple[Floats, Any]) -> None:
    _copy_version(server.base_path / "1", server.base_path, 3)
    one = digits[0][:1]

    def serving_three() -> bool:
        response = server.predict_stub().Predict(_grpc_request(one), timeout=GRPC_TIMEOUT_S)
        return response.model_spec.version.value == 3 and _versions_state(server).get("3") == "AVAILABLE"

    _wait_until(serving_three, NEW_VERSION_DEADLINE_S, "version 3 serving", server)
    # latest {num_versions: 2}: version 1 is unloaded once 3 is available.
    _wait_until(
        lambda: _versions_state(server).get("1") == "END", NEW_VERSION_DEADLINE_S, "version 1 END", server
    )
    gone = _post(server.url(f"{MODEL_NAME}/versions/1:predict"), {"instances": one.tolist()})
    assert gone.status_code == 404
