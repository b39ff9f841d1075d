"""TorchServe 0.12, really running: predictions, token authorization, key renewal, metrics."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import requests
from PIL import Image

from exporters.mnist import MnistData
from gateway.backends.torchserve_keys import read_keys
from model_store import ModelStore
from serving.settings import ServingSettings
from serving.torchserve import launcher as torchserve

pytestmark = pytest.mark.integration
TIMEOUT = 10


def _predict_url(settings: ServingSettings, version: str = "") -> str:
    suffix = f"/{version}" if version else ""
    return f"{torchserve.endpoints(settings).inference}/predictions/{settings.model_name}{suffix}"


def _auth(settings: ServingSettings) -> dict[str, str]:
    tokens = torchserve.token_source(settings)
    assert tokens is not None
    return tokens.inference_header()


def _reference(store: ModelStore) -> np.ndarray:
    return np.load(store.version_dir(1) / "reference" / "pytorch_probabilities.npy")


def test_json_batch_matches_the_exported_model(
    torchserve_settings: ServingSettings, exported_store: ModelStore, mnist: MnistData
) -> None:
    images = mnist.test_images[:32].astype(np.float32) / 255.0
    response = requests.post(
        _predict_url(torchserve_settings, "1"),
        json={"instances": images.tolist()},
        headers=_auth(torchserve_settings),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    probabilities = np.asarray(response.json()["predictions"], dtype=np.float32)
    reference = _reference(exported_store)[:32]
    np.testing.assert_allclose(probabilities, reference, atol=1e-5)
    assert response.json()["digits"] == reference.argmax(axis=1).tolist()


def test_png_digit(
    torchserve_settings: ServingSettings, exported_store: ModelStore, mnist: MnistData
) -> None:
    buffer = io.BytesIO()
    Image.fromarray(mnist.test_images[3]).save(buffer, format="PNG")
    response = requests.post(
        _predict_url(torchserve_settings),
        data=buffer.getvalue(),
        headers=_auth(torchserve_settings),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert response.json()["digits"] == [int(_reference(exported_store)[3].argmax())]


def test_bad_input_is_a_400_from_our_handler(torchserve_settings: ServingSettings) -> None:
    response = requests.post(
        _predict_url(torchserve_settings),
        json={"instances": [[0.5] * 27] * 28},
        headers=_auth(torchserve_settings),
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert response.json()["type"] == "InvalidInput"


def test_unknown_model_is_404(torchserve_settings: ServingSettings) -> None:
    url = f"{torchserve.endpoints(torchserve_settings).inference}/predictions/no-such-model"
    response = requests.post(url, json={"instances": []}, headers=_auth(torchserve_settings), timeout=TIMEOUT)
    assert response.status_code == 404


@pytest.mark.parametrize("header", [{}, {"Authorization": "Bearer wrong-key"}])
def test_requests_without_a_valid_token_are_refused(
    torchserve_settings: ServingSettings, header: dict[str, str]
) -> None:
    """TorchServe 0.12 refuses with 400 InvalidKeyException (not 401/403)."""
    inference = torchserve.endpoints(torchserve_settings).inference
    ping = requests.get(f"{inference}/ping", headers=header, timeout=TIMEOUT)
    predict = requests.post(
        _predict_url(torchserve_settings), json={"instances": []}, headers=header, timeout=TIMEOUT
    )
    for response in (ping, predict):
        assert response.status_code == 400
        assert response.json()["type"] == "InvalidKeyException"


def test_management_api_needs_the_management_key(torchserve_settings: ServingSettings) -> None:
    url = f"{torchserve.endpoints(torchserve_settings).management}/models"
    assert requests.get(url, timeout=TIMEOUT).status_code == 400
    assert requests.get(url, headers=_auth(torchserve_settings), timeout=TIMEOUT).status_code == 400
    tokens = torchserve.token_source(torchserve_settings)
    assert tokens is not None
    assert requests.get(url, headers=tokens.management_header(), timeout=TIMEOUT).status_code == 200


def test_inference_key_renewal(torchserve_settings: ServingSettings, mnist: MnistData) -> None:
    tokens = torchserve.token_source(torchserve_settings)
    assert tokens is not None
    old = tokens.keys().inference
    tokens.renew_inference_key()
    new = tokens.keys().inference
    assert new != old
    assert read_keys(torchserve_settings.key_file).inference == new
    body = {"instances": (mnist.test_images[:1] / 255.0).tolist()}
    ok = requests.post(
        _predict_url(torchserve_settings), json=body, headers=tokens.inference_header(), timeout=TIMEOUT
    )
    assert ok.status_code == 200
    stale = requests.post(
        _predict_url(torchserve_settings),
        json=body,
        headers={"Authorization": f"Bearer {old}"},
        timeout=TIMEOUT,
    )
    assert stale.status_code == 400


def test_status_and_metrics(torchserve_settings: ServingSettings) -> None:
    assert torchserve.version_states(torchserve_settings) == {"1": "READY"}
    metrics = requests.get(torchserve.endpoints(torchserve_settings).metrics, timeout=TIMEOUT)
    assert metrics.status_code == 200
    assert "ts_inference_requests_total" in metrics.text


def test_generated_config_keeps_management_on_loopback(torchserve_settings: ServingSettings) -> None:
    from serving.torchserve.config import parse

    config = parse((torchserve_settings.torchserve_dir / "config.properties").read_text())
    assert config["management_address"].startswith("http://127.0.0.1:")
    assert config["grpc_management_address"] == "127.0.0.1"
    assert config["enable_model_api"] == "false"
    assert config["disable_token_authorization"] == "false"
    assert config["allowed_urls"].startswith("file://")
    assert json.loads(config["models"])["mnist"]["1"]["marName"] == "mnist.1.mar"


def test_grpc_predictions_match_the_exported_model(
    torchserve_settings: ServingSettings, exported_store: ModelStore, mnist: MnistData
) -> None:
    import grpc

    from serving.torchserve.grpc_stubs import ensure_torchserve_stubs

    messages, services = ensure_torchserve_stubs()
    tokens = torchserve.token_source(torchserve_settings)
    assert tokens is not None
    images = mnist.test_images[:8].astype(np.float32) / 255.0
    request = messages.PredictionsRequest(
        model_name="mnist",
        model_version="1",
        input={"data": json.dumps({"instances": images.tolist()}).encode()},
    )
    with grpc.insecure_channel(f"127.0.0.1:{torchserve_settings.ts_grpc_inference_port}") as channel:
        stub = services.InferenceAPIsServiceStub(channel)
        reply = stub.Predictions(
            request, timeout=TIMEOUT, metadata=[("authorization", f"Bearer {tokens.token()}")]
        )
        with pytest.raises(grpc.RpcError) as refused:
            stub.Predictions(request, timeout=TIMEOUT, metadata=[("authorization", "Bearer wrong")])
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    probabilities = np.asarray(json.loads(reply.prediction)["predictions"], dtype=np.float32)
    np.testing.assert_allclose(probabilities, _reference(exported_store)[:8], atol=1e-5)
