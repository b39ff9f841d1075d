"""What bench-gateway prints of its wrk cross-check (recorded values; no servers, no wrk)."""

from __future__ import annotations

from loadtests.gateway_bench import _crosscheck_line


def test_the_wrk_point_is_printed_beside_the_harness_own_windows() -> None:
    check = {
        "tool": "wrk",
        "target": "gateway/tfserving-rest",
        "p50_ms": 1.02,
        "ours_p50_ms": [1.0829, 1.1018],
    }
    line = _crosscheck_line(check)
    assert "gateway/tfserving-rest at 1 connection: p50 1.020 ms" in line
    assert "(this harness at 1 client: 1.083, 1.102 ms)" in line


def test_a_skipped_cross_check_says_why_and_none_prints_nothing() -> None:
    assert "skipped (wrk is not installed" in _crosscheck_line({"skipped": "wrk is not installed"})
    assert _crosscheck_line(None) == ""
