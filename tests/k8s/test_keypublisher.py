"""The TorchServe key publisher, against fakes of TorchServe and of the Kubernetes API on loopback."""

from __future__ import annotations

import ast
import base64
import json
import time
from argparse import Namespace
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from gateway.backends.torchserve_keys import read_keys
from tests.k8s.conftest import K8S, FakeServer, Handler, Reply, Seen, load_script

SCRIPT = K8S / "base" / "torchserve" / "keypublisher.py"


@pytest.fixture(scope="module")
def publisher() -> ModuleType:
    return load_script(SCRIPT)


def key_file(path: Path, inference: str, expires: float, api: str = "api-key") -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(expires)) + ".123456789Z"  # Java's nanoseconds
    path.write_text(
        json.dumps(
            {
                "management": {"key": "mgmt-key", "expiration time": stamp},
                "inference": {"key": inference, "expiration time": stamp},
                "API": {"key": api},
            }
        )
    )


class FakeTorchServe:
    """/ping and PUT /token?type=inference with TorchServe 0.12's rules: keys in key_file.json."""

    def __init__(self, path: Path, healthy: bool = True) -> None:
        self.path = path
        self.healthy = healthy

    def __call__(self, seen: Seen) -> Reply:
        keys = json.loads(self.path.read_text())
        token = seen.headers.get("Authorization", "").removeprefix("Bearer ")
        if seen.path == "/ping":
            if token != keys["inference"]["key"]:
                return 400, {
                    "code": 400,
                    "type": "InvalidKeyException",
                    "message": "Token Authorization failed",
                }
            return (200, {"status": "Healthy"}) if self.healthy else (500, {"status": "Unhealthy"})
        if seen.method == "PUT" and seen.path == "/token?type=inference" and token == keys["API"]["key"]:
            key_file(self.path, "renewed-key", time.time() + 86400, keys["API"]["key"])
            return 200, {}
        return 400, {"code": 400, "type": "InvalidKeyException", "message": "Token Authorization failed"}


def args(tmp_path: Path, torchserve: FakeServer, **overrides: object) -> Namespace:
    values: dict[str, object] = {
        "key_file": tmp_path / "key_file.json",
        "inference_url": torchserve.url,
        "management_url": torchserve.url,
        "secret": "torchserve-inference-key",
        "renew_before": 3600.0,
        "heartbeat": tmp_path / "heartbeat",
        "timeout": 2.0,
        "max_age": 60.0,
    }
    values.update(overrides)
    return Namespace(**values)


@pytest.fixture
def api(fake_http: Callable[[Handler], FakeServer]) -> FakeServer:
    return fake_http(lambda seen: (200, {"kind": "Secret"}))


def test_publishes_inference_key_only_once_torchserve_is_healthy(
    publisher: ModuleType, tmp_path: Path, fake_http: Callable[[Handler], FakeServer], api: FakeServer
) -> None:
    torchserve = FakeTorchServe(tmp_path / "key_file.json", healthy=False)
    fake = fake_http(torchserve)
    token = tmp_path / "token"
    token.write_text("projected-token\n")
    loop = publisher.Publisher(
        args(tmp_path, fake), publisher.SecretClient(api.url, "mnist-serving", token, None)
    )

    assert loop.step(time.time()) == "waiting for the key file"
    key_file(tmp_path / "key_file.json", "inference-key", time.time() + 86400)
    assert loop.step(time.time()).startswith("waiting for TorchServe to be healthy (/ping 500)")
    assert api.seen == []

    torchserve.healthy = True
    assert loop.step(time.time()) == "published"
    (patch,) = api.seen
    assert patch.method == "PATCH"
    assert patch.path == "/api/v1/namespaces/mnist-serving/secrets/torchserve-inference-key"
    assert patch.headers["Content-Type"] == "application/merge-patch+json"
    assert patch.headers["Authorization"] == "Bearer projected-token"
    body = json.loads(patch.body)
    published = base64.b64decode(body["data"][publisher.SECRET_KEY])
    assert b"mgmt-key" not in published and b"api-key" not in published
    assert body["metadata"]["annotations"]["mnist-serving/key-expires"].endswith("Z")

    # The gateway's own reader accepts the published file and gets the inference key from it.
    (tmp_path / "published.json").write_bytes(published)
    keys = read_keys(tmp_path / "published.json")
    assert (keys.inference, keys.management, keys.api) == ("inference-key", "", "")
    assert keys.inference_expires is not None

    assert loop.step(time.time()) == "up to date"
    assert len(api.seen) == 1


def test_renews_before_expiry_and_publishes_the_new_key(
    publisher: ModuleType, tmp_path: Path, fake_http: Callable[[Handler], FakeServer], api: FakeServer
) -> None:
    fake = fake_http(FakeTorchServe(tmp_path / "key_file.json"))
    token = tmp_path / "token"
    token.write_text("t")
    loop = publisher.Publisher(args(tmp_path, fake), publisher.SecretClient(api.url, "ns", token, None))
    key_file(tmp_path / "key_file.json", "old-key", time.time() + 600)  # inside the one-hour margin

    assert loop.step(time.time()) == "renewed"
    renewal = next(seen for seen in fake.seen if seen.method == "PUT")
    assert renewal.headers["Authorization"] == "Bearer api-key"
    assert loop.step(time.time()) == "published"
    published = json.loads(base64.b64decode(json.loads(api.seen[-1].body)["data"][publisher.SECRET_KEY]))
    assert published["inference"]["key"] == "renewed-key"


def test_api_errors_are_reported_not_fatal(
    publisher: ModuleType, tmp_path: Path, fake_http: Callable[[Handler], FakeServer]
) -> None:
    forbidden = fake_http(lambda seen: (403, {"reason": "Forbidden"}))
    fake = fake_http(FakeTorchServe(tmp_path / "key_file.json"))
    token = tmp_path / "token"
    token.write_text("t")
    key_file(tmp_path / "key_file.json", "k", time.time() + 86400)
    loop = publisher.Publisher(args(tmp_path, fake), publisher.SecretClient(forbidden.url, "ns", token, None))
    with pytest.raises(OSError, match="403"):
        loop.step(time.time())
    assert loop.published is None  # tried again on the next pass


def test_ping_probe(
    publisher: ModuleType, tmp_path: Path, fake_http: Callable[[Handler], FakeServer]
) -> None:
    torchserve = FakeTorchServe(tmp_path / "key_file.json")
    fake = fake_http(torchserve)
    probe_args = args(tmp_path, fake)
    assert publisher.probe(probe_args) == 1  # no key file yet
    key_file(tmp_path / "key_file.json", "k", time.time() + 86400)
    assert publisher.probe(probe_args) == 0
    torchserve.healthy = False
    assert publisher.probe(probe_args) == 1


def test_alive_probe(publisher: ModuleType, tmp_path: Path) -> None:
    beat = tmp_path / "heartbeat"
    assert publisher.alive(Namespace(heartbeat=beat, max_age=60.0)) == 1
    beat.touch()
    assert publisher.alive(Namespace(heartbeat=beat, max_age=60.0)) == 0


def test_expiry_parses_torchserve_timestamps(publisher: ModuleType) -> None:
    document = {"inference": {"key": "k", "expiration time": "2024-02-16T21:12:24.801167123Z"}}
    assert publisher.expires_at(document) == 1708117944.0


def test_runs_on_the_torchserve_images_python() -> None:
    # pytorch/torchserve:0.12.0-* ships Python 3.9; the script must parse there (stdlib only).
    tree = ast.parse(SCRIPT.read_text(), feature_version=(3, 9))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imported <= {
        "__future__",
        "argparse",
        "base64",
        "calendar",
        "json",
        "os",
        "signal",
        "ssl",
        "sys",
        "threading",
        "time",
        "urllib",
        "pathlib",
        "typing",
    }
