"""The fault soak, short: 40 s of real load through the gateway while TorchServe is killed and
restarted, the TF server frozen, keys renewed, the routing file broken and a version published."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtests.saved import read_saved
from model_store import ModelStore
from serving.process import process_group_alive
from tests.integration.loadtests.conftest import REPO, only_report

pytestmark = pytest.mark.integration
STEPS = (
    "kill torchserve",
    "restart torchserve",
    "torchserve back",
    "stop tfserving",
    "continue tfserving",
    "rotate torchserve key",
    "edit routing",
    "break routing",
    "fix routing",
    "publish version",
)


@pytest.fixture(scope="module")
def soak(exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, Path]:
    out = tmp_path_factory.mktemp("soak")
    command = [sys.executable, "-m", "gatewaybench", "soak", "--seconds", "40", "--slow", "10"]
    command += ["--store", str(exported_store.root), "--out", str(out)]
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # on a timeout the whole group goes, servers included
    )
    try:
        stdout, _ = process.communicate(timeout=420)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)  # the soak stops what it started on SIGTERM too
        stdout, _ = process.communicate(timeout=60)
        pytest.fail("the soak did not finish within 7 minutes:\n" + stdout[-4000:])
    return process.returncode, stdout, only_report(out)


@pytest.fixture(scope="module")
def report(soak: tuple[int, str, Path]) -> dict[str, Any]:
    saved = read_saved(soak[2], ("soak.json",))
    assert saved.kind == "soak"
    return saved.flat()


def test_every_fault_happened_and_every_target_was_met(
    soak: tuple[int, str, Path], report: dict[str, Any]
) -> None:
    code, stdout, _ = soak
    phases = [row["phase"] for row in report["phases"]]
    assert [step for step in STEPS if step not in phases] == [], phases
    assert not [note for note in report["notes"] if "failed" in note], report["notes"]
    missed = [t for t in report["targets"] if not t["met"]]
    assert missed == [], (missed, stdout[-3000:])
    assert code == 0, stdout[-3000:]
    assert sum(row["requests"] for row in report["phases"]) > 500
    assert report["bad_requests"]["sent"] > 100


def test_the_report_is_readable_and_holds_no_key(soak: tuple[int, str, Path]) -> None:
    _, stdout, folder = soak
    text = (folder / "soak.md").read_text()
    assert "| phase | requests | failed |" in text and "| target | met | measured |" in text
    assert f"Report: {folder / 'soak.md'}" in stdout
    assert not list(folder.rglob("key_file.json"))
    assert not (folder / "store").exists()  # the private copy of the store is removed


def test_everything_it_started_is_stopped(soak: tuple[int, str, Path]) -> None:
    _, stdout, _ = soak
    pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", stdout)]
    assert len(pids) >= 3, stdout[-2000:]
    assert not [pid for pid in pids if process_group_alive(pid)]
    assert "stopped (nothing remains)" in stdout
