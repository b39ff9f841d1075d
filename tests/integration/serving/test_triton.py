"""Triton Inference Server 2.51 (Python backend via PyTriton), really running on the exported TorchScript.

The Triton environment (build/triton-venv) is built on first use by the launcher, about two
minutes, then reused. If it cannot be built here the tests fail and say why: they do not skip.
The V2 contract (health, metadata, inference, errors) is checked against Triton and the gateway alike
by tests/integration/test_v2_contract.py; these tests are Triton's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
import tritonclient.http as httpclient

from exporters.export import TORCHSCRIPT_PATH
from exporters.mnist import MnistData
from model_store import ModelStore
from serving.process import read_record
from serving.settings import ServingSettings
from serving.triton import launcher as triton
from tests.integration.serving.triton_server import running_triton
from tests.support import serving_environment, serving_settings

pytestmark = pytest.mark.integration
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def triton_settings(
    exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServingSettings]:
    settings = serving_settings(exported_store.root, tmp_path_factory.mktemp("triton-run"))
    with running_triton(settings) as running:
        yield running


@pytest.fixture(scope="module")
def images(mnist: MnistData) -> np.ndarray:
    return (mnist.test_images[:64].astype(np.float32) / 255.0).astype(np.float32)


@pytest.fixture(scope="module")
def local_probabilities(exported_store: ModelStore, images: np.ndarray) -> np.ndarray:
    """The same TorchScript file, run here with the main environment's torch."""
    model = torch.jit.load(str(exported_store.version_dir(1) / TORCHSCRIPT_PATH), map_location="cpu").eval()
    with torch.inference_mode():
        result: np.ndarray = model(torch.from_numpy(images)).numpy()
    return result


def _http(settings: ServingSettings) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(
        f"127.0.0.1:{settings.triton_http_port}", connection_timeout=TIMEOUT, network_timeout=TIMEOUT
    )


def test_ready_and_named_truthfully(triton_settings: ServingSettings) -> None:
    assert triton.version_states(triton_settings) == {"1": "READY"}
    client = _http(triton_settings)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mnist", "1")
    server = client.get_server_metadata()
    assert server["name"] == "triton" and server["version"].startswith("2.51")
    record = read_record(triton_settings.run_dir, triton.NAME)
    assert record is not None
    implementation = record.info["implementation"]
    assert implementation.startswith(
        f"Triton Inference Server {server['version']}, Python backend via PyTriton"
    )
    assert "libtorch backend" in record.info["note"]


def test_model_configuration(triton_settings: ServingSettings) -> None:
    """Triton's own view of the model (the V2 contract itself: tests/integration/test_v2_contract.py)."""
    config = _http(triton_settings).get_model_config("mnist", "1")
    assert config["max_batch_size"] == triton_settings.triton_max_batch
    assert "dynamic_batching" not in config  # off by default


def test_metrics(triton_settings: ServingSettings) -> None:
    text = requests.get(triton.endpoints(triton_settings)["metrics"], timeout=TIMEOUT).text
    assert 'nv_inference_request_success{model="mnist",version="1"}' in text


def _metric(text: str, name: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(f'{name}{{model="mnist",version="1"}}'))
    return float(line.rsplit(" ", 1)[1])


def test_dynamic_batcher_batches_concurrent_requests(
    exported_store: ModelStore, tmp_path: Path, images: np.ndarray, local_probabilities: np.ndarray
) -> None:
    settings = serving_settings(
        exported_store.root,
        tmp_path / "run",
        triton_dynamic_batching=True,
        triton_max_batch=32,
        triton_max_queue_delay_us=100_000,
    )
    with running_triton(settings) as ready:
        client = _http(ready)
        config = client.get_model_config("mnist", "1")
        assert config["max_batch_size"] == 32
        assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 100_000
        concurrent = httpclient.InferenceServerClient(
            f"127.0.0.1:{ready.triton_http_port}",
            concurrency=16,
            connection_timeout=TIMEOUT,
            network_timeout=TIMEOUT,
        )
        pending = []
        for index in range(16):
            request = httpclient.InferInput("image", [1, 28, 28], "FP32")
            request.set_data_from_numpy(images[index : index + 1])
            pending.append(concurrent.async_infer("mnist", [request], model_version="1"))
        results = [item.get_result(timeout=TIMEOUT).as_numpy("probabilities") for item in pending]
        np.testing.assert_allclose(np.concatenate(results), local_probabilities[:16], atol=1e-6)
        metrics = requests.get(triton.endpoints(ready)["metrics"], timeout=TIMEOUT).text
        requests_seen = _metric(metrics, "nv_inference_count")
        executions = _metric(metrics, "nv_inference_exec_count")
        assert requests_seen == 16 and executions < 16, (requests_seen, executions)


def test_up_runs_the_others_when_triton_cannot_start(exported_store: ModelStore, tmp_path: Path) -> None:
    """`python -m serving up` with a Python that cannot run Triton: it says why, TF Serving still runs."""
    settings = serving_settings(exported_store.root, tmp_path / "run")
    env = {
        **os.environ,
        **serving_environment(settings),
        "SERVING_TRITON_VENV": str(tmp_path / "triton-venv"),
        "SERVING_TRITON_PYTHON": str(tmp_path / "no-such-python"),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "serving", *args],
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
            check=False,
        )

    try:
        up = cli("up", "--skip", "torchserve")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "warning: triton not started" in up.stderr and "no-such-python" in up.stderr
        assert "tfserving: ready" in up.stdout and "triton: NOT STARTED" in up.stdout
        assert read_record(settings.run_dir, triton.NAME) is None
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stdout + down.stderr
