"""``python -m gatewaybench.stages`` end to end: the real gateway app and floor proxy, in their own
process, against a fake TF Serving REST server (a stdlib HTTP server on loopback, in this test only)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from serving.settings import REPO_ROOT
from tests.support import answer_json, served_in_thread

ANSWER = json.dumps({"predictions": [[0.1] * 10]}).encode()
STATUS = json.dumps({"model_version_status": [{"version": "1", "state": "AVAILABLE"}]}).encode()


class _FakeTFServing(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the gateway's and the floor's libcurl expect
    predicts: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).predicts.append(body)
        answer_json(self, ANSWER if self.path == "/v1/models/mnist:predict" else b"{}")

    def do_GET(self) -> None:
        answer_json(self, STATUS)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_tfserving() -> Iterator[str]:
    _FakeTFServing.predicts = []
    with served_in_thread(ThreadingHTTPServer(("127.0.0.1", 0), _FakeTFServing)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


def _run(tmp_path: Path, url: str, requests: int = 40) -> subprocess.CompletedProcess[str]:
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"instances": [[[0.5] * 28] * 28]}))
    command = [sys.executable, "-m", "gatewaybench.stages", "--url", url, "--body", str(body)]
    command += ["--requests", str(requests), "--warm-up", "20"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GATEWAY_MODEL_STORE": str(tmp_path / "store")}
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=env)


def test_it_measures_every_stage_of_real_requests_and_the_floor(tmp_path: Path, fake_tfserving: str) -> None:
    done = _run(tmp_path, fake_tfserving)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["requests"] == 40
    stages = result["stages_us"]
    assert set(stages) == {"send", "adapter", "routing", "metrics", "decode", "rest"}
    assert all(value > 0 for value in stages.values()), stages
    assert sum(stages.values()) == pytest.approx(result["gateway_us"])
    assert result["floor_us"] > 0
    assert set(result["instant_backend_us"]) == {"gateway", "floor"}
    assert all(value > 0 for value in result["instant_backend_us"].values())
    # Warm-up and measured requests, from both the gateway (its own float32 encoding) and the floor,
    # and the one request for the answer the instant backend hands back; none with the instant backend.
    bodies = _FakeTFServing.predicts
    assert len(bodies) == 2 * (20 + 40) + 1
    assert all(json.loads(b)["instances"] == [[[0.5] * 28] * 28] for b in bodies)


def test_it_refuses_a_server_off_loopback(tmp_path: Path) -> None:
    done = _run(tmp_path, "http://192.0.2.1:8501")
    assert done.returncode == 2
    assert "loopback" in done.stderr


def test_it_refuses_a_url_that_is_not_http(tmp_path: Path) -> None:
    done = _run(tmp_path, "file:///etc/passwd")
    assert done.returncode == 2
    assert "http://" in done.stderr
