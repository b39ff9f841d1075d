"""Ctrl-C in the middle of a comparison stops Locust and every server the run started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from model_store import ModelStore
from serving.process import process_group_alive
from tests.integration.loadtests.conftest import REPO

pytestmark = pytest.mark.integration


def test_ctrl_c_stops_everything(
    exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory
) -> None:
    command = [sys.executable, "-m", "loadtests", "compare", "--start", "--targets", "tfserving-rest"]
    command += ["--no-calibration", "--preset", "smoke", "--step-seconds", "60", "--max-step-seconds", "60"]
    command += ["--store", str(exported_store.root), "--out", str(tmp_path_factory.mktemp("reports"))]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 180
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("[repetition 1/1]") or time.monotonic() > deadline:
                break
        time.sleep(1.0)  # Locust is sending requests now
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(lines) + rest
    assert process.returncode == 130, output[-3000:]
    assert "interrupted: stopping everything this run started" in output
    assert "(no process remains)" in output
    pids = [int(pid) for pid in re.findall(r"\(pids? (\d+)", output)]
    assert len(pids) >= 2  # the stand-in and Locust
    assert not [pid for pid in pids if process_group_alive(pid) or _exists(pid)]


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
