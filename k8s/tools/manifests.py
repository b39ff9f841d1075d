"""Write the generated parts of ``k8s/`` from the project's own generators, and check they are current.

Nothing under ``k8s/`` that a model server reads is written by hand: TorchServe's ``config.properties``
comes from :func:`serving.torchserve.config.render`, TF Serving's ``models.config`` and monitoring config
from :mod:`serving.tfserving.official` (as ``serving/compose.py`` does for docker-compose), with the
in-cluster paths and the versions recorded in ``k8s/models.env``. The gateway's routing files keep the
policy an operator chose (backend weights, shadow, failover) and get their versions and labels from
``models.env`` too. The kustomize ``images`` component pins the three images this repository builds.

Usage (from the repository root, with the project's virtualenv)::

    python k8s/tools/manifests.py render                        # rewrite every generated file
    python k8s/tools/manifests.py check                         # exit 1 if a generated file is stale
    python k8s/tools/manifests.py models --stable 1 --canary 2  # versions served (canary at 0%)
    python k8s/tools/manifests.py weight 10                     # canary share of the gateway's traffic
    python k8s/tools/manifests.py backends tfserving-rest=100 torchserve-rest=0
    python k8s/tools/manifests.py images --registry REGISTRY/PATH --tag TAG --artifacts-tag v2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from model_store.contract import MODEL_NAME
from serving.settings import ServingSettings
from serving.tfserving.official import (
    BATCHING_CONFIG,
    MODELS_CONFIG,
    MONITORING_CONFIG,
    ConfigFiles,
    TfServingOptions,
    model_config_text,
    monitoring_config_text,
    official_command,
)
from serving.tfserving.versioning import VersionPolicy
from serving.torchserve.config import TorchServeConfig, render

K8S_DIR = Path(__file__).resolve().parents[1]
RELEASE_FILE = K8S_DIR / "models.env"

# Paths inside the containers (the same ones serving/compose.py uses for docker-compose).
TF_MODELS_DIR = Path("/models")
TF_CONFIG_DIR = Path("/config")
TF_BINARY = "tensorflow_model_server"
TS_HOME = "/home/model-server"
TS_MODEL_STORE = f"{TS_HOME}/model-store"
TS_CONFIG_DIR = f"{TS_HOME}/config"
ALL_INTERFACES = "0.0.0.0"  # inside the pod; management stays on 127.0.0.1 (render() enforces it)  # nosec B104

TF_POLL_SECONDS = 60.0
"""Models arrive only through the init container at pod start, so polling for new ones is rare."""
TOKEN_EXPIRATION_MIN = 7 * 24 * 60
"""TorchServe keys live a week; the key publisher renews the inference key an hour before (k8s/README.md)."""

ROUTING_HEADER = (
    "# Gateway routing (gateway/routing.example.yaml documents every key). Written by\n"
    "# k8s/tools/manifests.py: `versions` and `labels` come from k8s/models.env; the other keys\n"
    "# are the operator's policy (change them with `manifests.py backends`, or edit and run `render`).\n"
)
_VERSION_KEYS = ("versions", "labels")
SLIM_IMAGE_BACKENDS = frozenset({"tfserving-rest", "torchserve-rest"})
"""Backends the gateway image can run: remote REST only (see the Dockerfile's GATEWAY_EXCLUDE)."""


@dataclass(frozen=True)
class Release:
    """The model versions the manifests serve (``k8s/models.env``)."""

    stable: int
    canary: int
    canary_percent: int = 0

    def __post_init__(self) -> None:
        if self.stable < 1 or self.canary <= self.stable:
            raise ValueError(f"versions must satisfy 1 <= STABLE < CANARY (got {self.stable}, {self.canary})")
        if not 0 <= self.canary_percent <= 100:
            raise ValueError(f"CANARY_PERCENT must be 0..100 (got {self.canary_percent})")


def read_release(path: Path | None = None) -> Release:
    path = path or RELEASE_FILE
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    try:
        return Release(int(values["STABLE"]), int(values["CANARY"]), int(values.get("CANARY_PERCENT", "0")))
    except (KeyError, ValueError) as exc:
        raise SystemExit(f"{path}: expected integer STABLE, CANARY and CANARY_PERCENT ({exc})") from exc


def release_text(release: Release) -> str:
    return (
        "# Model versions the k8s manifests serve. Every generated file under k8s/ derives from these.\n"
        "# Change them with `python k8s/tools/manifests.py models|weight ...`, which re-renders.\n"
        "# STABLE: the version the base serves; CANARY: the version the canary overlays add beside it;\n"
        "# CANARY_PERCENT: the canary's share of the gateway's traffic in the canary overlays.\n"
        f"STABLE={release.stable}\n"
        f"CANARY={release.canary}\n"
        f"CANARY_PERCENT={release.canary_percent}\n"
    )


# -- the servers' files, from the project's generators ---------------------------------------------


def mar_name(version: int) -> str:
    """Archive name inside TorchServe's model store (as ``serving.torchserve.launcher`` names them)."""
    return f"{MODEL_NAME}.{version}.mar"


def torchserve_properties(versions: Sequence[int], gpus: int) -> str:
    settings = ServingSettings()
    return render(
        TorchServeConfig(
            model_name=MODEL_NAME,
            mar_files={version: mar_name(version) for version in versions},
            model_store=TS_MODEL_STORE,
            host=ALL_INTERFACES,
            workers=settings.ts_workers,
            batch_size=settings.ts_batch_size,
            max_batch_delay_ms=settings.ts_max_batch_delay_ms,
            response_timeout_s=settings.ts_response_timeout_s,
            gpus=gpus,
            token_auth=True,
            token_expiration_min=TOKEN_EXPIRATION_MIN,
        )
    )


def tfserving_options(
    versions: Sequence[int], labels: Mapping[str, int], threads: int = 0
) -> TfServingOptions:
    return TfServingOptions(
        base_path=TF_MODELS_DIR / MODEL_NAME,
        config_dir=TF_CONFIG_DIR,
        model_name=MODEL_NAME,
        version_labels=dict(labels),
        version_policy=VersionPolicy("specific", versions=tuple(versions)),
        # The thread convention of serving.tfserving.launcher: N intra-op threads, one inter-op pool.
        intra_op_threads=threads,
        inter_op_threads=1 if threads else 0,
        poll_seconds=TF_POLL_SECONDS,
    )


def tfserving_args(release: Release, threads: int = 0) -> list[str]:
    """TF Serving's container args (the binary is the container command); the Deployments carry them
    (threads=0 in the base, the CPU limit in overlays/cpu) and tests/k8s checks they agree."""
    files = ConfigFiles(
        models=TF_CONFIG_DIR / MODELS_CONFIG,
        batching=TF_CONFIG_DIR / BATCHING_CONFIG,
        monitoring=TF_CONFIG_DIR / MONITORING_CONFIG,
    )
    options = tfserving_options([release.stable], {"stable": release.stable}, threads)
    return official_command(options, TF_BINARY, files)[1:]


# -- the gateway's routing files ----------------------------------------------------------------------


def read_policy(path: Path) -> dict[str, Any]:
    """The operator's routing policy for the model: the routing file minus versions and labels."""
    data = yaml.safe_load(path.read_text())
    try:
        route = dict(data["models"][MODEL_NAME])
    except (TypeError, KeyError) as exc:
        raise SystemExit(f"{path}: expected models.{MODEL_NAME} ({exc})") from exc
    return {key: value for key, value in route.items() if key not in _VERSION_KEYS}


def routing_text(policy: Mapping[str, Any], versions: Mapping[int, int], labels: Mapping[str, int]) -> str:
    route = {**policy, "versions": dict(versions), "labels": dict(labels)}
    body = yaml.safe_dump({"models": {MODEL_NAME: route}}, sort_keys=False, default_flow_style=False)
    return ROUTING_HEADER + body


def check_routing(data: Any, source: str) -> None:
    """Parse with the gateway's own parser; refuse backends the slim gateway image cannot run."""
    from gateway.registry import BACKEND_NAMES
    from gateway.routing import RoutingError, RoutingTable

    try:
        table = RoutingTable.parse(data, source, BACKEND_NAMES)
    except RoutingError as exc:
        raise SystemExit(str(exc)) from exc
    if extra := sorted(table.backend_names() - SLIM_IMAGE_BACKENDS):
        raise SystemExit(
            f"{source}: {extra} cannot run in the gateway image (it has no TensorFlow, torch or "
            f"TorchServe stubs); use {sorted(SLIM_IMAGE_BACKENDS)}"
        )


def base_routing(release: Release, policy: Mapping[str, Any]) -> str:
    return routing_text(policy, {release.stable: 100}, {"stable": release.stable})


def canary_routing(release: Release, policy: Mapping[str, Any]) -> str:
    share = release.canary_percent
    return routing_text(
        policy,
        {release.stable: 100 - share, release.canary: share},
        {"stable": release.stable, "canary": release.canary},
    )


# -- every generated file -----------------------------------------------------------------------------


BASE_ROUTING = K8S_DIR / "base" / "gateway" / "routing.yaml"


def generated_files(release: Release, policy: Mapping[str, Any]) -> dict[Path, str]:
    """Path -> the text the generators give for it."""
    base, canary = K8S_DIR / "base", K8S_DIR / "components" / "canary"
    both = [release.stable, release.canary]
    canary_labels = {"stable": release.stable, "canary": release.canary}
    return {
        base / "tfserving" / MODELS_CONFIG: model_config_text(
            tfserving_options([release.stable], {"stable": release.stable})
        ),
        base / "tfserving" / MONITORING_CONFIG: monitoring_config_text(),
        base / "torchserve" / "config.properties": torchserve_properties([release.stable], gpus=0),
        base / "torchserve" / "config-gpu.properties": torchserve_properties([release.stable], gpus=1),
        BASE_ROUTING: base_routing(release, policy),
        canary / "tfserving" / MODELS_CONFIG: model_config_text(tfserving_options(both, canary_labels)),
        canary / "torchserve" / "config.properties": torchserve_properties(both, gpus=0),
        canary / "torchserve" / "config-gpu.properties": torchserve_properties(both, gpus=1),
        canary / "gateway" / "routing.yaml": canary_routing(release, policy),
    }


def write_all(release: Release) -> list[Path]:
    """Write models.env and every generated file; returns the files whose content changed."""
    policy = read_policy(BASE_ROUTING)
    files = generated_files(release, policy)
    for path, text in files.items():
        if path.name == "routing.yaml":
            check_routing(yaml.safe_load(text), str(path))
    changed = []
    for path, text in {RELEASE_FILE: release_text(release), **files}.items():
        if not path.is_file() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed.append(path)
    return changed


def stale_files() -> list[Path]:
    release = read_release()
    policy = read_policy(BASE_ROUTING)
    return [
        path
        for path, text in generated_files(release, policy).items()
        if not path.is_file() or path.read_text() != text
    ]


# -- images -------------------------------------------------------------------------------------------

IMAGES_FILE = K8S_DIR / "components" / "images" / "kustomization.yaml"
IMAGE_NAMES = {
    "gateway": "mnist-gateway",
    "artifacts": "mnist-model-artifacts",
    "loadtest": "mnist-loadtest",
}
"""Role -> the image name the manifests use (the Dockerfile targets gateway, model-artifacts, loadtest)."""


def images_text(registry: str, tag: str, artifacts_tag: str) -> str:
    registry = registry.rstrip("/")
    entries = [
        {
            "name": name,
            "newName": f"{registry}/{name}",
            "newTag": artifacts_tag if role == "artifacts" else tag,
        }
        for role, name in IMAGE_NAMES.items()
    ]
    document = {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "images": entries,
    }
    header = (
        "# The images this repository builds (Dockerfile targets gateway, model-artifacts, loadtest).\n"
        "# Written by `python k8s/tools/manifests.py images`; don't edit by hand.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False)


def current_images() -> dict[str, dict[str, str]]:
    data = yaml.safe_load(IMAGES_FILE.read_text())
    return {entry["name"]: entry for entry in data["images"]}


# -- command line -------------------------------------------------------------------------------------


def _weights(pairs: Sequence[str]) -> dict[str, int]:
    weights = {}
    for pair in pairs:
        name, sep, weight = pair.partition("=")
        if not sep or not weight.strip().isdigit():
            raise SystemExit(f"expected BACKEND=WEIGHT, got {pair!r}")
        weights[name.strip()] = int(weight)
    return weights


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="manifests.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("render", help="rewrite every generated file from k8s/models.env")
    commands.add_parser("check", help="exit 1 if a generated file differs from what the generators give")
    models = commands.add_parser("models", help="set the stable and canary versions (canary share: 0%%)")
    models.add_argument("--stable", type=int, required=True)
    models.add_argument("--canary", type=int, help="default: stable + 1")
    weight = commands.add_parser("weight", help="set the canary's share of traffic (percent)")
    weight.add_argument("percent", type=int)
    backends = commands.add_parser("backends", help="set backend weights in the routing policy")
    backends.add_argument("weights", nargs="+", metavar="BACKEND=WEIGHT")
    images = commands.add_parser("images", help="pin the images this repository builds")
    images.add_argument("--registry", required=True, help="registry and path, e.g. REGISTRY/team")
    images.add_argument("--tag", help="tag of the gateway and loadtest images (default: unchanged)")
    images.add_argument("--artifacts-tag", help="tag of the model artifacts image (default: unchanged)")
    args = parser.parse_args(argv)

    if args.command == "check":
        stale = stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(K8S_DIR.parent)}", file=sys.stderr)
        if stale:
            print("run: python k8s/tools/manifests.py render", file=sys.stderr)
        return 1 if stale else 0
    if args.command == "images":
        current = current_images()
        tag = args.tag or current[IMAGE_NAMES["gateway"]]["newTag"]
        artifacts_tag = args.artifacts_tag or current[IMAGE_NAMES["artifacts"]]["newTag"]
        IMAGES_FILE.write_text(images_text(args.registry, tag, artifacts_tag))
        print(f"wrote {IMAGES_FILE.relative_to(K8S_DIR.parent)}")
        return 0

    release = read_release()
    try:
        if args.command == "models":
            canary = args.canary if args.canary is not None else args.stable + 1
            release = Release(args.stable, canary, 0)
        elif args.command == "weight":
            release = replace(release, canary_percent=args.percent)
    except ValueError as exc:
        raise SystemExit(f"manifests.py: {exc}") from exc
    if args.command == "backends":
        data = yaml.safe_load(BASE_ROUTING.read_text())
        data["models"][MODEL_NAME]["backends"].update(_weights(args.weights))
        check_routing(data, str(BASE_ROUTING))
        BASE_ROUTING.write_text(ROUTING_HEADER + yaml.safe_dump(data, sort_keys=False))
    for path in write_all(release):
        print(f"wrote {path.relative_to(K8S_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
