"""Capacity under an SLO: the step verdict and the bounded search, against fakes whose capacity is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadtests.capacity import (
    CapacityRun,
    CapacitySearch,
    SearchSettings,
    SloSettings,
    judge_step,
    summarise_runs,
)


def _search(capacity: float, settings: SearchSettings, first: float) -> CapacitySearch:
    """Runs a search against a fake server: every rate up to ``capacity`` passes, every rate above fails."""
    search = CapacitySearch(settings, first)
    while (rate := search.next_rate()) is not None:
        search.observe(rate, "pass" if rate <= capacity else "fail")
    return search


@pytest.mark.parametrize("capacity", [7.0, 60.0, 333.0, 1234.0, 9000.0])
@pytest.mark.parametrize("first", [10.0, 100.0, 5000.0])
def test_the_search_brackets_a_known_capacity_within_its_precision(capacity: float, first: float) -> None:
    settings = SearchSettings(precision=0.1, max_steps=16, floor_rps=1.0)
    run = _search(capacity, settings, first).result("fake", 0)
    assert run.status == "converged", run
    assert run.failed_rps is not None
    assert run.capacity_rps <= capacity < run.failed_rps
    assert run.failed_rps <= run.capacity_rps * 1.1 + 0.1


def test_the_search_is_bounded_in_steps() -> None:
    run = _search(777.0, SearchSettings(precision=0.001, max_steps=5), 10.0).result("fake", 0)
    assert len(run.rates) == 5 and run.status == "steps"
    assert run.capacity_rps <= 777.0


def test_a_generator_limited_step_bounds_the_search_from_above_and_makes_a_lower_bound() -> None:
    search = CapacitySearch(SearchSettings(precision=0.1), 100.0)
    search.observe(search.next_rate() or 0, "pass")
    search.observe(search.next_rate() or 0, "generator")  # 200 req/s: the generator's limit
    while (rate := search.next_rate()) is not None:
        assert 100.0 < rate < 200.0  # bisects below the generator's limit
        search.observe(rate, "pass")
    run = search.result("fake", 0)
    assert run.status == "generator" and 180.0 <= run.capacity_rps < 200.0 and run.lower_bound_only


def test_a_first_step_beyond_the_generator_looks_lower_instead_of_ending() -> None:
    search = CapacitySearch(SearchSettings(), 1400.0)
    search.observe(search.next_rate() or 0, "generator")
    assert search.next_rate() == 700.0
    search.observe(700.0, "pass")
    run = search.result("fake", 0)
    assert run.capacity_rps == 700.0 and run.lower_bound_only


def test_nothing_passes_above_the_floor() -> None:
    run = _search(1.0, SearchSettings(floor_rps=5.0), 50.0).result("fake", 0)
    assert run.capacity_rps == 0.0 and run.status == "floor"


def test_the_search_tries_the_floor_itself_before_giving_up() -> None:
    run = _search(1.0, SearchSettings(floor_rps=25.0), 45.0).result("fake", 0)
    assert run.rates == [45.0, 25.0] and run.status == "floor"
    assert run.capacity_rps == 0.0 and run.failed_rps == 25.0


def test_the_floor_is_the_lowest_rate_that_can_collect_enough_answers() -> None:
    assert SloSettings(min_answers=100).lowest_rate(4.0) == 38.0  # 150 answers expected in 4 s
    assert SloSettings(min_answers=100).lowest_rate(6.0) == 25.0


def test_a_step_with_too_few_answers_for_its_p99_fails_and_says_so() -> None:
    verdict = judge_step(5.0, 4.0, np.full(20, 2.0), 0, 20)
    assert verdict.outcome == "fail"
    assert verdict.reasons == ("only 20 answers (a p99 needs 100)",)


def test_first_rate_is_half_the_closed_loop_throughput_unless_given() -> None:
    assert SearchSettings().first_rate(800.0) == 400.0
    assert SearchSettings().first_rate(None) == 100.0
    assert SearchSettings(start_rps=42.0).first_rate(800.0) == 42.0
    assert SearchSettings(pool_users=8).users_for(1000.0, 10.0) == 40
    assert SearchSettings(pool_users=8).users_for(10.0, 10.0) == 8


def _step(latencies: np.ndarray, **kwargs: float) -> str:
    return judge_step(100.0, 10.0, latencies, 0, 1000, **kwargs).outcome  # type: ignore[arg-type]


def test_a_step_passes_only_with_its_p99_within_the_slo() -> None:
    fast = np.full(1000, 2.0)
    assert _step(fast) == "pass"
    slow_tail = fast.copy()
    slow_tail[-20:] = 25.0  # 2% of the answers over the SLO: p99 is over it
    verdict = judge_step(100.0, 10.0, slow_tail, 0, 1000)
    assert verdict.outcome == "fail" and "p99" in verdict.reasons[0]
    slow_tail[-20:-9] = 2.0  # 0.9% over it: p99 within
    assert _step(slow_tail) == "pass"


def test_errors_fail_a_step_at_a_tenth_of_a_percent() -> None:
    fast = np.full(999, 1.0)
    assert judge_step(100.0, 10.0, fast, 1, 1000).outcome == "fail"  # 0.1%: not below 0.1%
    assert judge_step(100.0, 10.0, np.full(2000, 1.0), 1, 2001).outcome == "pass"  # 0.05%


def test_a_step_whose_arrivals_fell_behind_fails_and_a_busy_generator_is_not_a_verdict() -> None:
    fast = np.full(700, 1.0)
    behind = judge_step(100.0, 10.0, fast, 0, 700)
    assert behind.outcome == "fail" and "sent" in behind.reasons[0]
    # 970 of 1,000 expected: within Poisson noise and the tolerance.
    assert judge_step(100.0, 10.0, np.full(970, 1.0), 0, 970).outcome == "pass"
    busy = judge_step(100.0, 10.0, fast, 0, 700, generator_cpu=95.0, slo=SloSettings(saturation_cpu=80.0))
    assert busy.outcome == "generator" and not busy.passed


def test_summary_over_repetitions_has_a_t_interval_and_one_repetition_its_bracket() -> None:
    runs = [
        CapacityRun("x", rep, value, value * 1.1, "converged") for rep, value in enumerate((90, 100, 110))
    ]
    summary = summarise_runs("x", runs)
    assert summary.value == pytest.approx(100.0)
    half = 4.303 * 10.0 / math.sqrt(3)
    assert (summary.low, summary.high) == pytest.approx((100 - half, 100 + half))
    assert summary.interval == "t over 3 repetitions" and not summary.at_least
    one = summarise_runs("x", runs[:1])
    assert (one.low, one.high) == pytest.approx((90, 99.0)) and "bracket" in one.interval
    assert summary.to_dict()["schema"] == "loadtests-capacity/1"
