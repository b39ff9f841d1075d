"""Helpers shared by test folders: the exporters CLI and server settings on free ports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from serving.ports import free_port
from serving.settings import ENV_PREFIX, PORT_FIELDS, ServingSettings, settings_from_env

QUICK_TRAINING = ["--epochs", "1", "--train-limit", "5000"]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m exporters ...`` in a fresh interpreter, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "exporters", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def serving_settings(store_root: Path, run_dir: Path, **overrides: object) -> ServingSettings:
    """Settings with every port free right now, so tests never collide with a user's servers."""
    ports = {name: free_port() for name in PORT_FIELDS}
    return settings_from_env(environ={}, store_root=store_root, run_dir=run_dir, **ports, **overrides)


def serving_environment(settings: ServingSettings) -> dict[str, str]:
    """The same settings as ``SERVING_*`` variables, for the ``python -m serving`` CLI."""
    names = (*PORT_FIELDS, "store_root", "run_dir")
    return {ENV_PREFIX + name.upper(): str(getattr(settings, name)) for name in names}
