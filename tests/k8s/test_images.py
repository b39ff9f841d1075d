"""What the Dockerfile builds, checked without a Docker engine.

- the gateway image's dependency list (pyproject minus GATEWAY_EXCLUDE) is enough: the gateway runs with
  those frameworks blocked, against fakes of both servers, authenticating to TorchServe with the key file
  the key publisher writes;
- the model-artifacts layout is what the init containers copy and the servers' configs name.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import ModuleType

import pytest

from model_store import CONTRACT, ArtifactRecord, IntegrityError, ModelStore, VersionRecord
from model_store.checksums import combined_sha256, sha256_file
from tests.k8s.conftest import K8S, REPO, FakeServer, Handler, Reply, Seen, load_script

EXCLUDED_IMPORTS = {
    "tensorflow": "tensorflow",
    "torch": "torch",
    "torchserve": "ts",
    "torch-model-archiver": "model_archiver",
    "grpcio-tools": "grpc_tools",
}
"""Distribution left out of the gateway image -> the top-level module it provides."""
PROJECT_PACKAGES = ("exporters", "model_store", "serving", "gateway", "loadtests", "gatewaybench")


def gateway_image_packages() -> set[str]:
    """The project's packages the Dockerfile copies into the gateway image (its ``gateway-build`` stage)."""
    stage = (REPO / "Dockerfile").read_text().split("AS gateway-build", 1)[1].split("\nFROM ", 1)[0]
    copied = {match.split("/")[0] for match in re.findall(r"^COPY (\S+)", stage, flags=re.M)}
    return copied & set(PROJECT_PACKAGES)


BLOCKED_IMPORTS = (
    *EXCLUDED_IMPORTS.values(),
    "tensorflow_serving",
    *sorted(set(PROJECT_PACKAGES) - gateway_image_packages()),
)
"""What the gateway image must run without: its exclusions, ``tensorflow-serving-api`` (not a
dependency of the gateway; it would bring TensorFlow back), and the project's packages the image
does not copy (``serving``, the load tests, the exporters)."""


def dockerfile_arg(name: str) -> str:
    match = re.search(rf'^ARG {name}="([^"]*)"$', (REPO / "Dockerfile").read_text(), flags=re.M)
    assert match, f"Dockerfile: no ARG {name}"
    return match.group(1)


@pytest.fixture(scope="module")
def requirements() -> ModuleType:
    return load_script(K8S / "tools" / "requirements.py")


def test_gateway_image_requirements(requirements: ModuleType) -> None:
    excluded = dockerfile_arg("GATEWAY_EXCLUDE").split()
    assert set(excluded) == EXCLUDED_IMPORTS.keys()
    chosen = requirements.select(REPO / "pyproject.toml", ["gateway"], excluded)
    names = {requirements.requirement_name(line) for line in chosen}
    assert {"flask", "granian", "pycurl", "prometheus-client", "numpy"} <= names
    assert not names & set(excluded)


def test_stale_exclusions_fail_the_build(requirements: ModuleType) -> None:
    with pytest.raises(ValueError, match="not required"):
        requirements.select(REPO / "pyproject.toml", ["gateway"], ["no-such-project"])
    with pytest.raises(ValueError, match="no extra"):
        requirements.select(REPO / "pyproject.toml", ["no-such-extra"], [])


def _module_level_imports(tree: ast.Module) -> set[str]:
    """Modules imported when a module is imported: top-level statements and class bodies, not functions."""
    found: set[str] = set()
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        pending.extend(ast.iter_child_nodes(node))
    return found


def _third_party_imports(entry: str) -> set[str]:
    """Top-level third-party modules the import of ``entry`` (a module of this repository) loads."""
    ours = {"loadtests", "model_store", "exporters", "gateway", "serving"}
    seen: set[str] = set()
    third: set[str] = set()
    pending = [entry]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        base = REPO.joinpath(*module.split("."))
        path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if not path.is_file():
            continue  # an attribute imported from a package, not a module
        parent = module.rsplit(".", 1)[0]
        if parent != module:
            pending.append(parent)  # importing a.b runs a/__init__.py first
        for name in _module_level_imports(ast.parse(path.read_text())):
            top = name.split(".")[0]
            if top in ours:
                pending.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                third.add(top)
    return third


def _with_dependencies(requirements: ModuleType, names: set[str]) -> set[str]:
    """Distributions pip installs for ``names``, from the installed metadata (extras' deps left out)."""
    closure: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        closure.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        pending += [requirements.requirement_name(line) for line in requires if "extra ==" not in line]
    return closure


def test_loadtest_image_can_import_the_locustfile(requirements: ModuleType) -> None:
    locustfile = dockerfile_locustfile()
    chosen = requirements.select(
        REPO / "pyproject.toml",
        dockerfile_arg("LOADTEST_EXTRAS").split(),
        dockerfile_arg("LOADTEST_EXCLUDE").split(),
    )
    installed = _with_dependencies(requirements, {requirements.requirement_name(line) for line in chosen})
    providers = metadata.packages_distributions()
    needed = {
        module: {requirements.canonical(d) for d in providers.get(module, [module])}
        for module in _third_party_imports(locustfile)
    }
    missing = {module: sorted(dists) for module, dists in needed.items() if not dists & installed}
    assert not missing, f"the loadtest image could not import {locustfile}: {missing}"


def dockerfile_locustfile() -> str:
    """The locustfile the Locust manifests run, as a module name."""
    master = (K8S / "loadtest" / "master.yaml").read_text()
    match = re.search(r"- --locustfile\n\s+- (\S+)\.py", master)
    assert match, "k8s/loadtest/master.yaml: no --locustfile"
    return match.group(1).replace("/", ".")


_SLIM_GATEWAY = """
import importlib.abc, json, sys

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is not in the gateway image")
        return None

BLOCKED = set(sys.argv[1].split(","))
sys.meta_path.insert(0, Blocked())

from gateway.app import create_app
from gateway.settings import Settings

client = create_app(Settings.from_env()).test_client()
ready = client.get("/readyz")
images = [[[0.0] * 28] * 28] * 2
# One backend named per request: a 50/50 split sent all six to one server in 1 run of 64.
answers = [
    client.post("/v1/models/mnist:predict", json={"instances": images}, headers={"X-Gateway-Backend": name})
    for name in ("tfserving-rest", "torchserve-rest") * 3
]
metrics = client.get("/metrics")
print(json.dumps({
    "ready": [ready.status_code, ready.get_json()],
    "predict": sorted({r.status_code for r in answers}),
    "metrics": metrics.status_code,
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
}))
"""


def _probabilities(body: bytes, key: str) -> list[list[float]]:
    count = len(json.loads(body)[key])
    return [[0.0] * 9 + [1.0]] * count


def fake_tfserving(seen: Seen) -> Reply:
    if seen.method == "GET" and seen.path.startswith("/v1/models/mnist"):
        return 200, {"model_version_status": [{"version": "1", "state": "AVAILABLE", "status": {}}]}
    if seen.method == "POST" and seen.path.endswith(":predict"):
        return 200, {"predictions": _probabilities(seen.body, "instances")}
    return 404, {"error": "not found"}


def fake_torchserve(seen: Seen) -> Reply:
    if seen.headers.get("Authorization") != "Bearer inference-key":
        return 400, {"code": 400, "type": "InvalidKeyException", "message": "Token Authorization failed"}
    if seen.path == "/ping":
        return 200, {"status": "Healthy"}
    if seen.path.startswith("/predictions/mnist"):
        return 200, {"predictions": _probabilities(seen.body, "instances")}
    return 404, {"code": 404, "type": "ModelNotFoundException", "message": "no"}


def write_key_file(folder: Path) -> Path:
    """What the Secret volume holds: the inference key the publisher copied out of TorchServe's file."""
    publisher = load_script(K8S / "base" / "torchserve" / "keypublisher.py")
    secret_file = folder / "key_file.json"
    secret_file.write_text(
        json.dumps(publisher.inference_only({"inference": {"key": "inference-key", "expiration time": ""}}))
    )
    return secret_file


def test_slim_gateway_serves_through_both_servers(
    tmp_path: Path, fake_http: Callable[[Handler], FakeServer]
) -> None:
    tf, ts = fake_http(fake_tfserving), fake_http(fake_torchserve)
    secret_file = write_key_file(tmp_path)
    env = {
        "PATH": "/usr/bin:/bin",
        "GATEWAY_ROUTING_FILE": str(K8S / "base" / "gateway" / "routing.yaml"),
        "GATEWAY_TFSERVING_REST_URL": tf.url,
        "GATEWAY_TORCHSERVE_REST_URL": ts.url,
        "GATEWAY_TORCHSERVE_KEY_FILE": str(secret_file),
        "GATEWAY_TORCHSERVE_MANAGEMENT_URL": "",
    }
    run = subprocess.run(
        [sys.executable, "-c", _SLIM_GATEWAY, ",".join(BLOCKED_IMPORTS)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    status, body = result["ready"]
    assert status == 200, body
    backends = {b["name"]: b["ready"] for b in body["models"]["mnist"]["backends"]}
    assert backends == {"tfserving-rest": True, "torchserve-rest": True}
    assert result["predict"] == [200]
    assert result["metrics"] == 200
    assert result["loaded"] == []
    assert any(seen.path.startswith("/predictions/mnist/1") for seen in ts.seen), "version pinned"


def _publish(store: ModelStore) -> int:
    """A version with the store's real artifact names: a SavedModel in the version dir, a .mar."""
    with store.draft() as draft:
        (draft.path / "variables").mkdir()
        (draft.path / "torchserve").mkdir()
        payload = {
            "saved_model.pb": b"graph",
            "variables/variables.index": b"index",
            "torchserve/mnist.mar": b"archive",
        }
        for relative, data in payload.items():
            (draft.path / relative).write_bytes(data)

        def artifact(framework: str, kind: str, path: str, names: list[str]) -> ArtifactRecord:
            files = {name: sha256_file(draft.path / name) for name in names}
            return ArtifactRecord(framework, kind, path, files, combined_sha256(files), 1, 0.98)

        record = VersionRecord(
            "mnist",
            draft.version,
            "2026-01-01T00:00:00+00:00",
            CONTRACT.to_dict(),
            {
                "saved_model": artifact("tensorflow", "saved_model", ".", list(payload)[:2]),
                "torchserve_mar": artifact(
                    "pytorch", "torchserve_mar", "torchserve/mnist.mar", list(payload)[2:]
                ),
            },
        )
        store.publish(draft, record)
    return draft.version


def test_artifacts_layout_matches_the_configs(tmp_path: Path) -> None:
    artifacts = load_script(K8S / "tools" / "artifacts.py")
    manifests = load_script(K8S / "tools" / "manifests.py")
    store = ModelStore(tmp_path / "store", "mnist")
    _publish(store), _publish(store)
    out = tmp_path / "out"
    assert artifacts.main(["--store", str(tmp_path / "store"), "--out", str(out)]) == 0
    tf = out / "tfserving" / "mnist"
    assert sorted(p.relative_to(tf).as_posix() for p in tf.rglob("*") if p.is_file()) == [
        "1/saved_model.pb",
        "1/variables/variables.index",
        "1/version.json",
        "2/saved_model.pb",
        "2/variables/variables.index",
        "2/version.json",
    ]
    # TF Serving's base_path and TorchServe's archive names, as the generated configs say.
    assert manifests.tfserving_options([1], {}).base_path == Path("/models") / tf.relative_to(
        out / "tfserving"
    )
    expected = manifests.torchserve_properties([1, 2], gpus=0)
    archives = sorted(p.name for p in (out / "torchserve").iterdir())
    assert f"load_models={','.join(archives)}" in expected.splitlines()


def test_artifacts_refuse_a_damaged_store(tmp_path: Path) -> None:
    artifacts = load_script(K8S / "tools" / "artifacts.py")
    store = ModelStore(tmp_path, "mnist")
    version = _publish(store)
    (store.version_dir(version) / "torchserve" / "mnist.mar").write_bytes(b"truncated")
    with pytest.raises(IntegrityError):
        artifacts.lay_out(store, tmp_path / "out")
    assert artifacts.main(["--store", str(tmp_path / "empty"), "--out", str(tmp_path / "out2")]) == 1
