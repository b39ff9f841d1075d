"""Start Triton Inference Server 2.51 (Python backend via PyTriton) on the store's TorchScript.

Same interface as the TorchServe and TF Serving launchers: ``check_ports``, ``start``, ``record``,
``wait_until_ready``, ``version_states``. ``start`` builds the Triton environment first if it is
missing (``serving.triton.environment``; about two minutes, once).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from model_store import ModelStore
from model_store.checksums import sha256_file
from serving.errors import ServerStartError
from serving.http import request_json
from serving.ports import ensure_free
from serving.process import ServerRecord, process_group_alive, read_record, record_path, start_server, tail
from serving.settings import ServingSettings
from serving.torchserve.launcher import select_versions
from serving.triton import environment
from serving.triton.environment import TritonEnvironment

NAME = "triton"
SERVER_SCRIPT = Path(__file__).resolve().parent / "server.py"
NOTE = (
    "Triton's C++ HTTP/gRPC frontends and dynamic batcher are real; the TorchScript runs in "
    "Triton's Python backend (PyTriton), not in the libtorch backend production Triton would use "
    "(not installable here)"
)
ONE_VERSION = (
    "PyTriton 0.7 binds one version per model name (a second version's sockets collide with the first's)"
)
_FATAL_PATTERNS = ("Traceback (most recent call last)", "failed to load", "error: creating server")


def _print(message: str) -> None:
    print(message, flush=True)


def http_url(settings: ServingSettings) -> str:
    return f"http://{settings.host}:{settings.triton_http_port}"


def endpoints(settings: ServingSettings) -> dict[str, str]:
    return {
        "v2 http": http_url(settings),
        "v2 grpc": f"{settings.host}:{settings.triton_grpc_port}",
        "metrics": f"http://{settings.host}:{settings.triton_metrics_port}/metrics",
    }


def implementation(env: TritonEnvironment, server_version: str = "2.51") -> str:
    return (
        f"Triton Inference Server {server_version}, Python backend via PyTriton {env.pytriton_version} "
        f"(torch {env.torch_version}, Python {env.python_version})"
    )


def check_ports(settings: ServingSettings) -> None:
    ensure_free(
        settings.host,
        [
            ("Triton HTTP", settings.triton_http_port),
            ("Triton gRPC", settings.triton_grpc_port),
            ("Triton metrics", settings.triton_metrics_port),
        ],
    )


def record(settings: ServingSettings) -> ServerRecord:
    found = read_record(settings.run_dir, NAME)
    if found is None:
        raise ServerStartError(f"Triton is not recorded in {settings.run_dir}")
    return found


def ensure_environment(
    settings: ServingSettings, say: Callable[[str], None] = _print, *, rebuild: bool = False
) -> TritonEnvironment:
    """The Triton environment, built first if needed (raises TritonUnavailable with the reason)."""
    return environment.ensure(settings.triton_venv, settings.triton_python, say, rebuild=rebuild)


def torchscript_files(settings: ServingSettings, versions: list[int]) -> dict[str, str]:
    """Each version's TorchScript file, checked against the manifest's SHA-256."""
    store = ModelStore(settings.store_root, settings.model_name)
    files = {}
    for version in versions:
        artifact = store.record(version).artifacts["torchscript"]
        path = store.version_dir(version) / artifact.path
        if sha256_file(path) != artifact.files[artifact.path]:
            raise ServerStartError(f"{path}: SHA-256 does not match the manifest; run `make verify`")
        files[str(version)] = str(path)
    return files


def start(settings: ServingSettings, say: Callable[[str], None] = _print) -> ServerRecord:
    """Build the environment if needed, write the server config, launch; returns at once."""
    selected = select_versions(ModelStore(settings.store_root, settings.model_name), settings.versions)
    versions = selected[-1:]
    if len(selected) > 1:
        say(f"triton: serves version {versions[0]} only of {selected}: {ONE_VERSION}")
    files = torchscript_files(settings, versions)
    env = ensure_environment(settings, say)
    if settings.triton_max_batch < 1:
        raise ServerStartError(f"triton_max_batch must be at least 1 (got {settings.triton_max_batch})")
    home = settings.triton_dir
    for stale in ("workspace", "tmp"):  # left behind by a server that was killed hard
        shutil.rmtree(home / stale, ignore_errors=True)
    stale_model_copies(home / "workspace", remove=True)
    (home / "tmp").mkdir(parents=True)
    log = home / "triton.log"
    if log.exists():  # a fresh log: startup checks must not read an earlier run's errors
        log.replace(home / "triton.previous.log")
    config = {
        "model_name": settings.model_name,
        "versions": files,
        "host": settings.host,
        "http_port": settings.triton_http_port,
        "grpc_port": settings.triton_grpc_port,
        "metrics_port": settings.triton_metrics_port,
        "max_batch": settings.triton_max_batch,
        "dynamic_batching": settings.triton_dynamic_batching,
        "max_queue_delay_us": settings.triton_max_queue_delay_us,
        "threads": settings.threads,
        "workspace": str(home / "workspace"),
    }
    config_path = home / "server.json"
    config_path.write_text(json.dumps(config, indent=2))
    environment_vars = dict(os.environ)
    environment_vars.update(
        LD_LIBRARY_PATH=env.library_path(os.environ.get("LD_LIBRARY_PATH", "")),
        TMPDIR=str(home / "tmp"),
        PYTHONUNBUFFERED="1",
        PYTHONNOUSERSITE="1",
    )
    environment_vars.pop("PYTHONPATH", None)  # the venv's packages only, not the project's
    if settings.threads:
        environment_vars.update(OMP_NUM_THREADS=str(settings.threads))
    info = {
        "implementation": implementation(env),
        "versions": versions,
        "endpoints": endpoints(settings),
        "dynamic_batching": settings.triton_dynamic_batching,
        "max_batch_size": settings.triton_max_batch,
        "max_queue_delay_us": settings.triton_max_queue_delay_us,
        "config": str(config_path),
        "venv": env.venv,
        "note": NOTE if len(selected) == 1 else f"{NOTE}; {ONE_VERSION}, so only the newest is served",
    }
    return start_server(
        NAME,
        [env.python, str(SERVER_SCRIPT), "--config", str(config_path)],
        run_dir=settings.run_dir,
        log_file=log,
        cwd=home,
        env=environment_vars,
        info=info,
    )


def stale_model_copies(workspace: Path, *, remove: bool = False) -> list[Path]:
    """Triton's /tmp/folderXXXXXX model copies of the server using ``workspace`` (see server.py)."""
    found = []
    for folder in Path("/tmp").glob("folder??????"):  # nosec B108  # Triton ignores TMPDIR; its copies are only removed
        try:
            mine = f'"{workspace}"' in (folder / "config.pbtxt").read_text()
        except OSError:
            continue
        if mine:
            found.append(folder)
            if remove:
                shutil.rmtree(folder, ignore_errors=True)
    return found


def version_states(settings: ServingSettings) -> dict[str, str]:
    """READY or UNAVAILABLE per recorded version (Triton's per-version readiness endpoint)."""
    versions = record(settings).info.get("versions", [])
    states = {}
    for version in versions:
        url = f"{http_url(settings)}/v2/models/{settings.model_name}/versions/{version}/ready"
        status, _ = request_json(url, timeout=5.0)
        states[str(version)] = "READY" if status == 200 else "UNAVAILABLE"
    return states


def server_version(settings: ServingSettings) -> str:
    status, body = request_json(f"{http_url(settings)}/v2", timeout=5.0)
    if status != 200 or not isinstance(body, dict):
        raise ServerStartError(f"Triton server metadata answered {status}: {body}")
    return str(body.get("version", "?"))


def _startup_problem(log: Path) -> list[str]:
    if not tail(log, 5, _FATAL_PATTERNS):
        return []
    time.sleep(0.5)  # let the traceback be flushed
    return tail(log, 40)


def wait_until_ready(settings: ServingSettings, server: ServerRecord, timeout_s: float) -> dict[str, str]:
    """Poll each version's readiness; fail fast when the process exits or logs a traceback.

    Once ready, the record's implementation name carries the version ``tritonserver`` reports.
    """
    log = Path(server.log)
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not process_group_alive(server.pid):
            raise ServerStartError("Triton exited during startup:\n" + "\n".join(tail(log, 30)))
        problem = _startup_problem(log)
        if problem:
            raise ServerStartError("Triton failed to start:\n" + "\n".join(problem) + f"\nFull log: {log}")
        try:
            states = version_states(settings)
            if states and all(state == "READY" for state in states.values()):
                _record_server_version(settings, server, server_version(settings))
                return states
            last = f"versions {states}"
        except (OSError, ServerStartError) as exc:
            last = str(exc)
        time.sleep(0.3)
    raise ServerStartError(
        f"Triton not ready within {timeout_s:.0f}s ({last}); last log lines:\n" + "\n".join(tail(log, 20))
    )


def _record_server_version(settings: ServingSettings, server: ServerRecord, version: str) -> None:
    env = environment.load(settings.triton_venv)
    if env is None:
        return
    info = {**server.info, "implementation": implementation(env, version), "server_version": version}
    path = record_path(settings.run_dir, NAME)
    path.write_text(json.dumps(asdict(replace(server, info=info)), indent=2))
