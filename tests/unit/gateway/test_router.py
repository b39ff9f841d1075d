"""Router policies with fake backends (see conftest.FakeBackend): no network, no models."""

from __future__ import annotations

import contextlib
import random
import threading
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

    def lone(self, model: str, backend: str, images: int) -> None:
        self.batch(model, backend, images, 1)
        self.queue_delay(model, backend, 0.0)


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
    """A routing reload (new weights, same budget) must keep the budget and its retries in flight: a
    reload during an outage would otherwise let a new burst of retries through. A changed budget
    starts afresh."""
    path = tmp_path / "routing.yaml"
    budget = "retry_budget: {ratio: 0.1, min_concurrent: 2}"
    path.write_text(f"models: {{mnist: {{backends: {{tf: 1, pt: 0}}, {budget}}}}}")
    now = [0.0]
    source = RoutingSource(path, default_table([], {}), fakes, poll_s=1, clock=lambda: now[0])
    router = Router(
        source.current, BackendPool(Settings(), fakes), attempt_timeout_s=1.0, health=HealthCache(ttl_s=0)
    )
    before = router._budget(source.current().models["mnist"])
    assert before.try_acquire() and before.try_acquire()  # two retries in flight: the floor is spent
    path.write_text(f"models: {{mnist: {{backends: {{tf: 2, pt: 0}}, {budget}}}}}")  # weights change
    now[0] = 5.0
    assert source.current().models["mnist"].backends == {"tf": 2.0, "pt": 0.0}
    kept = router._budget(source.current().models["mnist"])
    assert kept is before and not kept.try_acquire()
    path.write_text("models: {mnist: {backends: {tf: 2, pt: 0}, retry_budget: {min_concurrent: 3}}}")
    now[0] = 10.0
    fresh = router._budget(source.current().models["mnist"])
    assert fresh is not before and fresh.in_flight() == (0, 0)


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


def test_retry_budget_caps_retries_in_flight(fakes: dict[str, FakeBackend]) -> None:
    """16 requests fail on tf at the same moment: max(min_concurrent=2, 0.25 * 16) = 4 may retry on pt
    at once; the other 12 fail fast instead of piling onto the survivor."""
    clients = 16
    at_once = threading.Barrier(clients, timeout=10)
    release = threading.Event()
    fakes["tf"].error = Unavailable("down")
    fakes["tf"].hook = lambda: at_once.wait()  # every request is in flight before any fails
    fakes["pt"].hook = lambda: release.wait(10)  # retries stay in flight until counted
    route = ModelRoute(
        "mnist", {"tf": 1, "pt": 0}, retry_budget=RetryBudgetConfig(ratio=0.25, min_concurrent=2)
    )
    recorder = Recorder()
    router = make_router(fakes, route, recorder)
    outcomes: list[str] = []

    def client() -> None:
        try:
            outcomes.append(router.predict(select(), IMAGES).backend)
        except Unavailable as exc:
            outcomes.append(
                "retry budget exhausted" if "retry budget exhausted" in (exc.detail or "") else str(exc)
            )

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(outcomes) < clients - 4 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(fakes["pt"].sizes) == 4 and outcomes.count("retry budget exhausted") == 12
    release.set()
    for thread in threads:
        thread.join(10)
    assert Counter(outcomes) == {"pt": 4, "retry budget exhausted": 12}
    assert len([e for e in recorder.events if e[0] == "budget"]) == 12
    assert router._budget(route).in_flight() == (0, 0)  # every request and retry counted out


def test_retry_budget_floor_and_ratio() -> None:
    budget = RetryBudget(RetryBudgetConfig(ratio=0.2, min_concurrent=2))
    assert budget.try_acquire() and budget.try_acquire() and not budget.try_acquire()
    budget.release()
    assert budget.try_acquire()  # a retry that ended frees its slot
    with contextlib.ExitStack() as stack:
        for _ in range(20):
            stack.enter_context(budget.request())
        assert budget.try_acquire() and budget.try_acquire() and not budget.try_acquire()  # 0.2 * 20 = 4
        assert budget.in_flight() == (20, 4)
    assert budget.in_flight() == (0, 4) and not budget.try_acquire()


def test_sequential_failovers_are_not_rationed(fakes: dict[str, FakeBackend]) -> None:
    """One client at a time never has more than one retry in flight: every failover is allowed (a rate
    cap here was what failed requests while a frozen backend slowed traffic to a trickle)."""
    fakes["tf"].error = Unavailable("down")
    route = ModelRoute(
        "mnist", {"tf": 1, "pt": 0}, retry_budget=RetryBudgetConfig(ratio=0.2, min_concurrent=1)
    )
    router = make_router(fakes, route)
    router.health = HealthCache(ttl_s=0)  # keep trying tf first
    assert Counter(router.predict(select(), IMAGES).backend for _ in range(50)) == {"pt": 50}


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


def test_a_backends_not_found_names_the_model_and_version_it_does_not_serve(
    fakes: dict[str, FakeBackend],
) -> None:
    fakes["tf"].error = NotFound("tf answered HTTP 404", backend="tf", detail="Servable not found")
    router = make_router(fakes, ModelRoute("mnist", {"tf": 1, "pt": 0}))
    with pytest.raises(NotFound) as caught:
        router.predict(select(version=99), IMAGES)
    assert caught.value.message == "version 99 of model 'mnist' is not served by tf (tf answered HTTP 404)"
    assert caught.value.backend == "tf" and caught.value.detail == "Servable not found"
    assert fakes["pt"].calls == 0, "a version that is not served is not failed over"
    with pytest.raises(NotFound, match=r"^model 'mnist' is not served by tf"):
        router.predict(select(), IMAGES)
