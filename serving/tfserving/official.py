"""Launch TF Serving: the official ``tensorflow_model_server`` when it is on PATH, else the named stand-in.

For the official binary this module writes its three configuration files (``models.config``,
batching parameters, monitoring) and builds its argv; for the stand-in it builds the
``python -m serving.tfserving.devserver`` argv from the same :class:`TfServingOptions`.
Nothing here imports TensorFlow, so launchers stay quick.

Differences the caller should know: the official binary has no bind-address flag (it listens on
all interfaces, so ``host`` only applies to the stand-in) and takes whole seconds for its poll
intervals (fractions are rounded up).
"""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from model_store.contract import MODEL_NAME
from serving.tfserving.identity import OFFICIAL_BINARY, STANDIN_NAME
from serving.tfserving.versioning import VersionPolicy, format_version_labels

MODELS_CONFIG = "models.config"
BATCHING_CONFIG = "batching_parameters.txt"
MONITORING_CONFIG = "monitoring.config"
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


@dataclass(frozen=True)
class BatchingParameters:
    """Server-side batching (TF Serving's ``BatchingParameters``)."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 2000
    max_enqueued_batches: int = 100
    num_batch_threads: int = 4


@dataclass(frozen=True)
class TfServingOptions:
    """Everything needed to start one TF Serving (official or stand-in) over one model's version folder."""

    base_path: Path
    """The model's folder of numeric version directories, e.g. ``<store>/mnist``."""
    config_dir: Path
    """Where the official binary's generated config files are written."""
    model_name: str = MODEL_NAME
    host: str = "127.0.0.1"
    rest_port: int = 8501
    grpc_port: int = 8500
    version_labels: Mapping[str, int] = field(default_factory=dict)
    version_policy: VersionPolicy = field(default_factory=VersionPolicy)
    batching: bool = False
    batching_parameters: BatchingParameters = field(default_factory=BatchingParameters)
    intra_op_threads: int = 0
    """TensorFlow intra-op threads; 0 lets TensorFlow choose."""
    inter_op_threads: int = 0
    rest_threads: int | None = None
    """REST worker threads; ``None`` keeps each server's own default (TF Serving: from the CPU count)."""
    poll_seconds: float = 2.0
    """How often new version directories (and, officially, the config file) are looked for."""


class ServerCommand(NamedTuple):
    """What to run: ``argv``, a human-readable ``name`` for logs and status, and whether it is official."""

    argv: list[str]
    name: str
    official: bool


@dataclass(frozen=True)
class ConfigFiles:
    models: Path
    batching: Path
    monitoring: Path


def find_official_binary(path: str | None = None) -> str | None:
    """The ``tensorflow_model_server`` executable on ``path`` (default: ``$PATH``), or ``None``."""
    return shutil.which(OFFICIAL_BINARY, path=path)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _policy_text(policy: VersionPolicy) -> str:
    if policy.kind == "all":
        return "all {}"
    if policy.kind == "specific":
        return "specific { " + " ".join(f"versions: {v}" for v in policy.versions) + " }"
    return f"latest {{ num_versions: {policy.num_versions} }}"


def model_config_text(options: TfServingOptions) -> str:
    """``models.config``: a ModelServerConfig in protobuf text format."""
    lines = [
        "model_config_list {",
        "  config {",
        f"    name: {_quote(options.model_name)}",
        f"    base_path: {_quote(str(options.base_path))}",
        '    model_platform: "tensorflow"',
        f"    model_version_policy {{ {_policy_text(options.version_policy)} }}",
    ]
    for label, version in options.version_labels.items():
        lines.append(f"    version_labels {{ key: {_quote(label)} value: {version} }}")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def batching_parameters_text(parameters: BatchingParameters) -> str:
    """The ``--batching_parameters_file``: a BatchingParameters message in text format."""
    return (
        f"max_batch_size {{ value: {parameters.max_batch_size} }}\n"
        f"batch_timeout_micros {{ value: {parameters.batch_timeout_micros} }}\n"
        f"max_enqueued_batches {{ value: {parameters.max_enqueued_batches} }}\n"
        f"num_batch_threads {{ value: {parameters.num_batch_threads} }}\n"
    )


def monitoring_config_text(path: str = PROMETHEUS_PATH) -> str:
    """The ``--monitoring_config_file``: Prometheus metrics on the REST port at ``path``."""
    return f"prometheus_config {{\n  enable: true\n  path: {_quote(path)}\n}}\n"


def write_config_files(options: TfServingOptions) -> ConfigFiles:
    """Write the three files into ``options.config_dir`` (created if needed)."""
    options.config_dir.mkdir(parents=True, exist_ok=True)
    files = ConfigFiles(
        models=options.config_dir / MODELS_CONFIG,
        batching=options.config_dir / BATCHING_CONFIG,
        monitoring=options.config_dir / MONITORING_CONFIG,
    )
    files.models.write_text(model_config_text(options))
    files.batching.write_text(batching_parameters_text(options.batching_parameters))
    files.monitoring.write_text(monitoring_config_text())
    return files


def official_command(options: TfServingOptions, binary: str, files: ConfigFiles) -> list[str]:
    """The official binary's argv, reading the files :func:`write_config_files` wrote."""
    poll = str(math.ceil(options.poll_seconds))
    argv = [
        binary,
        f"--port={options.grpc_port}",
        f"--rest_api_port={options.rest_port}",
        f"--model_config_file={files.models}",
        f"--model_config_file_poll_wait_seconds={poll}",
        f"--file_system_poll_wait_seconds={poll}",
        f"--monitoring_config_file={files.monitoring}",
        f"--tensorflow_intra_op_parallelism={options.intra_op_threads}",
        f"--tensorflow_inter_op_parallelism={options.inter_op_threads}",
    ]
    if options.rest_threads is not None:
        argv.append(f"--rest_api_num_threads={options.rest_threads}")
    if options.batching:
        argv += ["--enable_batching=true", f"--batching_parameters_file={files.batching}"]
    if options.version_labels:
        # Labels may name a version that is not loaded yet (a canary still being copied in).
        argv.append("--allow_version_labels_for_unavailable_models=true")
    return argv


def standin_command(options: TfServingOptions, python: str = sys.executable) -> list[str]:
    """The stand-in's argv (it has no batching; the other options map one to one)."""
    policy = options.version_policy
    argv = [
        python,
        "-m",
        "serving.tfserving.devserver",
        "--model-name",
        options.model_name,
        "--model-base-path",
        str(options.base_path),
        "--host",
        options.host,
        "--rest-port",
        str(options.rest_port),
        "--grpc-port",
        str(options.grpc_port),
        "--poll-seconds",
        str(options.poll_seconds),
        "--version-policy",
        policy.kind,
        "--num-versions",
        str(policy.num_versions),
        "--intra-op-threads",
        str(options.intra_op_threads),
        "--inter-op-threads",
        str(options.inter_op_threads),
    ]
    if policy.versions:
        argv += ["--versions", ",".join(str(v) for v in policy.versions)]
    if options.version_labels:
        argv += ["--version-labels", format_version_labels(options.version_labels)]
    if options.rest_threads is not None:
        argv += ["--rest-threads", str(options.rest_threads)]
    return argv


def build_command(
    options: TfServingOptions, *, find_binary: Callable[[], str | None] = find_official_binary
) -> ServerCommand:
    """The official binary when it is installed (its config files written), else the stand-in."""
    binary = find_binary()
    if binary is not None:
        argv = official_command(options, binary, write_config_files(options))
        return ServerCommand(argv, f"TensorFlow Serving {binary}", official=True)
    return ServerCommand(standin_command(options), STANDIN_NAME, official=False)
