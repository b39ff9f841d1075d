"""The pre-warm loop's stopping rules: settled throughput after a minimum count, or the time bound."""

from __future__ import annotations

import time

from loadtests.prewarm import _hammer, settled


def test_the_settling_rule() -> None:
    assert settled([990, 1000, 1010, 1000, 1040, 980])
    assert not settled([990, 1000, 1010, 1000, 1200, 980]), "one window 20% off"
    assert not settled([800, 830, 860, 890, 920, 950]), "each window close to the next, but climbing"
    assert not settled([1000, 1000, 1000]), "too few windows"
    assert not settled([0] * 6)


def test_a_steady_server_stops_the_warm_up_once_settled() -> None:
    def call(i: int) -> None:
        time.sleep(0.001)

    warmed = _hammer(lambda: call, seconds=30.0, threads=2, requests=100, window_s=0.2)
    assert warmed.settled and warmed.requests >= 100
    assert warmed.seconds < 6.0


def test_a_server_that_keeps_speeding_up_is_stopped_by_the_time_bound() -> None:
    began = time.monotonic()

    def call(i: int) -> None:  # faster and faster: never three windows alike
        time.sleep(0.02 / (1 + 20 * (time.monotonic() - began)) ** 2)

    warmed = _hammer(lambda: call, seconds=1.5, threads=1, window_s=0.2)
    assert not warmed.settled
    assert 1.4 <= warmed.seconds < 3.0


def test_a_counted_warm_up_stops_after_its_count_whatever_the_throughput() -> None:
    began = time.monotonic()

    def call(i: int) -> None:  # never settles
        time.sleep(0.005 / (1 + 20 * (time.monotonic() - began)))

    warmed = _hammer(lambda: call, seconds=20.0, threads=2, requests=200, window_s=0.2, until_settled=False)
    assert warmed.settled and warmed.counted and warmed.requests >= 200
    assert warmed.seconds < 5.0
    assert "a fixed count" in warmed.describe()
