"""The soak's routing file (parsed by the gateway's own parser) and its phase bookkeeping; no servers."""

from __future__ import annotations

import json

import pytest

from gateway.router import RetryBudget
from gateway.routing import RoutingTable
from loadtests.soak import EDITED_WEIGHTS, WEIGHTS, Outcome, Timeline, phase_table, routing
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
