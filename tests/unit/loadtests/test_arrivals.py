"""Open-loop arrivals: the Poisson schedule's rate and distribution, and the check that reads them back."""

from __future__ import annotations

import math

import numpy as np

from loadtests.arrivals import PoissonSchedule, arrival_check


def _arrivals(rate: float, count: int, seed: int) -> list[float]:
    schedule = PoissonSchedule(seed)
    schedule.set_rate(rate, 1000.0)
    return [schedule.take() for _ in range(count)]


def test_the_schedule_is_poisson_at_the_offered_rate() -> None:
    """Seeded, so deterministic; any Poisson sample of this size meets the bounds (5 sigma, KS 1e-6)."""
    count = 5000
    for seed in (1, 2, 3):
        check = arrival_check(_arrivals(200.0, count, seed), 200.0)
        sigma = 1.0 / math.sqrt(count)
        assert abs(check.mean_gap_ms / check.expected_gap_ms - 1.0) < 5 * sigma
        assert abs(check.cv - 1.0) < 5 * sigma
        assert check.ks_distance < math.sqrt(math.log(2 / 1e-6) / (2 * count))


def test_the_check_tells_a_metronome_and_a_wrong_rate_from_poisson() -> None:
    regular = np.arange(2000) / 200.0
    check = arrival_check(regular, 200.0)
    assert check.cv < 0.01 and check.ks_distance > 0.3
    slow = arrival_check(_arrivals(100.0, 2000, 4), 200.0)
    assert slow.mean_gap_ms > 1.8 * slow.expected_gap_ms and slow.ks_distance > 0.2


def test_a_rate_change_starts_a_new_schedule_and_zero_stops_it() -> None:
    schedule = PoissonSchedule(5)
    schedule.set_rate(10.0, 0.0)
    first = schedule.take()
    assert 0.0 < first < 5.0  # one gap at 10/s (P(gap > 5 s) = e^-50)
    schedule.set_rate(1000.0, 100.0)
    assert 100.0 < schedule.due < 100.05
    schedule.set_rate(0.0, 200.0)
    assert schedule.due == math.inf and schedule.take() == math.inf


def test_too_few_arrivals_give_no_figures() -> None:
    check = arrival_check([1.0], 100.0)
    assert check.arrivals == 1 and math.isnan(check.cv)
