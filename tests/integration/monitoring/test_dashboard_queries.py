"""Every query of the Grafana dashboard (k8s/components/monitoring) parses and returns series from a real
Prometheus scraping a real gateway with the rules of k8s/monitoring/rules.yml."""

from __future__ import annotations

import time
from types import ModuleType

import pytest

from tests.integration.monitoring.conftest import MonitoredStack
from tests.k8s.conftest import K8S, load_script

pytestmark = pytest.mark.integration


def test_every_panel_query_returns_series(monitored_stack: MonitoredStack) -> None:
    monitoring: ModuleType = load_script(K8S / "tools" / "monitoring.py")
    queries = monitoring.dashboard_queries(monitoring.dashboard())
    assert len(queries) >= len(monitoring.PANELS)
    codes = monitored_stack.send(40) + monitored_stack.send(2, backend="v2-rest")
    assert codes.count(200) == 40
    empty: list[str] = []
    deadline = time.monotonic() + 20
    while True:
        # query() asserts that Prometheus accepted the expression (it parses and evaluates)
        empty = [f"{title}: {expr}" for title, expr in queries if not monitored_stack.query(expr)]
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not empty, "no series for:\n" + "\n".join(empty)
