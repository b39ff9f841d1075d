"""Load-test fixtures: ``python -m loadtests`` and Locust always run as subprocesses.

Locust patches the standard library with gevent when imported, so it never runs inside pytest's process.
``exported_store`` (one short real export) comes from ``tests/integration/conftest.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def run_loadtests(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtests", *args],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def only_report(folder: Path) -> Path:
    reports = [path for path in folder.iterdir() if path.is_dir()]
    assert len(reports) == 1, reports
    return reports[0]
