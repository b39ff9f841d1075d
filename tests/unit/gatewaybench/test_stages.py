"""The stage breakdown's arithmetic, on recorded wrapper totals (no gateway, no server)."""

from __future__ import annotations

import pytest

from gatewaybench.stages import STAGES, exclusive_stages, stage_lines

# Nested thread-CPU totals (ns) for 4 requests, as the wrappers add them up: the backend call inside
# the adapter, inside routing (with the attempt's metrics), inside the request.
RECORDED = {
    "total": 4_000_000,
    "decode": 600_000,
    "gateway": 2_000_000,
    "backend": 1_400_000,
    "send": 1_000_000,
    "request_metrics": 200_000,
    "attempt_metrics": 120_000,
}


def test_each_stage_is_its_own_time_and_together_they_are_the_total() -> None:
    stages = exclusive_stages(RECORDED, 4)
    assert stages == pytest.approx(
        {
            "send": 250.0,
            "adapter": 100.0,  # backend - send
            "routing": 120.0,  # gateway - backend - attempt metrics
            "metrics": 80.0,  # request + attempt metrics
            "decode": 150.0,
            "rest": 300.0,  # total - decode - gateway - request metrics
        }
    )
    assert sum(stages.values()) == pytest.approx(RECORDED["total"] / 4 / 1000)
    assert [key for key, _ in STAGES] == list(stages)


def test_no_requests_is_an_error_not_a_division_by_zero() -> None:
    with pytest.raises(ValueError, match="no requests"):
        exclusive_stages(RECORDED, 0)


def test_the_printed_lines_give_each_stage_its_share_and_the_floor_beside_the_total() -> None:
    result = {"gateway_us": 1000.0, "floor_us": 400.0, "stages_us": exclusive_stages(RECORDED, 4)}
    lines = stage_lines(result)  # as a report written before the instant backend was measured
    assert len(lines) == len(STAGES) + 1
    assert lines[0].split() == [
        "250.0",
        "µs",
        "25%",
        "the",
        "backend",
        "call",
        "(libcurl:",
        "send,",
        "wait,",
        "receive)",
    ]
    assert "1000.0 µs" in lines[-1] and "400.0 µs (2.5x)" in lines[-1]


def test_the_instant_backend_figures_follow_the_total_with_their_ratio_when_measured() -> None:
    result = {
        "gateway_us": 1000.0,
        "floor_us": 400.0,
        "stages_us": exclusive_stages(RECORDED, 4),
        "instant_backend_us": {"gateway": 150.0, "floor": 50.0},
    }
    lines = stage_lines(result)
    assert len(lines) == len(STAGES) + 2
    assert lines[-1].split()[:2] == ["150.0", "µs"]
    assert "instant backend" in lines[-1] and "50.0 µs (3.0x)" in lines[-1]
