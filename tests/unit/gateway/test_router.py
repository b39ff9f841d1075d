"""Router policies with fake backends (see conftest.FakeBackend): no network, no models."""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.backends import BackendPool
from gateway.errors import DeadlineExceeded, InvalidInput, NotFound, Unavailable
from gateway.router import HealthCache, InlineExecutor, RetryBudget, Router, Selection, pick_weighted
from gateway.routing import (
    ModelRoute,
    RetryBudgetConfig,
    RoutingSource,
    RoutingTable,
    ShadowConfig,
    default_table,
)
from gateway.settings import Settings
from tests.unit.gateway.conftest import FakeBackend

IMAGES = np.zeros((2, 28, 28), dtype=np.float32)


class Recorder:
    """A RouterObserver that keeps every event."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def attempt(self, *args: Any) -> None:
        self.events.append(("attempt", *args))

    def failover(self, *args: Any) -> None:
        self.events.append(("failover", *args))

    def budget_exhausted(self, *args: Any) -> None:
        self.events.append(("budget", *args))

    def shadow(self, *args: Any) -> None:
        self.events.append(("shadow", *args))

    def circuit(self, *args: Any) -> None:
        self.events.append(("circuit", *args))

    def circuit_rejected(self, *args: Any) -> None:
        self.events.append(("circuit_rejected", *args))

    def batch(self, *args: Any) -> None:
        self.events.append(("batch", *args))

    def queue_delay(self, *args: Any) -> None:
        self.events.append(("queue_delay", *args))


def make_router(fakes: dict[str, FakeBackend], route: ModelRoute, observer: Recorder | None = None) -> Router:
    table = RoutingTable({route.name: route})
    return Router(
        lambda: table,
        BackendPool(Settings(), fakes),
        attempt_timeout_s=1.0,
        health=HealthCache(ttl_s=60),
        observer=observer,
        rng=random.Random(7),
        shadow_executor=InlineExecutor(),
    )


def select(**kwargs: Any) -> Selection:
    return Selection("mnist", time.monotonic() + 5, **kwargs)


def test_weighted_split_converges(fakes: dict[str, FakeBackend]) -> None:
    router = make_router(fakes, ModelRoute("mnist", {"tf": 80, "pt": 20}, failover=False))
    served = Counter(router.predict(select(), IMAGES).backend for _ in range(4000))
    assert abs(served["tf"] / 4000 - 0.8) < 0.03


def test_version_split_converges_and_labels_resolve(fakes: dict[str, FakeBackend]) -> None:
    route = ModelRoute("mnist", {"tf": 1}, versions={1: 90, 2: 10}, labels={"canary": 2})
    router = make_router(fakes, route)
    versions = Counter(router.predict(select(), IMAGES).prediction.version for _ in range(4000))
    assert abs(versions["2"] / 4000 - 0.1) < 0.02
    assert router.predict(select(label="canary"), IMAGES).prediction.version == "2"
    assert router.predict(select(version=1), IMAGES).prediction.version == "1"
    with pytest.raises(NotFound):
        router.predict(select(label="nope"), IMAGES)


def test_sticky_keys_stay_put_and_spread(fakes: dict[str, FakeBackend]) -> None:
    router = make_router(fakes, ModelRoute("mnist", {"tf": 50, "pt": 50}, sticky_header="X-Client"))
    first = {
        key: router.predict(select(headers={"x-client": key}), IMAGES).backend for key in map(str, range(200))
    }
    again = {
        key: router.predict(select(headers={"x-client": key}), IMAGES).backend for key in map(str, range(200))
    }
    assert first == again
    assert 0.35 < Counter(first.values())["tf"] / 200 < 0.65


def test_sticky_version_choice_stays_put_and_follows_the_weights(fakes: dict[str, FakeBackend]) -> None:
    route = ModelRoute("mnist", {"tf": 1}, versions={1: 75, 2: 25}, sticky_header="X-Client")
    router = make_router(fakes, route)

    def versions() -> dict[str, str | None]:
        return {
            key: router.predict(select(headers={"x-client": key}), IMAGES).prediction.version
            for key in map(str, range(400))
        }

    first = versions()
    router._rng = random.Random(99)  # a fresh random stream must not move a sticky client
    assert versions() == first
    assert 0.18 < Counter(first.values())["2"] / 400 < 0.32
    # Another router (another worker) puts every client on the same version.
    other = make_router(fakes, route)
    some = list(first)[:50]
    assert {
        key: other.predict(select(headers={"x-client": key}), IMAGES).prediction.version for key in some
    } == {key: first[key] for key in some}


def test_retry_budget_survives_a_reload_that_keeps_it(fakes: dict[str, FakeBackend], tmp_path: Path) -> None:
    """A routing reload (new weights, same budget) must not hand out a fresh budget: a reload during an
    outage would otherwise let a new burst of retries through. A changed budget starts afresh."""
    path = tmp_path / "routing.yaml"
    budget = "retry_budget: {ratio: 0.1, min_retries: 2, window_s: 60}"
    path.write_text(f"models: {{mnist: {{backends: {{tf: 1, pt: 0}}, {budget}}}}}")
    now = [0.0]
    source = RoutingSource(path, default_table([], {}), fakes, poll_s=1, clock=lambda: now[0])
    router = Router(
        source.current,
        BackendPool(Settings(), fakes),
        attempt_timeout_s=1.0,
        health=HealthCache(ttl_s=0),
        rng=random.Random(7),
        shadow_executor=InlineExecutor(),
        clock=lambda: now[0],
    )
    fakes["tf"].error = Unavailable("down")

    def failovers(requests: int) -> int:
        served = 0
        for _ in range(requests):
            with contextlib.suppress(Unavailable):
                served += router.predict(Selection("mnist", now[0] + 5), IMAGES).backend == "pt"
        return served

    assert failovers(10) == 2  # max(2, 0.1 * 10)
    path.write_text(f"models: {{mnist: {{backends: {{tf: 2, pt: 0}}, {budget}}}}}")  # weights change
    now[0] = 5.0
    assert source.current().models["mnist"].backends == {"tf": 2.0, "pt": 0.0}
    assert failovers(10) == 0  # 20 requests in the window: still max(2, 2) retries, all spent
    changed = "retry_budget: {ratio: 0.5, min_retries: 2, window_s: 60}"
    path.write_text(f"models: {{mnist: {{backends: {{tf: 2, pt: 0}}, {changed}}}}}")
    now[0] = 10.0
    assert failovers(4) == 2  # a new budget: its own window, max(2, 0.5 * n)


def test_explicit_choice_by_name_or_framework(fakes: dict[str, FakeBackend]) -> None:
    router = make_router(fakes, ModelRoute("mnist", {"tf": 100, "pt": 0}))
    assert router.predict(select(backend="pt"), IMAGES).backend == "pt"
    assert router.predict(select(backend="pytorch"), IMAGES).backend == "pt"
    with pytest.raises(InvalidInput):
        router.predict(select(backend="http://evil.example/"), IMAGES)


def test_failover_goes_to_the_other_framework(fakes: dict[str, FakeBackend]) -> None:
    fakes["tf2"] = FakeBackend("tf2", "tensorflow")
    fakes["tf"].error = Unavailable("refused")
    recorder = Recorder()
    router = make_router(fakes, ModelRoute("mnist", {"tf": 100, "tf2": 50, "pt": 1}), recorder)
    routed = router.predict(select(), IMAGES)
    assert routed.attempts == ("tf", "pt")
    assert ("failover", "mnist", "tf", "pt") in recorder.events


def test_known_down_backend_is_skipped_without_an_attempt(fakes: dict[str, FakeBackend]) -> None:
    fakes["tf"].error = Unavailable("refused")
    router = make_router(fakes, ModelRoute("mnist", {"tf": 100, "pt": 1}))
    router.predict(select(), IMAGES)
    calls = fakes["tf"].calls
    assert router.predict(select(), IMAGES).attempts == ("pt",)
    assert fakes["tf"].calls == calls


def test_no_failover_for_client_errors_or_when_disabled(fakes: dict[str, FakeBackend]) -> None:
    fakes["tf"].error = InvalidInput("bad")
    router = make_router(fakes, ModelRoute("mnist", {"tf": 1, "pt": 0}))
    with pytest.raises(InvalidInput):
        router.predict(select(), IMAGES)
    fakes["tf"].error = Unavailable("down")
    router = make_router(fakes, ModelRoute("mnist", {"tf": 1, "pt": 0}, failover=False))
    with pytest.raises(Unavailable):
        router.predict(select(), IMAGES)
    assert fakes["pt"].calls == 0


def test_no_attempt_after_the_deadline(fakes: dict[str, FakeBackend]) -> None:
    router = make_router(fakes, ModelRoute("mnist", {"tf": 1, "pt": 1}))
    with pytest.raises(DeadlineExceeded):
        router.predict(Selection("mnist", time.monotonic() - 0.001), IMAGES)
    assert fakes["tf"].calls == fakes["pt"].calls == 0


def test_retry_budget_caps_failovers(fakes: dict[str, FakeBackend]) -> None:
    fakes["tf"].error = Unavailable("flaky")
    route = ModelRoute("mnist", {"tf": 1, "pt": 0}, retry_budget=RetryBudgetConfig(0.2, 3, 60))
    router = make_router(fakes, route)
    router.health = HealthCache(ttl_s=0)  # keep trying tf first
    outcomes: Counter[str] = Counter()
    for _ in range(100):
        try:
            outcomes[router.predict(select(), IMAGES).backend] += 1
        except Unavailable:
            outcomes["failed"] += 1
    upstream = fakes["tf"].calls + fakes["pt"].calls
    assert upstream / 100 <= 1.2 + 1e-9
    # max(min_retries=3, 0.2 * 100 requests) = 20 failovers, no more and no fewer.
    assert outcomes["pt"] == 20 and outcomes["failed"] == 80
    assert upstream == 120


def test_retry_budget_window_and_floor() -> None:
    now = [0.0]
    budget = RetryBudget(RetryBudgetConfig(ratio=0.2, min_retries=2, window_s=10), clock=lambda: now[0])
    assert budget.try_acquire() and budget.try_acquire() and not budget.try_acquire()
    for _ in range(20):
        budget.record_request()
    assert budget.try_acquire() and budget.try_acquire() and not budget.try_acquire()
    now[0] = 11.0
    assert budget.try_acquire()


def test_shadow_never_changes_the_primary_answer(fakes: dict[str, FakeBackend]) -> None:
    fakes["pt"].digit = 5
    recorder = Recorder()
    route = ModelRoute("mnist", {"tf": 1, "pt": 0}, shadow=ShadowConfig(percent=100))
    router = make_router(fakes, route, recorder)
    routed = router.predict(select(), IMAGES)
    assert routed.backend == "tf" and routed.prediction.probabilities.argmax(axis=1).tolist() == [3, 3]
    assert [e[4] for e in recorder.events if e[0] == "shadow"] == ["ok"]
    assert [e[6:] for e in recorder.events if e[0] == "shadow"] == [(0, 2)]
    fakes["pt"].error = RuntimeError("shadow blew up")
    assert router.predict(select(), IMAGES).backend == "tf"
    assert [e[4] for e in recorder.events if e[0] == "shadow"] == ["ok", "error"]


def test_shadow_percent_is_respected(fakes: dict[str, FakeBackend]) -> None:
    route = ModelRoute("mnist", {"tf": 1, "pt": 0}, shadow=ShadowConfig(percent=25))
    router = make_router(fakes, route)
    for _ in range(2000):
        router.predict(select(), IMAGES)
    assert abs(fakes["pt"].calls / 2000 - 0.25) < 0.04


def test_pick_weighted_skips_zero_weights() -> None:
    assert {pick_weighted({"a": 0, "b": 1}, p) for p in (0.0, 0.5, 0.999)} == {"b"}
    with pytest.raises(ValueError):
        pick_weighted({"a": 0}, 0.5)


def test_unknown_model(fakes: dict[str, FakeBackend]) -> None:
    with pytest.raises(NotFound):
        make_router(fakes, ModelRoute("mnist", {"tf": 1})).predict(
            Selection("other", time.monotonic() + 1), IMAGES
        )
