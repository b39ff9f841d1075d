"""Capacity under a latency SLO: judging one open-loop step, and the bounded search over offered rates.

Pure functions and small state machines, no Locust and no I/O: the load shape runs the search live
(:class:`CapacitySearch`, fed by :func:`judge_step`) and the analysis judges the same steps again from
the raw samples with the same function, so what the report says is what steered the search.

* A step offers Poisson arrivals at ``offered_rps`` (``loadtests.arrivals``). Its latency is measured
  from each request's arrival, including any time the arrival waited for a free user, not from when a
  user got round to sending it, so a slow server cannot hide its queue in the load generator (no
  coordinated omission).
* A step passes when the ``quantile`` (p99) of those latencies is within the SLO, failures stay under
  ``max_error_ratio``, and the arrivals actually sent kept up with the offered rate. A step where the
  load generator's CPU passed the saturation threshold measured the generator: it neither passes nor
  fails; the search goes on below it, and what it finds there is a lower bound.
* The search grows the rate by ``factor`` until a step fails (or shrinks it until one passes), then
  bisects (geometrically) between the highest passing and the lowest failing rate until they are
  within ``precision`` of each other; ``max_steps`` bounds the time it can take.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from loadtests.recorder import Columns

__all__ = [
    "SCHEMA",
    "CapacityRun",
    "CapacitySearch",
    "CapacitySummary",
    "SearchSettings",
    "SloSettings",
    "StepVerdict",
    "judge_step",
    "judge_window",
    "summarise_runs",
]

SCHEMA = "loadtests-capacity/1"
"""Version of the capacity records in results.json."""

_T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
"""Two-sided 95% Student-t quantiles by degrees of freedom (1.96 beyond)."""


@dataclass(frozen=True)
class SloSettings:
    slo_ms: float = 10.0
    quantile: float = 99.0
    max_error_ratio: float = 0.001
    """Failures must stay *below* this share of the step's requests (0.1%)."""
    rate_tolerance: float = 0.05
    """Arrivals sent may fall short of the offered rate by this share (plus Poisson noise) and still pass."""
    saturation_cpu: float = 80.0
    """Load generator CPU (% of one core) from which a step measures the generator, not the server."""
    min_answers: int = 100
    """Answers a step needs before its p99 means anything (with fewer, the p99 is the slowest answer)."""

    def lowest_rate(self, max_step_s: float) -> float:
        """The lowest rate whose longest step still collects ``min_answers`` answers, with a margin.

        At exactly ``min_answers / max_step_s``, Poisson arrivals fall short half the time; half as
        many again puts a shortfall more than four standard deviations away.
        """
        return max(1.0, math.ceil(1.5 * self.min_answers / max_step_s)) if max_step_s > 0 else 1.0


@dataclass(frozen=True)
class SearchSettings:
    start_rps: float = 0.0
    """First rate; 0: half the target's last closed-loop throughput (100 req/s without one)."""
    factor: float = 2.0
    precision: float = 0.1
    """Stop when the lowest failing rate is within this share above the highest passing one."""
    max_steps: int = 8
    floor_rps: float = 5.0
    """Lowest rate tried: below it a step cannot collect enough answers (:meth:`SloSettings.lowest_rate`)."""
    ceiling_rps: float = 20000.0
    pool_users: int = 8
    """Users in the open-loop pool at least; more where rate x SLO needs them (:meth:`users_for`)."""

    def first_rate(self, closed_loop_rps: float | None) -> float:
        if self.start_rps > 0:
            return self.start_rps
        if closed_loop_rps and closed_loop_rps > 0:
            return max(self.floor_rps, round(closed_loop_rps / 2, 1))
        return 100.0

    def users_for(self, rate: float, slo_ms: float) -> int:
        """Pool size: four times the requests in flight if every answer took the whole SLO (Little's law).

        With that many users, the pool can only run dry when answers take far longer than the SLO,
        so a dry pool is the server's doing and fails the step anyway (its lateness is measured).
        """
        return max(self.pool_users, math.ceil(4 * rate * slo_ms / 1000.0))


@dataclass(frozen=True)
class StepVerdict:
    """One open-loop step, judged against the SLO."""

    offered_rps: float
    sent_rps: float
    """Arrivals actually sent per second of the window (started inside it)."""
    answered_rps: float
    """Correct answers per second (requests that started and finished inside the window)."""
    requests: int
    errors: int
    p_ms: float
    """The SLO quantile of latency from arrival to answer (NaN without answers)."""
    p50_ms: float
    late_share: float
    """Share of arrivals that waited more than 1 ms for a free user (every user of the pool was busy)."""
    generator_cpu: float
    outcome: str
    """``pass``, ``fail`` or ``generator`` (the load generator was the limit: not a server figure)."""
    reasons: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reasons": list(self.reasons)}


def judge_step(
    offered_rps: float,
    duration_s: float,
    latencies_ms: Sequence[float] | np.ndarray,
    errors: int,
    sent: int,
    *,
    late_share: float = 0.0,
    generator_cpu: float = float("nan"),
    slo: SloSettings = SloSettings(),
) -> StepVerdict:
    """Judge one step from its raw figures (``latencies_ms``: correct answers, from arrival)."""
    values = np.asarray(latencies_ms, dtype=np.float64)
    n = int(values.size)
    p = float(np.percentile(values, slo.quantile)) if n else float("nan")
    p50 = float(np.percentile(values, 50)) if n else float("nan")
    sent_rps = sent / duration_s if duration_s > 0 else 0.0
    expected = offered_rps * duration_s
    # Poisson counts vary by sqrt(expected): allow three of those on top of the tolerance.
    shortfall_allowed = slo.rate_tolerance + (3.0 / math.sqrt(expected) if expected > 0 else 1.0)
    reasons: list[str] = []
    if math.isfinite(generator_cpu) and generator_cpu >= slo.saturation_cpu:
        reasons.append(f"load generator at {generator_cpu:.0f}% CPU")
        outcome = "generator"
    else:
        if not n or p > slo.slo_ms:
            reasons.append(f"p{slo.quantile:g} {p:.2f} ms > {slo.slo_ms:g} ms" if n else "no answer")
        elif n < slo.min_answers:
            reasons.append(f"only {n} answers (a p{slo.quantile:g} needs {slo.min_answers})")
        total = n + errors
        if total and errors / total >= slo.max_error_ratio:
            reasons.append(f"errors {errors / total:.2%} >= {slo.max_error_ratio:.1%}")
        if sent_rps < offered_rps * (1.0 - shortfall_allowed):
            why = " (users busy)" if late_share >= 0.01 else ""
            reasons.append(f"sent {sent_rps:.0f} of {offered_rps:.0f} req/s{why}")
        outcome = "fail" if reasons else "pass"
    return StepVerdict(
        offered_rps=offered_rps,
        sent_rps=sent_rps,
        answered_rps=n / duration_s if duration_s > 0 else 0.0,
        requests=n,
        errors=errors,
        p_ms=p,
        p50_ms=p50,
        late_share=late_share,
        generator_cpu=generator_cpu,
        outcome=outcome,
        reasons=tuple(reasons),
    )


def judge_window(
    columns: Columns | None,
    window: tuple[float, float],
    offered_rps: float,
    *,
    generator_cpu: float = float("nan"),
    slo: SloSettings = SloSettings(),
) -> StepVerdict:
    """Judge the requests *sent* inside ``window`` (by start time; answers may come after it closes).

    Latency = wait for a free user + response time: from the arrival to the answer.
    """
    duration = window[1] - window[0]
    if columns is None or not len(columns):
        return judge_step(offered_rps, duration, [], 0, 0, generator_cpu=generator_cpu, slo=slo)
    start = np.asarray(columns.start)
    lag = np.asarray(columns.lag_ms) if len(columns.lag_ms) == start.size else np.zeros(start.size)
    sent = (start >= window[0]) & (start < window[1])
    failed = np.asarray([bool(e) for e in columns.error])
    ok = sent & ~failed
    latencies = np.asarray(columns.ms)[ok] + lag[ok]
    late = float(np.mean(lag[sent] > 1.0)) if sent.any() else 0.0
    return judge_step(
        offered_rps,
        duration,
        latencies,
        int((sent & failed).sum()),
        int(sent.sum()),
        late_share=late,
        generator_cpu=generator_cpu,
        slo=slo,
    )


class CapacitySearch:
    """Exponential, then geometric-bisection search for the highest offered rate that passes.

    ``next_rate()`` says what to offer next (None: done); ``observe(rate, outcome)`` records a step.
    """

    def __init__(self, settings: SearchSettings, first_rate: float) -> None:
        self.settings = settings
        self.first = min(max(first_rate, settings.floor_rps), settings.ceiling_rps)
        self.passed: float | None = None
        self.failed: float | None = None
        self.steps: list[tuple[float, str]] = []
        self.stopped = ""
        self.generator_rps: float | None = None
        """The lowest rate at which the load generator, not the server, was the limit."""

    def next_rate(self) -> float | None:
        s = self.settings
        if self.stopped or len(self.steps) >= s.max_steps:
            return None
        if not self.steps:
            return self.first
        if self.failed is None:  # still growing
            rate = (self.passed or self.first) * s.factor
            if rate > s.ceiling_rps:
                self.stopped = "ceiling"
                return None
            return rate
        if self.passed is None:  # still shrinking, down to the floor at most
            if self.failed <= s.floor_rps:
                self.stopped = "floor"
                return None
            return max(self.failed / s.factor, s.floor_rps)
        if self.failed <= self.passed * (1.0 + s.precision):
            self.stopped = "converged"
            return None
        return round(math.sqrt(self.passed * self.failed), 1)

    def observe(self, rate: float, outcome: str) -> None:
        self.steps.append((rate, outcome))
        if outcome == "generator":
            # The generator cannot offer this rate: look below it as below a failure, but whatever
            # passes there is only a lower bound (the server was not the limit).
            self.generator_rps = min(rate, self.generator_rps or math.inf)
            self.failed = min(rate, self.failed or math.inf)
        elif outcome == "pass":
            self.passed = max(rate, self.passed or 0.0)
            if self.failed is not None and self.failed <= rate:  # noise: a higher rate passed after all
                self.failed = None
        else:
            self.failed = min(rate, self.failed or math.inf)

    def result(self, target: str, rep: int) -> CapacityRun:
        status = self.stopped or ("steps" if len(self.steps) >= self.settings.max_steps else "unfinished")
        if self.generator_rps is not None and self.failed == self.generator_rps:
            status = "generator"  # the bracket's top is the generator's limit: a lower bound
        return CapacityRun(
            target=target,
            rep=rep,
            capacity_rps=self.passed or 0.0,
            failed_rps=self.failed,
            status=status,
            rates=[rate for rate, _ in self.steps],
            outcomes=[outcome for _, outcome in self.steps],
        )


@dataclass(frozen=True)
class CapacityRun:
    """One repetition's search for one target."""

    target: str
    rep: int
    capacity_rps: float
    """The highest offered rate that passed (0: none did)."""
    failed_rps: float | None
    """The lowest offered rate that failed: the capacity lies in [capacity_rps, failed_rps)."""
    status: str
    """``converged``, ``steps`` (max steps reached), ``ceiling``, ``floor``, ``generator``, ``unfinished``."""
    rates: list[float] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)

    @property
    def lower_bound_only(self) -> bool:
        """True when the capacity is at least this figure but the search could not look higher."""
        return self.status in ("generator", "ceiling") or (self.failed_rps is None and self.capacity_rps > 0)


@dataclass(frozen=True)
class CapacitySummary:
    """Capacity under the SLO of one target over repetitions, with its 95% interval."""

    target: str
    value: float
    low: float
    high: float
    interval: str
    """How the interval was made: ``t over N repetitions`` or ``search bracket (1 repetition)``."""
    repetitions: int
    runs: list[CapacityRun]
    at_least: bool
    """The load generator or the search's ceiling stopped it: the server may serve more."""
    schema: str = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["runs"] = [asdict(run) for run in self.runs]
        return out


def summarise_runs(target: str, runs: Sequence[CapacityRun]) -> CapacitySummary:
    """Mean over repetitions with a Student-t 95% interval; one repetition: its search bracket."""
    values = [run.capacity_rps for run in runs]
    at_least = any(run.lower_bound_only for run in runs)
    if not values:
        nan = float("nan")
        return CapacitySummary(target, nan, nan, nan, "not measured", 0, [], False)
    mean = float(np.mean(values))
    if len(values) == 1:
        run = runs[0]
        high = run.failed_rps if run.failed_rps is not None else run.capacity_rps
        return CapacitySummary(
            target, mean, run.capacity_rps, high, "search bracket (1 repetition)", 1, list(runs), at_least
        )
    sd = float(np.std(values, ddof=1))
    half = _T_975.get(len(values) - 1, 1.96) * sd / math.sqrt(len(values))
    return CapacitySummary(
        target,
        mean,
        max(0.0, mean - half),
        mean + half,
        f"t over {len(values)} repetitions",
        len(values),
        list(runs),
        at_least,
    )
