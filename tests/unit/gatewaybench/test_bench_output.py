"""What bench-gateway prints and saves as summary.txt, rendered from a recorded results.json
(``data/bench_results.json``, a real run; no servers, no wrk)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from gatewaybench.bench import summary_text

RECORDED = Path(__file__).parent / "data" / "bench_results.json"


@pytest.fixture
def results() -> dict[str, Any]:
    return json.loads(RECORDED.read_text())


def test_every_backend_has_its_row_of_figures(results: dict[str, Any]) -> None:
    text = summary_text(results)
    for figures in results["figures"]:
        row = next(line for line in text.splitlines() if line.startswith(figures["backend"] + " "))
        cells = row.split()
        assert cells[0] == figures["backend"] and len(cells) == 10
        assert cells[8] == f"{figures['gateway_cpu_ms']:.3f}"  # gateway CPU ms per request


def test_every_target_line_says_pass_or_miss_with_its_floor(results: dict[str, Any]) -> None:
    text = summary_text(results)
    verdicts = re.findall(r"^  (PASS|MISS|not measured) ", text, flags=re.MULTILINE)
    assert verdicts == [
        {True: "PASS", False: "MISS"}.get(line["passed"], "not measured") for line in results["targets"]
    ]
    assert "plain WSGI proxy to tfserving-rest: 0.500 ms, misses too" in text


def test_the_floor_the_stages_and_the_profile_are_printed(results: dict[str, Any]) -> None:
    text = summary_text(results)
    assert "to torchserve-rest CPU 0.483 ms/req at 8 clients" in text
    assert "the gateway's total; the floor proxy, called the same way: 275.0 µs (2.6x)" in text
    assert f"py-spy, {results['profile']['samples']} samples holding the GIL" in text


def test_the_wrk_windows_are_printed_beside_the_harness_windows_around_them(results: dict[str, Any]) -> None:
    results["crosscheck"] = {
        "tool": "wrk",
        "target": "gateway/tfserving-rest",
        "p50_ms": [1.02, 1.0461],
        "ours_p50_ms": [1.0829, 1.1018],
    }
    text = summary_text(results)
    assert "gateway/tfserving-rest at 1 connection, windows interleaved" in text
    assert "p50 1.020, 1.046 ms with wrk, 1.083, 1.102 ms with this harness" in text


def test_an_older_run_prints_its_single_wrk_point(results: dict[str, Any]) -> None:
    ours = [1.0829, 1.1018]
    results["crosscheck"] = {"target": "gateway/tfserving-rest", "p50_ms": 1.02, "ours_p50_ms": ours}
    text = summary_text(results)
    assert "gateway/tfserving-rest at 1 connection: p50 1.020 ms" in text
    assert "(this harness at 1 client: 1.083, 1.102 ms)" in text


def test_what_was_skipped_says_why(results: dict[str, Any]) -> None:
    results["crosscheck"] = {"skipped": "wrk is not installed"}
    results["stages"] = {"skipped": "the stand-in is down"}
    for missing in ("floor", "profile"):
        del results[missing]
    text = summary_text(results)
    assert "Cross-check with wrk: skipped (wrk is not installed)" in text
    assert "The gateway's stages in process: skipped (the stand-in is down)" in text
    assert "floor (plain WSGI proxy" not in text and "py-spy" not in text
