"""Where a comparison ran: machine, load, libraries, servers, device — recorded in every result file."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

__all__ = ["describe_machine", "library_versions", "load_average"]

LIBRARIES = (
    "locust",
    "gevent",
    "geventhttpclient",
    "grpcio",
    "protobuf",
    "numpy",
    "matplotlib",
    "tensorflow",
    "tensorflow-serving-api",
    "torch",
    "torchserve",
    "torch-model-archiver",
    "flask",
    "granian",
    "gunicorn",
    "pycurl",
    "urllib3",
)


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> float:
    return round(psutil.virtual_memory().total / 1024**3, 1)


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def load_average() -> list[float]:
    with contextlib.suppress(OSError):
        return [round(value, 2) for value in os.getloadavg()]
    return []


def _device() -> dict[str, Any]:
    from serving.torchserve.launcher import detect_gpus

    gpus = detect_gpus()
    names: list[str] = []
    if gpus:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            listing = subprocess.run(
                ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False
            )
            names = [line for line in listing.stdout.splitlines() if line.startswith("GPU ")]
    return {"kind": "gpu" if gpus else "cpu", "gpus": gpus, "gpu_names": names}


def _java() -> str | None:
    from serving.errors import ServingError
    from serving.java import find_java

    try:
        java = find_java()
    except ServingError:
        return None
    return f"{java.major} ({java.origin})"


def _git(repo: Path) -> dict[str, Any]:
    def run(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip()

    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return {"commit": run("rev-parse", "HEAD") or None, "dirty": bool(run("status", "--porcelain"))}
    return {"commit": None, "dirty": None}


def describe_machine(repo: Path) -> dict[str, Any]:
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cpus": affinity,
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_at_start": load_average(),
        "device": _device(),
        "java": _java(),
        "libraries": library_versions(),
        "git": _git(repo),
    }
