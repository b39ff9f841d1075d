"""TensorFlow Serving for the project: the official binary's launch and config, or the named stand-in.

Importing this package does not import TensorFlow; the stand-in's server modules do, when run.
"""

from serving.tfserving.identity import OFFICIAL_BINARY, SERVED_BY_HEADER, STANDIN_NAME
from serving.tfserving.official import (
    BatchingParameters,
    ConfigFiles,
    ServerCommand,
    TfServingOptions,
    build_command,
    find_official_binary,
    official_command,
    standin_command,
    write_config_files,
)
from serving.tfserving.versioning import VersionPolicy, parse_version_labels

__all__ = [
    "OFFICIAL_BINARY",
    "SERVED_BY_HEADER",
    "STANDIN_NAME",
    "BatchingParameters",
    "ConfigFiles",
    "ServerCommand",
    "TfServingOptions",
    "VersionPolicy",
    "build_command",
    "find_official_binary",
    "official_command",
    "parse_version_labels",
    "standin_command",
    "write_config_files",
]
