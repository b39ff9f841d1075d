"""``python -m serving up | status | down`` as a user runs it, on free loopback ports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exporters.export import HANDLER_FILE, build_mar
from model_store import ModelStore
from model_store.checksums import combined_sha256, sha256_file
from serving.process import all_records, group_members
from tests.support import serving_environment, serving_settings

pytestmark = pytest.mark.integration


def _cli(settings_env: dict[str, str], *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **settings_env},
        check=False,
    )


def _environment(store: Path, run_dir: Path) -> tuple[dict[str, str], Path]:
    return serving_environment(serving_settings(store, run_dir)), run_dir


def test_up_status_down_leaves_nothing_running(exported_store: ModelStore, tmp_path: Path) -> None:
    env, run_dir = _environment(exported_store.root, tmp_path / "run")
    try:
        up = _cli(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        status = _cli(env, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "torchserve: READY" in status.stdout and "tfserving: READY" in status.stdout
        assert "triton: READY" in status.stdout, status.stdout  # the three stacks of `make serve`
        assert "{'1': 'READY'}" in status.stdout and "{'1': 'AVAILABLE'}" in status.stdout
        if shutil.which("tensorflow_model_server") is None:
            assert "stand-in, not TensorFlow Serving" in status.stdout
        if shutil.which("prometheus") is not None:  # up starts it after the servers; status shows its targets
            assert "prometheus: READY" in status.stdout, status.stdout
            for job in ("prometheus", "tfserving", "torchserve", "triton"):  # the gateway is not running here
                assert re.search(rf"target {job} \S+: up$", status.stdout, re.MULTILINE), status.stdout
        groups = [record.pid for record in all_records(run_dir)]
        assert len(groups) == (4 if shutil.which("prometheus") else 3)
    finally:
        down = _cli(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert all(group_members(pgid) == [] for pgid in groups)
    assert _cli(env, "status").returncode == 1  # nothing running any more


def _store_with_broken_handler(source: ModelStore, root: Path) -> Path:
    """A copy of the store whose .mar handler cannot be imported (its checksum re-recorded)."""
    shutil.copytree(source.root, root)
    version_dir = root / source.model_name / "1"
    handler = root / "broken" / "mnist_handler.py"
    handler.parent.mkdir()
    source_text = HANDLER_FILE.read_text().replace(
        "from __future__ import annotations\n",
        "from __future__ import annotations\n\nimport module_that_does_not_exist\n",
    )
    handler.write_text(source_text)
    build_mar(
        source.model_name, 1, version_dir / "torchscript" / "model.pt", version_dir / "torchserve", handler
    )
    record = json.loads((version_dir / "version.json").read_text())
    artifact = record["artifacts"]["torchserve_mar"]
    artifact["files"] = {artifact["path"]: sha256_file(version_dir / artifact["path"])}
    artifact["sha256"] = combined_sha256(artifact["files"])
    (version_dir / "version.json").write_text(json.dumps(record))
    return root


def test_up_fails_fast_on_a_broken_archive(exported_store: ModelStore, tmp_path: Path) -> None:
    store = _store_with_broken_handler(exported_store, tmp_path / "store")
    env, run_dir = _environment(store, tmp_path / "run")
    try:
        up = _cli(env, "up", "--skip", "tfserving", "--timeout", "90")
    finally:
        _cli(env, "down")
    assert up.returncode == 1
    assert "could not start a model worker" in up.stderr
    assert "module_that_does_not_exist" in up.stderr
    assert "stopped what had started" in up.stderr
    assert all_records(run_dir) == []


def test_up_without_a_model_says_how_to_build_one(tmp_path: Path) -> None:
    env, _ = _environment(tmp_path / "empty-store", tmp_path / "run")
    up = _cli(env, "up", timeout=60)
    assert up.returncode == 1
    assert "make demo" in up.stderr


def test_up_without_prometheus_says_so_and_serves(exported_store: ModelStore, tmp_path: Path) -> None:
    env, run_dir = _environment(exported_store.root, tmp_path / "run")
    env["SERVING_PROMETHEUS_BINARY"] = str(tmp_path / "no-prometheus")
    try:
        up = _cli(env, "up", "--skip", "torchserve", "--skip", "triton")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "warning: prometheus not started" in up.stderr and "not installed" in up.stderr
        assert "tfserving: ready" in up.stdout and "prometheus: NOT STARTED" in up.stdout
        assert [record.name for record in all_records(run_dir)] == ["tfserving"]
    finally:
        down = _cli(env, "down")
    assert down.returncode == 0, down.stdout + down.stderr
