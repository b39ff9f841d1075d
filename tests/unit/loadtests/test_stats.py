"""Percentiles, bootstrap intervals and the winner rule, on samples whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loadtests.stats import (
    Estimate,
    bin_rates,
    bootstrap_percentile,
    bootstrap_rate,
    combine,
    paired_difference,
    percentile,
    winner,
)


def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0, 1.0), (50, 50.5), (95, 95.05), (99, 99.01), (100, 100.0)],
)
def test_percentile_interpolates_linearly_between_order_statistics(q: float, expected: float) -> None:
    # 1..100: position (n - 1) * q / 100 = 0.99 * q; p99 lies 1% of the way from 99 to 100.
    assert percentile(np.arange(1, 101, dtype=float), q) == pytest.approx(expected)


def test_percentile_of_two_values_and_of_nothing() -> None:
    assert percentile([1.0, 3.0], 50) == 2.0
    assert percentile([1.0, 3.0], 75) == 2.5
    assert math.isnan(percentile([], 50))


def test_constant_samples_have_a_zero_width_interval() -> None:
    estimate = bootstrap_percentile([[2.5] * 200, [2.5] * 150], 99, 300, rng())
    assert (estimate.value, estimate.low, estimate.high) == (2.5, 2.5, 2.5)


def test_bootstrap_interval_covers_the_true_median_and_shrinks_with_more_samples() -> None:
    generator = np.random.default_rng(1)
    small = generator.exponential(1.0, 200)
    large = generator.exponential(1.0, 20_000)
    true_median = math.log(2)
    narrow = bootstrap_percentile([large], 50, 400, rng())
    wide = bootstrap_percentile([small], 50, 400, rng())
    assert narrow.low <= true_median <= narrow.high
    assert wide.low <= true_median <= wide.high
    assert (narrow.high - narrow.low) < (wide.high - wide.low) / 4


def test_point_is_the_median_of_the_repetitions() -> None:
    runs = [np.full(50, 1.0), np.full(50, 2.0), np.full(50, 10.0)]
    estimate = bootstrap_percentile(runs, 50, 500, rng())
    assert estimate.value == 2.0
    # Resampling the repetitions: the interval spans the repetitions' own values.
    assert estimate.low == 1.0 and estimate.high == 10.0


def test_combine_with_one_repetition_returns_its_replicates() -> None:
    replicates = np.array([1.0, 2.0, 3.0])
    assert combine([replicates], rng()).tolist() == [1.0, 2.0, 3.0]


def test_bin_rates_counts_per_slice() -> None:
    starts = [0.1, 0.2, 0.6, 1.5, 1.6, 1.7]
    assert bin_rates(starts, (0.0, 2.0), 4).tolist() == [4.0, 2.0, 0.0, 6.0]


def test_rate_is_count_over_window_with_an_interval() -> None:
    starts = np.linspace(0.0, 9.99, 1000)  # 100 requests per second for 10 s, perfectly steady
    estimate = bootstrap_rate([(starts, (0.0, 10.0))], 300, rng())
    assert estimate.value == pytest.approx(100.0)
    assert estimate.low == pytest.approx(100.0) and estimate.high == pytest.approx(100.0)
    bursty = np.concatenate([np.linspace(0, 0.99, 190), np.linspace(1, 9.99, 810)])
    estimate = bootstrap_rate([(bursty, (0.0, 10.0))], 300, rng())
    assert estimate.value == pytest.approx(100.0)
    assert estimate.low < 100.0 < estimate.high


def test_paired_difference_recovers_a_shift() -> None:
    generator = np.random.default_rng(3)
    pairs = []
    for _ in range(3):
        base = generator.normal(5.0, 0.5, 2000)
        pairs.append((base + 1.5, generator.normal(5.0, 0.5, 2000)))
    estimate = paired_difference(pairs, 50, 300, rng())
    assert estimate.value == pytest.approx(1.5, abs=0.1)
    assert estimate.low < 1.5 < estimate.high
    assert estimate.low > 1.0


@pytest.mark.parametrize(
    ("a", "b", "lower_is_better", "expected"),
    [
        (Estimate(1.0, 0.9, 1.1), Estimate(2.0, 1.8, 2.2), True, "a"),
        (Estimate(1.0, 0.9, 1.1), Estimate(2.0, 1.8, 2.2), False, "b"),
        (Estimate(2.0, 1.8, 2.2), Estimate(1.0, 0.9, 1.1), True, "b"),
        (Estimate(1.0, 0.9, 1.9), Estimate(2.0, 1.8, 2.2), True, None),  # intervals overlap
        (Estimate(1.0, 0.9, 1.1), Estimate.missing(), True, None),
    ],
)
def test_winner_only_when_intervals_do_not_overlap(
    a: Estimate, b: Estimate, lower_is_better: bool, expected: str | None
) -> None:
    assert winner(a, b, lower_is_better=lower_is_better) == expected


def test_estimate_serialises_nan_as_null() -> None:
    assert Estimate.missing().to_dict() == {"value": None, "low": None, "high": None}
