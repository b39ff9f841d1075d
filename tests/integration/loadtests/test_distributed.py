"""The demo's plan, shortened (3 rounds, 1 user), from a Locust master with two worker processes on
loopback, run twice (the rerun check): the workers' samples are merged into the same analysis, and the
headline and the check come out of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loadtests.saved import read_saved
from model_store import ModelStore
from tests.integration.loadtests.conftest import only_report, run_loadtests

pytestmark = pytest.mark.integration
ROUNDS = 3


@pytest.fixture(scope="module")
def distributed(exported_store: ModelStore, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("reports")
    done = run_loadtests(
        "compare",
        "--start",
        "--preset",
        "demo",
        "--targets",
        "tfserving-rest,gateway/tfserving-rest",
        "--repetitions",
        str(ROUNDS),
        "--workers",
        "2",
        "--repeat",
        "2",
        "--prewarm-seconds",
        "3",
        "--users",
        "1",
        "--warmup-requests",
        "0",
        "--no-calibration",
        "--independent-seconds",
        "1",
        "--independent-connections",
        "2",
        "--independent-concurrent-seconds",
        "2",  # what the 1-user part overruns comes out of it; under 0.5 s left, a round has none
        "--bootstrap",
        "100",
        "--store",
        str(exported_store.root),
        "--out",
        str(out),
        timeout=400,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout, only_report(out)


@pytest.fixture(scope="module")
def results(distributed: tuple[str, Path]) -> dict[str, Any]:
    return read_saved(distributed[1], ("results.json",)).flat()


def test_both_workers_sent_the_measured_requests(results: dict[str, Any]) -> None:
    assert results["generator"]["mode"] == "master with 2 local workers"
    rounds = {(s["target"], s["step"]): set() for s in results["steps"]}
    for s in results["steps"]:
        rounds[(s["target"], s["step"])].add(s["rep"])
        assert s["requests"] > 0 and s["error_count"] == 0, s["target"]
    assert rounds[("tfserving-rest", "1 user")] == set(range(ROUNDS))
    worker_cpu = [s["generator_cpu"].get("workers_percent") or {} for s in results["steps"]]
    assert any(len(cpu) == 2 for cpu in worker_cpu), "two workers reported"


def test_the_headline_and_the_rerun_check(distributed: tuple[str, Path], results: dict[str, Any]) -> None:
    figures = {f["id"]: f for f in results["headline"]["figures"]}
    cost = figures["gateway cost: tfserving-rest | throughput | 2 connections, independent client"]
    assert cost["rounds"] == ROUNDS and cost["low"] <= cost["value"] <= cost["high"]
    added = figures["gateway cost: tfserving-rest | added p50 latency | 1 user, independent client"]
    assert added["kind"] == "difference" and added["rounds"] == ROUNDS
    harness = figures["harness check: tfserving-rest | Locust p50 / independent client p50 | 1 user"]
    assert harness["rounds"] == ROUNDS, "the independent client measured in every round"
    check = results["reproducibility"]
    assert check["passes"] == 2 and len(check["headlines"]) == 2
    assert {row["id"] for row in check["against_first"][0]} == set(figures)
    stdout, folder = distributed
    assert "Rerun check: 2 runs of the same plan" in stdout and "Findings (" in stdout
    assert "each holds other" in stdout
    assert (folder / "raw-2" / "samples.json").is_file()
    assert "## Headline" in (folder / "report.md").read_text()
