"""Start TF Serving (official binary, or the project's named stand-in) and wait for AVAILABLE."""

from __future__ import annotations

import os
import time
from pathlib import Path

from model_store import ModelStore
from serving.errors import ServerStartError
from serving.http import request_json
from serving.ports import ensure_free
from serving.process import ServerRecord, process_group_alive, read_record, start_server, tail
from serving.settings import ServingSettings
from serving.tfserving.official import TfServingOptions, build_command
from serving.tfserving.versioning import VersionPolicy
from serving.torchserve.launcher import select_versions

NAME = "tfserving"
STANDIN_NOTE = (
    "this is the project's TF-Serving-compatible development server, a stand-in used because "
    "`tensorflow_model_server` is not installed; it is not TensorFlow Serving"
)


def rest_url(settings: ServingSettings) -> str:
    return f"http://{settings.host}:{settings.tf_rest_port}"


def _policy_and_labels(settings: ServingSettings) -> tuple[VersionPolicy, dict[str, int], list[int]]:
    versions = select_versions(ModelStore(settings.store_root, settings.model_name), settings.versions)
    if settings.versions == "latest":
        policy = VersionPolicy("latest", num_versions=1)
    else:
        policy = VersionPolicy("specific", versions=tuple(versions))
    return policy, version_labels(versions), versions


def version_labels(versions: list[int]) -> dict[str, int]:
    """``stable`` is the newest served version; with two or more, the newest is ``canary`` instead."""
    if len(versions) > 1:
        return {"stable": versions[-2], "canary": versions[-1]}
    return {"stable": versions[-1]}


def check_ports(settings: ServingSettings) -> None:
    ensure_free(
        settings.host,
        [("TF Serving REST", settings.tf_rest_port), ("TF Serving gRPC", settings.tf_grpc_port)],
    )


def record(settings: ServingSettings) -> ServerRecord:
    found = read_record(settings.run_dir, NAME)
    if found is None:
        raise ServerStartError(f"TF Serving is not recorded in {settings.run_dir}")
    return found


def start(settings: ServingSettings) -> ServerRecord:
    policy, labels, versions = _policy_and_labels(settings)
    options = TfServingOptions(
        base_path=settings.model_base_path,
        config_dir=settings.tfserving_dir,
        model_name=settings.model_name,
        host=settings.host,
        rest_port=settings.tf_rest_port,
        grpc_port=settings.tf_grpc_port,
        version_labels=labels,
        version_policy=policy,
        batching=settings.tf_batching,
        intra_op_threads=settings.threads,
        inter_op_threads=1 if settings.threads else 0,
    )
    settings.tfserving_dir.mkdir(parents=True, exist_ok=True)
    command = build_command(options)
    info = {
        "implementation": command.name,
        "official": command.official,
        "versions": versions,
        "labels": labels,
        "endpoints": {
            "rest": rest_url(settings),
            "grpc": f"{settings.host}:{settings.tf_grpc_port}",
            "metrics": f"{rest_url(settings)}/monitoring/prometheus/metrics",
        },
    }
    if not command.official:
        info["note"] = STANDIN_NOTE
    environment = dict(os.environ)
    if settings.threads:
        environment.update(OMP_NUM_THREADS=str(settings.threads))
    return start_server(
        NAME,
        command.argv,
        run_dir=settings.run_dir,
        log_file=settings.tfserving_dir / "tfserving.log",
        cwd=settings.tfserving_dir,
        env=environment,
        info=info,
    )


def version_states(settings: ServingSettings) -> dict[str, str]:
    status, body = request_json(f"{rest_url(settings)}/v1/models/{settings.model_name}", timeout=5.0)
    if status != 200 or not isinstance(body, dict):
        raise ServerStartError(f"TF Serving status answered {status}: {body}")
    return {entry["version"]: entry["state"] for entry in body.get("model_version_status", [])}


def wait_until_ready(settings: ServingSettings, server: ServerRecord, timeout_s: float) -> dict[str, str]:
    """Poll the model status until every selected version is AVAILABLE."""
    wanted = {str(version) for version in server.info.get("versions", [])}
    log = Path(server.log)
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not process_group_alive(server.pid):
            raise ServerStartError(
                f"{server.info['implementation']} exited during startup:\n" + "\n".join(tail(log, 25))
            )
        try:
            states = version_states(settings)
            available = {version for version, state in states.items() if state == "AVAILABLE"}
            if wanted <= available and available:
                return {version: states[version] for version in sorted(available)}
            last = f"states {states}"
        except (OSError, ServerStartError) as exc:
            last = str(exc)
        time.sleep(0.3)
    raise ServerStartError(
        f"{server.info['implementation']} not ready within {timeout_s:.0f}s ({last}); log:\n"
        + "\n".join(tail(log, 20))
    )
