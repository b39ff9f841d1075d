"""Ctrl-C in the middle of a comparison stops Locust and every server the run started."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
import requests

from model_store import ModelStore
from serving.process import process_group_alive
from tests.integration.loadtests.conftest import REPO

pytestmark = pytest.mark.integration


def _standin_predictions(pid: int) -> float:
    """Predict requests the TF Serving stand-in has answered, from its own Prometheus counter."""
    try:
        parent = psutil.Process(pid)
        processes = [parent, *parent.children(recursive=True)]
        ports = {
            c.laddr.port
            for p in processes
            for c in p.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN
        }
    except psutil.Error:
        return 0.0
    for port in sorted(ports):
        try:
            text = requests.get(f"http://127.0.0.1:{port}/monitoring/prometheus/metrics", timeout=2).text
        except requests.RequestException:
            continue  # the gRPC port
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("tfserving_standin_requests_total{") and 'api="predict"' in line
        )
    return 0.0


def test_ctrl_c_stops_everything(
    exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory
) -> None:
    command = [sys.executable, "-m", "loadtests", "compare", "--start", "--targets", "tfserving-rest"]
    command += ["--no-calibration", "--preset", "smoke", "--step-seconds", "60", "--max-step-seconds", "60"]
    command += ["--store", str(exported_store.root), "--out", str(tmp_path_factory.mktemp("reports"))]
    # A test run started in the background by a shell without job control inherits SIGINT ignored, and
    # so would the run under test: give it the default, as a terminal's Ctrl-C finds it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # reset to SIG_DFL by exec
    try:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []
    fresh: queue.Queue[str] = queue.Queue()

    def pump() -> None:  # reads in its own thread: a silent process cannot block the test
        for line in stdout:
            lines.append(line)
            fresh.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def fail(what: str) -> None:
        pytest.fail(f"{what}:\n{''.join(lines)[-3000:]}")

    try:
        deadline = time.monotonic() + 180
        while True:  # the measured step has begun
            try:
                line = fresh.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                fail("no '[round 1/1]' line within 180 s")
            if line.startswith("[round 1/1]"):
                break
            if process.poll() is not None and fresh.empty():
                fail(f"the run exited with {process.returncode} before measuring")
        standin = [int(pid) for pid in re.findall(r"started .* \(pid (\d+)\)", "".join(lines))]
        assert standin, "the stand-in's pid is not in the output"
        before = _standin_predictions(standin[0])
        deadline = time.monotonic() + 60
        while _standin_predictions(standin[0]) < before + 20:  # Locust is sending now
            if time.monotonic() > deadline:
                fail("Locust sent no requests within 60 s of the step's start")
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        process.wait(60)
        reader.join(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(10)
        stdout.close()
        _kill_what_it_started("".join(lines))  # a failed test leaves no server behind
    output = "".join(lines)
    assert process.returncode == 130, output[-3000:]
    assert "interrupted: stopping everything this run started" in output
    assert "(no process remains)" in output
    pids = [int(pid) for pid in re.findall(r"\(pids? (\d+)", output)]
    assert len(pids) >= 2  # the stand-in and Locust
    assert not [pid for pid in pids if process_group_alive(pid) or _exists(pid)]


def _kill_what_it_started(output: str) -> None:
    """Every process group the run said it started (each server runs in its own), if still alive."""
    for pid in {int(pid) for pid in re.findall(r"\(pids? (\d+)", output)}:
        if process_group_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
