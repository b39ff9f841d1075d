"""Manifest records: what one exported version holds, and the index of all versions.

Each version directory carries its own immutable ``version.json`` (written before the
version is published, so it is atomic with it). The model-level ``manifest.json`` is an
index rebuilt from those records; it never holds facts the version records lack.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ArtifactRecord:
    """One artifact inside a version directory."""

    framework: str  # "tensorflow" or "pytorch"
    format: str  # "saved_model", "torchscript", "torchserve_mar", "reference_outputs"
    path: str  # relative to the version directory ("." is the directory itself)
    files: dict[str, str]  # relative path (to the version directory) -> sha256
    sha256: str  # one digest over ``files``
    size_bytes: int
    test_accuracy: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactRecord:
        return cls(**data)


@dataclass(frozen=True)
class VersionRecord:
    """Everything the store knows about one exported version."""

    model_name: str
    version: int
    created_at: str
    contract: dict[str, Any]
    artifacts: dict[str, ArtifactRecord]
    training: dict[str, Any] = field(default_factory=dict)
    library_versions: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["artifacts"] = {name: asdict(artifact) for name, artifact in self.artifacts.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionRecord:
        fields = dict(data)
        fields["artifacts"] = {
            name: ArtifactRecord.from_dict(artifact) for name, artifact in data["artifacts"].items()
        }
        return cls(**fields)


def build_index(model_name: str, records: list[VersionRecord]) -> dict[str, Any]:
    """The model-level manifest: every version, newest last."""
    ordered = sorted(records, key=lambda record: record.version)
    return {
        "model_name": model_name,
        "latest_version": ordered[-1].version if ordered else None,
        "versions": {str(record.version): record.to_dict() for record in ordered},
    }
