"""Percentiles, rates and their 95% intervals (hierarchical bootstrap), and the winner rule.

* Percentiles use numpy's default ("linear", Hyndman & Fan type 7) on raw float milliseconds.
* A figure over several repetitions is the **median of the per-repetition figures**; its interval
  comes from a two-level bootstrap that resamples the repetitions and, inside each, the requests
  (or, for a rate, the window's time bins), so it reflects both run-to-run and within-run variation.
  With one repetition it is the ordinary bootstrap of that run.
* A paired difference (gateway - direct, same repetition) is bootstrapped the same way, each
  replicate built from independent resamples of both sides of the same repetitions.
* A winner is named only when the two intervals do not overlap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from loadtests.records import Interval

__all__ = [
    "Estimate",
    "bin_rates",
    "bootstrap_percentile",
    "bootstrap_rate",
    "combine",
    "estimate",
    "percentile",
    "winner",
]

Floats = npt.NDArray[np.float64]
CONFIDENCE = 0.95
_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def to_dict(self) -> Interval:
        return {"value": _finite(self.value), "low": _finite(self.low), "high": _finite(self.high)}

    @classmethod
    def missing(cls) -> Estimate:
        nan = float("nan")
        return cls(nan, nan, nan)

    @property
    def known(self) -> bool:
        return bool(np.isfinite(self.value))


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def percentile(samples: Sequence[float] | Floats, q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no samples."""
    values = np.asarray(samples, dtype=np.float64)
    return float(np.percentile(values, q)) if values.size else float("nan")


def resample_percentile(samples: Floats, q: float, iterations: int, rng: np.random.Generator) -> Floats:
    """``iterations`` bootstrap replicates of the ``q``-th percentile of ``samples``."""
    n = samples.size
    if n == 0:
        return np.full(iterations, np.nan)
    out = np.empty(iterations)
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for begin in range(0, iterations, chunk):
        end = min(iterations, begin + chunk)
        picks = samples[rng.integers(0, n, size=(end - begin, n))]
        out[begin:end] = np.percentile(picks, q, axis=1)
    return out


def combine(replicates: Sequence[Floats], rng: np.random.Generator) -> Floats:
    """Second bootstrap level: per replicate, resample the repetitions and take their median.

    ``replicates[r][b]`` is repetition r's b-th within-run replicate. Each position of a resampled set
    of repetitions uses a different replicate index, so a repetition drawn twice is not counted as
    two identical copies.
    """
    k = len(replicates)
    table = np.vstack(replicates)  # (k, B)
    iterations = table.shape[1]
    if k == 1:
        return table[0]
    chosen = rng.integers(0, k, size=(iterations, k))
    columns = np.stack([rng.permutation(iterations) for _ in range(k)], axis=1)  # (B, k)
    return np.asarray(np.median(table[chosen, columns], axis=1), dtype=np.float64)


def interval(replicates: Floats, confidence: float = CONFIDENCE) -> tuple[float, float]:
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def estimate(
    point_per_rep: Sequence[float], replicates: Sequence[Floats], rng: np.random.Generator
) -> Estimate:
    """Median of the per-repetition figures with the two-level bootstrap interval."""
    points = [p for p in point_per_rep if np.isfinite(p)]
    if not points:
        return Estimate.missing()
    low, high = interval(combine(replicates, rng))
    return Estimate(float(np.median(points)), low, high)


def bootstrap_percentile(
    groups: Sequence[Sequence[float] | Floats], q: float, iterations: int, rng: np.random.Generator
) -> Estimate:
    """``q``-th percentile over repetitions (one group of samples per repetition)."""
    arrays = [np.asarray(group, dtype=np.float64) for group in groups if len(group)]
    if not arrays:
        return Estimate.missing()
    points = [percentile(values, q) for values in arrays]
    return estimate(points, [resample_percentile(v, q, iterations, rng) for v in arrays], rng)


def bin_rates(starts: Sequence[float] | Floats, window: tuple[float, float], bins: int) -> Floats:
    """Requests per second in ``bins`` equal slices of ``window`` (by start time)."""
    begin, end = window
    width = (end - begin) / bins
    counts, _ = np.histogram(np.asarray(starts, dtype=np.float64), bins=bins, range=(begin, end))
    return np.asarray(counts / width, dtype=np.float64)


def bins_for(window: tuple[float, float], target_width_s: float = 1.0, minimum: int = 5) -> int:
    duration = max(window[1] - window[0], 1e-9)
    return max(minimum, round(duration / target_width_s))


def resample_mean(values: Floats, iterations: int, rng: np.random.Generator) -> Floats:
    if values.size == 0:
        return np.full(iterations, np.nan)
    picks = values[rng.integers(0, values.size, size=(iterations, values.size))]
    return np.asarray(picks.mean(axis=1), dtype=np.float64)


def bootstrap_rate(
    runs: Sequence[tuple[Sequence[float] | Floats, tuple[float, float]]],
    iterations: int,
    rng: np.random.Generator,
) -> Estimate:
    """Throughput over repetitions: each run is (request start times, measurement window).

    The point is the median of count / window length; within a run the interval resamples the
    window's time bins (about one second each, at least five), which keeps short bursts together.
    """
    usable = [(np.asarray(s, dtype=np.float64), w) for s, w in runs if w[1] > w[0]]
    if not usable:
        return Estimate.missing()
    points = [s.size / (w[1] - w[0]) for s, w in usable]
    replicates = [resample_mean(bin_rates(s, w, bins_for(w)), iterations, rng) for s, w in usable]
    return estimate(points, replicates, rng)


def paired_difference(
    pairs: Sequence[tuple[Floats, Floats]], q: float, iterations: int, rng: np.random.Generator
) -> Estimate:
    """``q``-th percentile of A minus that of B, per repetition (A and B measured in the same run)."""
    usable = [(a, b) for a, b in pairs if a.size and b.size]
    if not usable:
        return Estimate.missing()
    points = [percentile(a, q) - percentile(b, q) for a, b in usable]
    replicates = [
        resample_percentile(a, q, iterations, rng) - resample_percentile(b, q, iterations, rng)
        for a, b in usable
    ]
    return estimate(points, replicates, rng)


def winner(a: Estimate, b: Estimate, *, lower_is_better: bool) -> str | None:
    """``"a"``, ``"b"``, or None when the intervals overlap (or a figure is missing)."""
    if not (a.known and b.known) or not all(np.isfinite([a.low, a.high, b.low, b.high])):
        return None
    if a.high < b.low:
        return "a" if lower_is_better else "b"
    if b.high < a.low:
        return "b" if lower_is_better else "a"
    return None
