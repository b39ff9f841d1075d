"""k8s/tools/canary.py ``query`` against a real Prometheus: its figures (error rate, p99, per-version share
and failures, shadow agreement) are the recorded series of k8s/monitoring/rules.yml, and they match what the
gateway's own counters say over the same traffic (read here directly, never by the tool)."""

from __future__ import annotations

import io
import time
from contextlib import redirect_stdout
from types import ModuleType
from typing import Any

import pytest
import requests

from gateway.metrics import BUCKETS
from tests.integration.monitoring.conftest import TIMEOUT, MonitoredStack
from tests.k8s.conftest import K8S, load_script

pytestmark = pytest.mark.integration

REQUESTS = 200
"""Through the 90/10 version split (and each one shadowed)."""
FAILING = 16
"""Sent with ``X-Gateway-Backend: v2-rest``, a backend at a closed port: each answers 5xx."""


@pytest.fixture(scope="module")
def canary() -> ModuleType:
    return load_script(K8S / "tools" / "canary.py")


def _bucket(seconds: float) -> int:
    """Index of the gateway histogram bucket holding ``seconds``."""
    return next((index for index, edge in enumerate(BUCKETS) if seconds <= edge), len(BUCKETS))


def _gateway_counters(stack: MonitoredStack, canary: ModuleType) -> dict[Any, float]:
    return dict(canary.parse(requests.get(f"{stack.gateway.base}/metrics", timeout=TIMEOUT).text))


def _requests_counted(stack: MonitoredStack, canary: ModuleType) -> float:
    return sum(
        value
        for (name, labels), value in _gateway_counters(stack, canary).items()
        if name == "gateway_requests_total" and dict(labels).get("model") == "mnist"
    )


def _answered_by_version(change: dict[Any, float]) -> dict[str, float]:
    """Requests answered 200 per model version. Not upstream attempts: with micro-batching on, one
    attempt carries several requests, and version 1's (nine in ten) merge more often than version 2's,
    which once read as a 21 % canary share."""
    answered: dict[str, float] = {"1": 0.0, "2": 0.0}
    for (name, labels), value in change.items():
        tags = dict(labels)
        if name == "gateway_requests_total" and tags.get("model") == "mnist" and tags.get("status") == "200":
            answered[tags["version"]] = answered.get(tags["version"], 0.0) + value
    return answered


def test_canary_figures_come_from_prometheus(monitored_stack: MonitoredStack, canary: ModuleType) -> None:
    stack = monitored_stack
    before = _gateway_counters(stack, canary)  # what Prometheus's first sample holds too (warm_up)
    answers = stack.send(REQUESTS) + stack.send(FAILING, backend="v2-rest")
    assert answers.count(200) == REQUESTS and all(code >= 500 for code in answers[REQUESTS:]), answers
    total = stack.warm_requests + len(answers)
    # Each worker writes its queued metric updates every 0.1 s (gateway.metric_writer).
    stack.wait_for(
        "the gateway's workers counted every request", lambda: _requests_counted(stack, canary) == total
    )
    after = _gateway_counters(stack, canary)
    truth = canary.summarize(canary.delta(before, after), "mnist")  # the gateway's own counters
    assert truth.requests == REQUESTS + FAILING
    assert truth.error_rate == pytest.approx(FAILING / (REQUESTS + FAILING))

    stack.wait_for("every request scraped", lambda: stack.scraped_requests() == total)
    # rate() extrapolates each series by up to a scrape interval at its start, differently per series;
    # ten seconds of samples keep that under 6 % (scrapes every 0.5 s).
    time.sleep(max(0.0, stack.first_scrape_at + 10.0 - time.time()))
    scraped_at = time.time()
    stack.wait_for(  # the rules ran after the last scrape
        "the rules evaluated after the last scrape",
        lambda: all(
            float(series["value"][0]) > scraped_at + 0.6
            for series in stack.query('model:gateway_requests:rate5m{model="mnist"}')
        ),
    )
    found = canary.recorded(canary.prometheus_query(stack.prometheus_url, TIMEOUT), "mnist")

    assert found.error_ratio == pytest.approx(truth.error_rate, rel=0.1)
    assert truth.p99_s is not None and found.p99_s is not None
    # The same bucket, or the next one: rate() extrapolates each bucket series a little differently, which
    # can move the 99th rank across a bucket edge; within a bucket both interpolate alike.
    assert abs(_bucket(found.p99_s) - _bucket(truth.p99_s)) <= 1, (found.p99_s, truth.p99_s)
    assert set(found.p99_by_backend_s) == set(truth.p99_by_backend_s)
    answered = _answered_by_version(canary.delta(before, after))
    share_2 = answered["2"] / (answered["1"] + answered["2"])
    assert 0.03 < share_2 < 0.2, answered  # the 10 % canary, within what chance allows over 200 requests
    for version in ("1", "2"):
        figures = found.versions[version]
        assert figures.failure_ratio == pytest.approx(truth.failure_rate(version), abs=0.01)
        assert figures.error_ratio is not None and figures.share is not None
    [(pair, agreement)] = found.agreement.items()
    assert pair == "embedded-pytorch vs tfserving-rest"
    assert truth.agreement is not None and agreement == pytest.approx(truth.agreement, abs=0.01)

    # The command as a person runs it: the failing requests break the 1 % error threshold.
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = canary.main(["query", "--prometheus", stack.prometheus_url, "--max-error-rate", "0.01"])
    assert code == 1, printed.getvalue()
    assert "client 5xx rate" in printed.getvalue() and "version 2:" in printed.getvalue()


def test_every_component_is_a_target_that_is_up(monitored_stack: MonitoredStack) -> None:
    from serving.prometheus import launcher

    health = launcher.target_health(monitored_stack.settings)
    jobs = {name.split()[0]: state for name, state in health.items()}
    assert jobs == {"gateway": "up", "prometheus": "up", "tfserving": "up"}, health
