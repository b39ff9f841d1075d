"""TF Serving launch: generated config files parse as TF Serving's protos; the right server is chosen."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from google.protobuf.message import Message
from tensorflow_serving.config import model_server_config_pb2

from serving.tfserving import (
    OFFICIAL_BINARY,
    STANDIN_NAME,
    BatchingParameters,
    TfServingOptions,
    VersionPolicy,
    build_command,
    find_official_binary,
    official_command,
    parse_version_labels,
    standin_command,
    write_config_files,
)
from serving.tfserving.devserver import build_parser, settings_from_args
from serving.tfserving.official import batching_parameters_text, model_config_text, monitoring_config_text


def _mirror_config_messages() -> dict[str, type[Message]]:
    """BatchingParameters and MonitoringConfig as declared upstream (field names, numbers, types).

    tensorflow-serving-api ships ``model_server_config_pb2`` but not these two messages, so the
    schema is restated from tensorflow_serving/servables/tensorflow/session_bundle_config.proto and
    tensorflow_serving/config/monitoring_config.proto (only the fields we write).
    """
    proto = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="tfserving_config_mirror.proto",
        package="tfserving_mirror",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    batching = file.message_type.add(name="BatchingParameters")
    for number, name in enumerate(
        ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"), start=1
    ):
        batching.field.add(
            name=name,
            number=number,
            type=proto.TYPE_MESSAGE,
            type_name=".google.protobuf.Int64Value",
            label=proto.LABEL_OPTIONAL,
        )
    prometheus = file.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=proto.TYPE_BOOL, label=proto.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=proto.TYPE_STRING, label=proto.LABEL_OPTIONAL)
    monitoring = file.message_type.add(name="MonitoringConfig")
    monitoring.field.add(
        name="prometheus_config",
        number=1,
        type=proto.TYPE_MESSAGE,
        type_name=".tfserving_mirror.PrometheusConfig",
        label=proto.LABEL_OPTIONAL,
    )
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tfserving_mirror.{name}"))
        for name in ("BatchingParameters", "MonitoringConfig")
    }


MIRROR = _mirror_config_messages()


def _options(tmp_path: Path, **overrides: Any) -> TfServingOptions:
    values: dict[str, Any] = {
        "base_path": tmp_path / "store" / "mnist",
        "config_dir": tmp_path / "config",
        "rest_port": 18501,
        "grpc_port": 18500,
        "version_labels": {"stable": 1, "canary": 2},
    }
    values.update(overrides)
    return TfServingOptions(**values)


def _parse_models(text: str) -> model_server_config_pb2.ModelServerConfig:
    return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())


def test_models_config_parses_with_labels_and_latest_policy(tmp_path: Path) -> None:
    options = _options(tmp_path, version_policy=VersionPolicy("latest", num_versions=2))
    (config,) = _parse_models(model_config_text(options)).model_config_list.config
    assert config.name == "mnist"
    assert config.base_path == str(tmp_path / "store" / "mnist")
    assert config.model_platform == "tensorflow"
    assert config.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert config.model_version_policy.latest.num_versions == 2
    assert dict(config.version_labels) == {"stable": 1, "canary": 2}


@pytest.mark.parametrize(
    ("policy", "choice"),
    [(VersionPolicy("all"), "all"), (VersionPolicy("specific", versions=(1, 3)), "specific")],
)
def test_models_config_other_policies(tmp_path: Path, policy: VersionPolicy, choice: str) -> None:
    (config,) = _parse_models(
        model_config_text(_options(tmp_path, version_policy=policy))
    ).model_config_list.config
    assert config.model_version_policy.WhichOneof("policy_choice") == choice
    if choice == "specific":
        assert list(config.model_version_policy.specific.versions) == [1, 3]


def test_models_config_quotes_awkward_paths(tmp_path: Path) -> None:
    odd = tmp_path / 'a "quoted" dir\\x' / "mnist"
    (config,) = _parse_models(model_config_text(_options(tmp_path, base_path=odd))).model_config_list.config
    assert config.base_path == str(odd)


def test_batching_parameters_parse() -> None:
    parsed: Any = text_format.Parse(
        batching_parameters_text(BatchingParameters(16, 1500, 50, 2)), MIRROR["BatchingParameters"]()
    )
    assert parsed.max_batch_size.value == 16
    assert parsed.batch_timeout_micros.value == 1500
    assert parsed.max_enqueued_batches.value == 50
    assert parsed.num_batch_threads.value == 2


def test_monitoring_config_parses() -> None:
    parsed: Any = text_format.Parse(monitoring_config_text(), MIRROR["MonitoringConfig"]())
    assert parsed.prometheus_config.enable is True
    assert parsed.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_mirror_rejects_unknown_fields() -> None:
    """The mirror really checks field names (so a typo in our generator would fail the tests above)."""
    with pytest.raises(text_format.ParseError):
        text_format.Parse("max_batch_sizes { value: 1 }", MIRROR["BatchingParameters"]())


def test_official_command_flags(tmp_path: Path) -> None:
    options = _options(tmp_path, batching=True, intra_op_threads=2, inter_op_threads=1, rest_threads=8)
    files = write_config_files(options)
    argv = official_command(options, "/opt/tfs/bin/tensorflow_model_server", files)
    assert argv[0] == "/opt/tfs/bin/tensorflow_model_server"
    assert {
        "--port=18500",
        "--rest_api_port=18501",
        f"--model_config_file={files.models}",
        "--model_config_file_poll_wait_seconds=2",
        f"--monitoring_config_file={files.monitoring}",
        "--enable_batching=true",
        f"--batching_parameters_file={files.batching}",
        "--tensorflow_intra_op_parallelism=2",
        "--tensorflow_inter_op_parallelism=1",
        "--rest_api_num_threads=8",
        "--allow_version_labels_for_unavailable_models=true",
    } <= set(argv)
    for path in (files.models, files.batching, files.monitoring):
        assert path.is_file() and path.parent == tmp_path / "config"


def test_official_command_without_batching_or_labels(tmp_path: Path) -> None:
    options = _options(tmp_path, version_labels={})
    argv = official_command(options, OFFICIAL_BINARY, write_config_files(options))
    assert not [
        flag for flag in argv if "batching" in flag or "version_labels" in flag or "rest_api_num" in flag
    ]


def test_standin_command_round_trips_through_the_devserver_parser(tmp_path: Path) -> None:
    options = _options(
        tmp_path,
        version_policy=VersionPolicy("specific", versions=(1, 2)),
        intra_op_threads=3,
        rest_threads=5,
    )
    argv = standin_command(options)
    assert argv[:3] == [sys.executable, "-m", "serving.tfserving.devserver"]
    settings = settings_from_args(build_parser().parse_args(argv[3:]))
    assert settings.base_path == options.base_path.resolve()
    assert (settings.host, settings.rest_port, settings.grpc_port) == ("127.0.0.1", 18501, 18500)
    assert settings.labels == {"stable": 1, "canary": 2}
    assert settings.policy == options.version_policy
    assert (settings.intra_op_threads, settings.inter_op_threads, settings.rest_threads) == (3, 0, 5)


def _path_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, binary: bool) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if binary:
        fake = bin_dir / OFFICIAL_BINARY
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def test_build_command_falls_back_to_the_named_standin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _path_with(tmp_path, monkeypatch, binary=False)
    assert find_official_binary() is None
    command = build_command(_options(tmp_path))
    assert command.official is False
    assert command.name == STANDIN_NAME and "not TensorFlow Serving" in command.name
    assert command.argv[:3] == [sys.executable, "-m", "serving.tfserving.devserver"]
    assert not (tmp_path / "config").exists()


def test_build_command_prefers_the_official_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = _path_with(tmp_path, monkeypatch, binary=True)
    command = build_command(_options(tmp_path, batching=True))
    binary = str(bin_dir / OFFICIAL_BINARY)
    assert command.official is True
    assert command.name == f"TensorFlow Serving {binary}"
    assert command.argv[0] == binary
    assert "--enable_batching=true" in command.argv
    assert (tmp_path / "config" / "models.config").is_file()


def test_version_policy_selection() -> None:
    assert VersionPolicy().select([3, 1, 2]) == {3}
    assert VersionPolicy("latest", num_versions=2).select([3, 1, 2]) == {2, 3}
    assert VersionPolicy("all").select([1, 2]) == {1, 2}
    assert VersionPolicy("specific", versions=(1, 5)).select([1, 2]) == {1}
    with pytest.raises(ValueError, match="num_versions"):
        VersionPolicy("latest", num_versions=0)


def test_version_labels_parse() -> None:
    assert parse_version_labels("stable=1, canary=2") == {"stable": 1, "canary": 2}
    assert parse_version_labels("") == {}
    for bad in ("stable", "stable=x", "a b=1", "stable=1,stable=2"):
        with pytest.raises(ValueError):
            parse_version_labels(bad)
