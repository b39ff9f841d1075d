"""``gateway_in_flight_requests``: the per-pod signal of the in-flight autoscaler (k8s monitoring)."""

from __future__ import annotations

import re
from collections.abc import Callable

from flask import Flask

from tests.unit.gateway.conftest import FakeBackend

BODY = {"instances": [[0.0] * 784]}


def _gauge(text: str) -> float:
    found = re.search(r"^gateway_in_flight_requests (\S+)$", text, re.MULTILINE)
    assert found, text
    return float(found.group(1))


def test_counts_the_requests_being_served(
    make_app: Callable[..., Flask], fakes: dict[str, FakeBackend]
) -> None:
    app = make_app()
    client = app.test_client()
    seen: list[float] = []
    fakes["tf"].hook = lambda: seen.append(_gauge(app.test_client().get("/metrics").get_data(as_text=True)))
    assert client.post("/v1/models/mnist:predict?backend=tf", json=BODY).status_code == 200
    assert seen == [1.0]  # read while the backend call was running
    assert _gauge(client.get("/metrics").get_data(as_text=True)) == 0.0
    fakes["tf"].error = RuntimeError("down")
    fakes["tf"].hook = None
    client.post("/v1/models/mnist:predict?backend=tf", json=BODY)
    assert _gauge(client.get("/metrics").get_data(as_text=True)) == 0.0  # failed ones leave it too
