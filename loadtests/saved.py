"""Every run's saved JSON in one envelope: ``{"kind", "version", "environment", "data"}``.

A comparison (``results.json``), a sweep (``sweep.json``), a gateway bench (``results.json``) and a soak
(``soak.json``) all say what they are the same way, so a reader (``python -m loadtests report``,
``rerun-check``, ``python -m gatewaybench report``, a user's CI script) dispatches on ``kind`` instead of
guessing: ``environment`` is the machine and pinning the run measured on, ``data`` everything else
(documented per kind in docs/benchmarking.md). Runs saved before the envelope are still read: their
kind is told from the field they used then (``format``, ``schema``, or a soak's ``footprint``), as
version 1. A file is written whole or not at all.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["KINDS", "Saved", "read_saved", "write_saved"]

KINDS: dict[str, int] = {"comparison": 2, "sweep": 2, "gateway-bench": 2, "soak": 2}
"""Each kind of saved run and the version of its ``data`` that this code writes."""
_FORMER = ("format", "schema")
"""How a run said what it was before the envelope (dropped from ``data`` now: ``kind`` says it)."""


@dataclass(frozen=True)
class Saved:
    path: Path
    kind: str
    version: int
    environment: dict[str, Any]
    data: dict[str, Any]

    def flat(self) -> dict[str, Any]:
        """``data`` with ``environment`` beside its other fields: what the report renderers read."""
        return {**self.data, "environment": self.environment}


def write_saved(path: Path, kind: str, results: Mapping[str, Any]) -> None:
    """Write ``results`` (a run's figures, ``environment`` among them) in the envelope, atomically."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of saved run {kind!r} (known: {', '.join(KINDS)})")
    data = {key: value for key, value in results.items() if key != "environment" and key not in _FORMER}
    envelope = {
        "kind": kind,
        "version": KINDS[kind],
        "environment": dict(results.get("environment") or {}),
        "data": data,
    }
    text = json.dumps(envelope, indent=1)  # before any file is opened: a failure leaves nothing behind
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as part:
        part.write(text)
    os.replace(part.name, path)


def read_saved(run: Path, files: Sequence[str]) -> Saved:
    """The run saved at ``run``: that JSON file, or the first of ``files`` in that folder."""
    saved = _locate(run, files)
    try:
        raw: Any = json.loads(saved.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{saved} is not readable JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{saved} is not a saved run (its JSON is not an object)")
    environment = raw.get("environment")
    environment = dict(environment) if isinstance(environment, dict) else {}
    if isinstance(raw.get("kind"), str) and isinstance(raw.get("data"), dict):
        return Saved(saved, raw["kind"], int(raw.get("version") or 0), environment, dict(raw["data"]))
    data = {key: value for key, value in raw.items() if key != "environment"}
    return Saved(saved, _former_kind(raw), 1, environment, data)


def _locate(run: Path, files: Sequence[str]) -> Path:
    if run.is_file():
        return run
    if not run.is_dir():
        raise ValueError(f"{run} does not exist")
    found = [run / name for name in files if (run / name).is_file()]
    if not found:
        raise ValueError(f"{run} holds none of {', '.join(files)}: not the folder of a saved run")
    return found[0]


def _former_kind(raw: Mapping[str, Any]) -> str:
    named = str(raw.get("format") or raw.get("schema") or "")
    if named.startswith("loadtests-results/"):
        return "comparison"
    if named.startswith("loadtests-sweep/"):
        return "sweep"
    if named.startswith("gateway-bench/"):
        return "gateway-bench"
    if "footprint" in raw:
        return "soak"
    return named
