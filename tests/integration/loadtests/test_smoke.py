"""A few seconds of the real comparison: TorchServe (real), the TF Serving stand-in, the gateway, Locust."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from loadtests.saved import read_saved
from loadtests.targets import ALL_TARGETS
from model_store import ModelStore
from serving.process import process_group_alive
from tests.integration.loadtests.conftest import only_report, run_loadtests

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smoke(exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("reports")
    done = run_loadtests(
        "compare",
        "--start",
        "--preset",
        "smoke",
        "--store",
        str(exported_store.root),
        "--out",
        str(out),
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout, only_report(out)


@pytest.fixture(scope="module")
def results(smoke: tuple[str, Path]) -> dict[str, Any]:
    saved = read_saved(smoke[1], ("results.json",))
    assert saved.kind == "comparison"
    return saved.flat()


def test_no_server_failed_and_every_requested_target_was_measured(results: dict[str, Any]) -> None:
    """A server that starts but never gets ready must fail the run here, not drop out of it quietly."""
    assert results["servers"]["failed"] == {}, results["servers"]["failed"]
    assert {"torchserve", "tfserving", "nullserver", "gateway"} <= set(results["servers"]["started"])
    requested = set(results["targets"])
    assert {t.name for t in ALL_TARGETS} <= requested  # the smoke preset asks for every target
    skipped = {
        name: info.get("skipped_reason") for name, info in results["targets"].items() if not info["available"]
    }
    assert skipped == {}
    measured = {row["target"] for row in results["summary"] if row["requests"] > 0}
    assert measured == requested


def test_every_available_target_answered_correctly_under_load(results: dict[str, Any]) -> None:
    available = [name for name, info in results["targets"].items() if info["available"]]
    assert "tfserving-rest" in available and "gateway/embedded-pytorch" in available
    rows = {row["target"]: row for row in results["summary"]}
    for name in available:
        assert rows[name]["rps"]["value"] > 0, name
        assert rows[name]["errors"] == 0, (name, rows[name]["error_reasons"])
        assert rows[name]["requests"] >= 20, name
    assert results["failures_outside_windows"] == {}


def test_the_run_records_its_environment_and_names_the_stand_in(results: dict[str, Any]) -> None:
    assert results["tfserving"]["official"] is False
    assert "stand-in" in results["tfserving"]["implementation"]
    environment = results["environment"]
    assert environment["cores"] >= 1 and environment["libraries"]["locust"]
    assert environment["pinning"]["mode"] in ("auto", "off")
    assert set(results["calibration"]) == {"rest", "grpc"}


def test_report_files_exist_and_parse(smoke: tuple[str, Path]) -> None:
    stdout, folder = smoke
    markdown = (folder / "report.md").read_text()
    assert "| target | step |" in markdown and "stand-in" in markdown
    page = (folder / "report.html").read_text()
    HTMLParser().feed(page)
    assert page.count("data:image/png;base64,") >= 3
    assert f"Report: {folder / 'report.html'}" in stdout
    assert "req/s [95% CI]" in stdout  # the summary table


def test_the_report_holds_no_torchserve_key(smoke: tuple[str, Path]) -> None:
    """TorchServe ran with token auth and wrote key_file.json into the run's folder: it must be gone."""
    _, folder = smoke
    assert list((folder / "servers").rglob("*")), "no server folders kept: the check proves nothing"
    assert not list(folder.rglob("key_file.json"))


def test_everything_it_started_is_stopped(smoke: tuple[str, Path], results: dict[str, Any]) -> None:
    stdout, _ = smoke
    assert results["cleanup"]["leftovers"] == []
    pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", stdout)]
    assert len(pids) >= 4  # TorchServe, the stand-in, the null endpoints, the gateway
    assert not [pid for pid in pids if process_group_alive(pid)]


def test_every_target_had_its_capacity_searched_and_the_report_opens_with_it(
    smoke: tuple[str, Path], results: dict[str, Any]
) -> None:
    capacity = results["slo_capacity"]
    assert capacity["schema"] == "loadtests-capacity/1" and capacity["slo"]["slo_ms"] == 10.0
    measured = {row["target"] for row in results["summary"] if row["requests"] > 0}
    assert set(capacity["targets"]) == measured  # one step each in the smoke preset
    for step in capacity["steps"]:
        assert step["verdict"]["outcome"] in ("pass", "fail", "generator")
        assert step["offered_rps"] > 0 and step["users"] >= 8
    stdout, folder = smoke
    page = (folder / "report.html").read_text()
    assert page.index("<h2>Capacity under p99 ≤ 10 ms</h2>") < page.index("<h2>This run</h2>")
    assert "Capacity under p99 <= 10 ms (open loop):" in stdout
