"""Open-loop Poisson arrivals: the schedule a pool of Locust users serves, and the check of what was sent.

:class:`PoissonSchedule` draws arrival times with exponential gaps at the current rate; a dispatcher
greenlet in the Locust process (``loadtests.users``) hands each arrival, when it is due, to whichever
user of the pool is free. A user that gets an arrival late (every user was busy, or the generator's
CPU lagged) still sends it, and its latency is counted from the *scheduled* time, so the server's
queue is measured rather than hidden in the generator. Arrivals waiting for a user are capped
(``backlog``); the ones beyond are dropped and counted, and the step then fails on its sent rate.

:func:`arrival_check` compares the start times actually sent with what a Poisson process should give
(mean gap, coefficient of variation, Kolmogorov-Smirnov distance to the exponential). No Locust here.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["ArrivalCheck", "PoissonSchedule", "arrival_check"]


class PoissonSchedule:
    """Arrival times of a Poisson process whose rate can change; the next arrival is ``due``."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)  # nosec B311  # arrival jitter for a load test, not security
        self.rate = 0.0
        self.due = math.inf

    def set_rate(self, rate: float, now: float) -> None:
        """Offer ``rate`` arrivals per second from ``now`` (0: none); the old schedule is dropped."""
        self.rate = max(0.0, rate)
        self.due = now + self._rng.expovariate(self.rate) if self.rate else math.inf

    def take(self) -> float:
        """The due arrival's scheduled time; the schedule moves on to the next one."""
        scheduled = self.due
        self.due = scheduled + self._rng.expovariate(self.rate) if self.rate else math.inf
        return scheduled


@dataclass(frozen=True)
class ArrivalCheck:
    """How Poisson the sent arrivals of one step were (gaps between consecutive send times)."""

    arrivals: int
    mean_gap_ms: float
    expected_gap_ms: float
    cv: float
    """Coefficient of variation of the gaps: 1 for exponential gaps, 0 for a metronome."""
    ks_distance: float
    """Largest distance between the gaps' empirical CDF and the exponential CDF of the offered rate."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def arrival_check(starts: Sequence[float] | np.ndarray, offered_rps: float) -> ArrivalCheck:
    """Compare sent start times (seconds, any order) with a Poisson process at ``offered_rps``."""
    times = np.sort(np.asarray(starts, dtype=np.float64))
    gaps = np.diff(times)
    expected = 1000.0 / offered_rps if offered_rps > 0 else float("nan")
    if gaps.size < 2 or offered_rps <= 0:
        nan = float("nan")
        return ArrivalCheck(int(times.size), nan, expected, nan, nan)
    ordered = np.sort(gaps)
    n = ordered.size
    model = 1.0 - np.exp(-offered_rps * ordered)
    above = np.arange(1, n + 1) / n - model
    below = model - np.arange(0, n) / n
    mean = float(gaps.mean())
    return ArrivalCheck(
        arrivals=int(times.size),
        mean_gap_ms=mean * 1000.0,
        expected_gap_ms=expected,
        cv=float(gaps.std() / mean) if mean > 0 else float("nan"),
        ks_distance=float(max(above.max(), below.max())),
    )
