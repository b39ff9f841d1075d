"""The soak's routing file (parsed by the gateway's own parser) and its phase bookkeeping; no servers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.router import RetryBudget
from gateway.routing import RoutingTable
from gatewaybench.soak import EDITED_WEIGHTS, WEIGHTS, Outcome, Timeline, phase_table, render, routing
from model_store import MODEL_NAME


@pytest.mark.parametrize("clients", [1, 4, 9])
def test_every_client_stuck_on_one_failing_backend_may_fail_over(clients: int) -> None:
    for weights in (WEIGHTS, EDITED_WEIGHTS):
        document = json.dumps(routing(weights, clients)).encode()
        route = RoutingTable.loads(document, "soak", known_backends=weights).models[MODEL_NAME]
        assert route.failover and route.backends == weights
        budget = RetryBudget(route.retry_budget)
        for _ in range(clients):
            budget.__enter__()  # every client's request is in flight...
        granted = [budget.try_acquire() for _ in range(clients)]  # ...and fails at the same moment
        assert granted == [True] * clients
        assert route.retry_budget.min_concurrent >= 3  # never below the gateway's default floor


def test_a_request_belongs_to_the_phase_in_which_it_started() -> None:
    timeline = Timeline()
    timeline.begin("baseline", 0.0)
    timeline.begin("kill torchserve", 10.0)
    outcomes = [Outcome(9.97, 0.03, 503, "503 unavailable"), Outcome(10.5, 0.01, 200, "")]
    rows = {row["phase"]: row for row in phase_table(outcomes, timeline)}
    assert rows["baseline"]["failed"] == 1 and rows["baseline"]["causes"] == {"503 unavailable": 1}
    assert rows["kill torchserve"]["requests"] == 1 and rows["kill torchserve"]["failed"] == 0


SOAK_REPORT: dict[str, Any] = {
    "seconds": 60.0,
    "clients": 4,
    "phases": [
        {"phase": "baseline", "requests": 120, "failed": 0, "causes": {}, "p50_ms": 2.1, "p99_ms": 9.8},
        {
            "phase": "kill torchserve",
            "requests": 80,
            "failed": 2,
            "causes": {"timeout": 1, "HTTP 503 | upstream": 1},
            "p50_ms": 3.0,
            "p99_ms": 40.2,
        },
    ],
    "footprint": {"warm": {"rss_mib": 301.25, "fds": 40}, "end": {"rss_mib": 305.0, "fds": 41}},
    "targets": [
        {"target": "no failed valid request", "met": False, "measured": "2 of 200"},
        {"target": "descriptors", "met": True, "measured": "+1"},
    ],
    "notes": ["TorchServe restarted in 14 s"],
}
"""A soak's report as soak.json holds it (made up: a short run in which two requests failed)."""


def test_the_report_has_a_row_per_phase_and_a_verdict_per_target() -> None:
    lines = render(SOAK_REPORT).splitlines()
    assert lines[0] == "# Fault soak: 60 s, 4 clients"
    assert "| baseline | 120 | 0 | - | 2.1 | 9.8 |" in lines
    assert "| kill torchserve | 80 | 2 | timeout: 1, HTTP 503 \\| upstream: 1 | 3.0 | 40.2 |" in lines
    assert "| no failed valid request | MISS | 2 of 200 |" in lines and "| descriptors | PASS | +1 |" in lines
    assert "RSS 301.2 MiB after warm-up, 305.0 MiB at the end; open descriptors 40 -> 41." in " ".join(lines)
    assert lines[-1] == "Notes: TorchServe restarted in 14 s"
