"""Which model versions to serve, and the labels that name them: shared by the stand-in and the config files.

Mirrors TF Serving's ``model_version_policy`` (``latest {num_versions}``, ``all {}``,
``specific {versions}``) and its ``version_labels`` map.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

PolicyKind = Literal["latest", "all", "specific"]
POLICY_KINDS: tuple[PolicyKind, ...] = ("latest", "all", "specific")

_LABEL = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class VersionPolicy:
    """``latest`` serves the ``num_versions`` highest versions; ``specific`` serves ``versions``."""

    kind: PolicyKind = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in POLICY_KINDS:
            raise ValueError(f"unknown version policy {self.kind!r} (one of {', '.join(POLICY_KINDS)})")
        if self.kind == "latest" and self.num_versions < 1:
            raise ValueError("the latest policy needs num_versions >= 1")
        if self.kind == "specific" and not self.versions:
            raise ValueError("the specific policy needs at least one version")
        if any(version < 0 for version in self.versions):
            raise ValueError("model versions are non-negative integers")

    def select(self, on_disk: Iterable[int]) -> set[int]:
        """The versions this policy wants loaded, out of the complete ones found on disk."""
        present = sorted(set(on_disk))
        if self.kind == "all":
            return set(present)
        if self.kind == "specific":
            return set(present) & set(self.versions)
        return set(present[-self.num_versions :])


def parse_version_labels(text: str) -> dict[str, int]:
    """``"stable=1,canary=2"`` → ``{"stable": 1, "canary": 2}``; an empty string gives ``{}``."""
    labels: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, version = item.partition("=")
        name = name.strip()
        if not sep or not _LABEL.match(name) or not version.strip().isdigit():
            raise ValueError(f"bad version label {item!r}: expected LABEL=VERSION, e.g. stable=1")
        if name in labels:
            raise ValueError(f"version label {name!r} given twice")
        labels[name] = int(version)
    return labels


def format_version_labels(labels: Mapping[str, int]) -> str:
    """The inverse of :func:`parse_version_labels`."""
    return ",".join(f"{name}={version}" for name, version in labels.items())


def parse_versions(text: str) -> tuple[int, ...]:
    """``"1,2"`` → ``(1, 2)``."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(f"bad version list {text!r}: expected integers separated by commas") from exc
