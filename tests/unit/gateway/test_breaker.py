"""Circuit breakers: the state machine on a fake clock, then inside the router with fake backends."""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import pytest

from gateway.backends import BackendPool
from gateway.breaker import BreakerConfig, CircuitBreaker, State
from gateway.errors import InvalidInput, OverCapacity, Unavailable
from gateway.router import CircuitOpen, HealthCache, InlineExecutor, Router, Selection
from gateway.routing import ModelRoute, RetryBudgetConfig, RoutingTable
from gateway.settings import Settings
from tests.unit.gateway.conftest import FakeBackend

IMAGES = np.zeros((1, 28, 28), dtype=np.float32)
CONFIG = BreakerConfig(failures=3, error_ratio=0.5, min_calls=10, window_s=10.0, open_s=5.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, config: BreakerConfig = CONFIG) -> tuple[CircuitBreaker, list[State]]:
    changes: list[State] = []
    return CircuitBreaker(config, clock, changes.append), changes


def test_opens_after_consecutive_failures_and_fails_fast() -> None:
    clock = Clock()
    cb, changes = breaker(clock)
    for _ in range(2):
        assert cb.allow()
        cb.record(ok=False)
    cb.record(ok=True)  # a success resets the run
    for _ in range(2):
        cb.record(ok=False)
    assert cb.state is State.CLOSED
    cb.record(ok=False)
    assert cb.state is State.OPEN and changes == [State.OPEN]
    assert not cb.allow() and cb.retry_after_s() == pytest.approx(5.0)


def test_failures_of_calls_in_flight_together_count_once_in_the_run() -> None:
    """One stall of a busy backend times out every call in flight at once: one failure, not many. The
    next failures count when their calls started after the last counted one was recorded."""
    clock = Clock()
    cb, changes = breaker(clock)
    stall_began = clock.now
    clock.now += 1.5
    for _ in range(5):  # five calls (under CONFIG's min_calls) that time out together in one stall
        cb.record(ok=False, started=stall_began)
    assert cb.state is State.CLOSED and changes == []
    for _ in range(2):  # later calls, each begun after the last counted failure: the run goes on
        began = clock.now
        clock.now += 1.5
        cb.record(ok=False, started=began)
    assert cb.state is State.OPEN  # 3 failures in a row, as CONFIG says


def test_a_success_between_resets_the_run_of_overlapping_failures() -> None:
    clock = Clock()
    cb, _ = breaker(clock)
    for _ in range(5):
        began = clock.now
        clock.now += 1.0
        cb.record(ok=False, started=began)
        cb.record(ok=True)
    assert cb.state is State.CLOSED


def test_opens_on_the_error_ratio_over_enough_calls() -> None:
    clock = Clock()
    cb, _ = breaker(clock)
    for i in range(10):  # alternating: never 3 in a row, but half of them failed
        cb.record(ok=i % 2 == 0)
        clock.now += 0.1
    assert cb.state is State.OPEN


def test_the_ratio_forgets_calls_older_than_the_window() -> None:
    clock = Clock()
    cb, _ = breaker(clock)
    for i in range(9):
        cb.record(ok=i % 2 == 0)
    clock.now += 11  # those 9 calls leave the window
    for _ in range(9):
        cb.record(ok=True)
    cb.record(ok=False)
    assert cb.state is State.CLOSED


def test_half_open_probe_closes_on_success_and_reopens_on_failure() -> None:
    clock = Clock()
    cb, changes = breaker(clock)
    for _ in range(3):
        cb.record(ok=False)
    clock.now += 5.0
    assert cb.allow()  # the one probe
    assert not cb.allow()  # no second probe while it runs
    cb.record(ok=False)
    assert cb.state is State.OPEN
    clock.now += 5.0
    assert cb.allow()
    cb.record(ok=True)
    assert cb.state is State.CLOSED and cb.allow()
    assert changes == [State.OPEN, State.HALF_OPEN, State.OPEN, State.HALF_OPEN, State.CLOSED]


def test_a_probe_that_never_reports_back_is_forgotten() -> None:
    clock = Clock()
    cb, _ = breaker(clock)
    for _ in range(3):
        cb.record(ok=False)
    clock.now += 5.0
    assert cb.allow()  # this probe's request expires in a queue and never calls record()
    clock.now += 5.1
    assert cb.allow()


def test_disabled_breaker_always_allows() -> None:
    cb, _ = breaker(Clock(), BreakerConfig(enabled=False))
    for _ in range(100):
        cb.record(ok=False)
    assert cb.allow()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.events.append((name, *args))


def make_router(fakes: dict[str, FakeBackend], observer: Recorder) -> Router:
    route = ModelRoute("mnist", {"tf": 100, "pt": 0.001}, failover=True)
    table = RoutingTable({"mnist": route})
    return Router(
        lambda: table,
        BackendPool(Settings(), fakes),
        attempt_timeout_s=1.0,
        health=HealthCache(ttl_s=0),
        observer=observer,  # type: ignore[arg-type]
        rng=random.Random(1),
        shadow_executor=InlineExecutor(),
        breaker=CONFIG,
    )


def select() -> Selection:
    return Selection("mnist", time.monotonic() + 5)


def test_router_stops_calling_a_failing_backend_and_fails_over(fakes: dict[str, FakeBackend]) -> None:
    observer = Recorder()
    router = make_router(fakes, observer)
    fakes["tf"].error = Unavailable("refused")
    for _ in range(3):
        assert router.predict(select(), IMAGES).backend == "pt"  # failover answers
    assert fakes["tf"].calls == 3 and router.breakers["tf"].state is State.OPEN
    assert ("circuit", "tf", State.OPEN) in observer.events
    for _ in range(5):
        routed = router.predict(select(), IMAGES)
        assert routed.backend == "pt" and routed.attempts == ("pt",)  # tf skipped: no call, no budget
    assert fakes["tf"].calls == 3
    assert observer.events.count(("circuit_rejected", "tf")) == 5


def test_all_circuits_open_is_503_with_retry_after(fakes: dict[str, FakeBackend]) -> None:
    router = make_router(fakes, Recorder())
    for fake in fakes.values():
        fake.error = Unavailable("refused")
    for _ in range(6):
        with pytest.raises(Unavailable):
            router.predict(select(), IMAGES)
    with pytest.raises(CircuitOpen) as caught:
        router.predict(select(), IMAGES)
    assert caught.value.status == 503 and caught.value.headers() == {"Retry-After": "1"}


@pytest.mark.parametrize("error", [InvalidInput("bad image"), OverCapacity("queue full")])
def test_client_errors_and_load_shedding_do_not_open_the_circuit(
    fakes: dict[str, FakeBackend], error: Exception
) -> None:
    router = make_router(fakes, Recorder())
    fakes["tf"].error = error
    fakes["pt"].error = error
    for _ in range(10):
        with pytest.raises(type(error)):
            router.predict(select(), IMAGES)
    assert router.breakers["tf"].state is State.CLOSED


def test_a_failed_probe_fails_over_even_with_no_retry_budget_left(fakes: dict[str, FakeBackend]) -> None:
    """A probe is the gateway's own test of a backend: its failure must not cost the client."""
    clock = Clock()
    route = ModelRoute(
        "mnist",
        {"tf": 100, "pt": 0.001},
        failover=True,
        retry_budget=RetryBudgetConfig(ratio=0.0, min_concurrent=0),
    )
    table = RoutingTable({"mnist": route})
    router = Router(
        lambda: table,
        BackendPool(Settings(), fakes),
        attempt_timeout_s=1.0,
        health=HealthCache(ttl_s=0, clock=clock),
        observer=Recorder(),  # type: ignore[arg-type]
        rng=random.Random(1),
        clock=clock,
        breaker=CONFIG,
    )
    far = Selection("mnist", clock.now + 1e6)
    fakes["tf"].error = Unavailable("refused")
    for _ in range(3):  # no budget: these fail without failover, and open tf's circuit
        with pytest.raises(Unavailable):
            router.predict(far, IMAGES)
    assert router.breakers["tf"].state is State.OPEN
    assert router.predict(far, IMAGES).attempts == ("pt",)  # open: skipped, no budget needed
    clock.now += CONFIG.open_s
    routed = router.predict(far, IMAGES)  # tf is probed, fails, and pt answers
    assert routed.attempts == ("tf", "pt") and fakes["tf"].calls == 4
