"""The headline: a few paired figures, each formed inside a round and summarised across rounds.

A round visits every target once, in a random order, in short windows; the machine's speed drifts by
tens of percent over minutes, but little within one round. So each paired figure (TorchServe p50 /
TF Serving p50, gateway throughput / direct throughput, ...) is formed *inside* a round, pair by pair,
and its uncertainty comes from how much it varies *between* rounds.

The estimate is the Hodges-Lehmann centre of the rounds (the median of all pairwise means; of log
ratios for a ratio, of the values for a difference in ms): a window that something else on the shared
machine disturbed moves it little, as with the median, yet it wastes less of the other rounds (in a
simulation of seven rounds with this machine's spread, a rerun's estimate landed within 15% of the
first's in 62% of pairs against 55% with the median). The interval is a 95% interval for a rerun:
where the same comparison's estimate is expected to land when it is run again on the same machine.
With ``n`` rounds, the estimate's standard error ``se`` from a bootstrap over the rounds and Student's
``t`` at ``n - 1`` degrees of freedom, it is ``estimate +- t * se * sqrt(2)``:
the ``sqrt(2)`` over a confidence interval is there because a rerun's estimate carries its own error
too. A winner is named only where this interval excludes "no difference" (a ratio of 1, a difference
of 0); otherwise the stacks are indistinguishable here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from loadtests.records import WindowRecord
from loadtests.targets import GATEWAY_PAIRS, HEADLINE_PAIRS

__all__ = [
    "MIN_ROUNDS",
    "NO_DIFFERENCE",
    "SPEED_CHANGE_WARNING",
    "HeadlineFigure",
    "RoundSummary",
    "across_rounds",
    "headline",
    "machine_speed",
]

MIN_ROUNDS = 3
"""Fewer rounds give no interval (and no winner)."""
NO_DIFFERENCE = "no difference"
TOO_FEW = "too few rounds"
SATURATED = "load generator saturated"
METHOD = (
    "per-round paired figures; estimate: the Hodges-Lehmann centre of the rounds (the median of pairwise "
    "means; of log ratios, or of differences); 95% rerun interval: estimate +- t(n-1) * se * sqrt(2), se "
    "from a bootstrap over the rounds"
)

# Student's t, two-sided 95%, by degrees of freedom (1..30); beyond that the normal 1.96 is close enough.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t95(degrees: int) -> float:
    return _T95[degrees - 1] if 1 <= degrees <= len(_T95) else 1.96


@dataclass(frozen=True)
class RoundSummary:
    value: float
    low: float
    high: float
    rounds: int
    per_round: tuple[float, ...]

    def excludes(self, null: float) -> bool:
        return self.rounds >= MIN_ROUNDS and (self.low > null or self.high < null)


def hodges_lehmann(samples: np.ndarray) -> np.ndarray:
    """The Hodges-Lehmann centre of each row: the median of the means of every pair (each value paired
    with itself too)."""
    rows = np.atleast_2d(samples)
    upper = np.triu_indices(rows.shape[1])
    return np.asarray(np.median((rows[:, :, None] + rows[:, None, :])[:, upper[0], upper[1]] / 2, axis=1))


def across_rounds(values: Sequence[float], *, ratio: bool, iterations: int = 2000) -> RoundSummary:
    """The estimate and 95% rerun interval of per-round figures (ratios on a log scale).

    The estimate is the Hodges-Lehmann centre of the rounds (one window disturbed by something else on
    the machine moves it little); its standard error comes from a bootstrap over the rounds (seeded by
    the values, so the same rounds give the same interval)."""
    kept = [float(v) for v in values if math.isfinite(v) and (v > 0 or not ratio)]
    n = len(kept)
    if n == 0:
        return RoundSummary(math.nan, math.nan, math.nan, 0, ())
    scaled = np.log(kept) if ratio else np.asarray(kept)
    centre = float(hodges_lehmann(scaled)[0])
    half = math.nan
    if n >= MIN_ROUNDS:
        rng = np.random.default_rng(abs(hash(tuple(np.round(scaled, 9)))) % 2**32)
        centres = hodges_lehmann(rng.choice(scaled, size=(iterations, n), replace=True))
        half = t95(n - 1) * float(centres.std(ddof=1)) * math.sqrt(2)
    back = math.exp if ratio else (lambda x: x)
    low, high = (back(centre - half), back(centre + half)) if math.isfinite(half) else (math.nan, math.nan)
    return RoundSummary(back(centre), low, high, n, tuple(kept))


@dataclass(frozen=True)
class HeadlineFigure:
    """One paired figure: ``b / a`` (a ratio) or ``b - a`` (a difference, ms), across rounds."""

    pair: str
    figure: str
    """``p50 latency``, ``throughput`` or ``added p50 latency``."""
    a: str
    b: str
    step: str
    kind: str
    """``ratio`` or ``difference``."""
    better: str
    """``lower`` or ``higher``: which way is better for ``b``."""
    value: float
    low: float
    high: float
    rounds: int
    winner: str
    """A target's name, ``no difference``, ``too few rounds`` or ``load generator saturated``."""
    per_round: tuple[float, ...]

    @property
    def id(self) -> str:
        """Names the figure in results.json (pair | figure | step); pairs the passes of a rerun check."""
        return f"{self.pair} | {self.figure} | {self.step}"

    def to_json(self) -> dict[str, Any]:
        """NaN (no interval) is written as null: JSON has no NaN."""
        numbers = {
            k: None if math.isnan(v) else v
            for k in ("value", "low", "high")
            if (v := getattr(self, k)) is not None
        }
        return {**asdict(self), **numbers, "id": self.id, "per_round": list(self.per_round)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeadlineFigure:
        fields = {k: v for k, v in data.items() if k in _FIELDS}
        numbers = {k: math.nan if fields[k] is None else float(fields[k]) for k in ("value", "low", "high")}
        return cls(**{**fields, **numbers, "per_round": tuple(fields["per_round"])})


_FIELDS = {f.name for f in dataclasses.fields(HeadlineFigure)}
"""What ``from_json`` reads (``id`` is derived; a field a later version adds is ignored)."""


def _winner(summary: RoundSummary, kind: str, better: str, a: str, b: str, saturated: bool) -> str:
    if saturated:
        return SATURATED
    if summary.rounds < MIN_ROUNDS:
        return TOO_FEW
    null = 1.0 if kind == "ratio" else 0.0
    if not summary.excludes(null):
        return NO_DIFFERENCE
    b_is_larger = summary.low > null
    return b if b_is_larger == (better == "higher") else a


def _closed_steps(steps: Sequence[WindowRecord], target: str) -> list[tuple[int, str]]:
    found = {
        (int(s["users"]), str(s["step"])) for s in steps if s["target"] == target and s["kind"] == "closed"
    }
    return sorted(found)


def _figure(
    steps: Sequence[WindowRecord],
    pair: str,
    a: str,
    b: str,
    step: str,
    figure: str,
) -> HeadlineFigure | None:
    by_round = {(s["target"], s["rep"]): s for s in steps if s["step"] == step}
    rounds = sorted({rep for (name, rep) in by_round if name == a and (b, rep) in by_round})
    pairs = [(by_round[(a, r)], by_round[(b, r)]) for r in rounds]
    pairs = [(x, y) for x, y in pairs if x["requests"] and y["requests"]]
    if not pairs:
        return None
    if figure == "throughput":
        kind, better = "ratio", "higher"
        values = [y["rps"] / x["rps"] for x, y in pairs]
    elif figure == "p50 latency":
        kind, better = "ratio", "lower"
        values = [y["latency_ms"]["p50"] / x["latency_ms"]["p50"] for x, y in pairs]
    else:  # added p50 latency: the gateway's cost in ms
        kind, better = "difference", "lower"
        values = [y["latency_ms"]["p50"] - x["latency_ms"]["p50"] for x, y in pairs]
    summary = across_rounds(values, ratio=kind == "ratio")
    saturated = figure == "throughput" and any(x.get("saturated") or y.get("saturated") for x, y in pairs)
    return HeadlineFigure(
        pair=pair,
        figure=figure,
        a=a,
        b=b,
        step=step,
        kind=kind,
        better=better,
        value=summary.value,
        low=summary.low,
        high=summary.high,
        rounds=summary.rounds,
        winner=_winner(summary, kind, better, a, b, saturated),
        per_round=summary.per_round,
    )


def headline(steps: Sequence[WindowRecord], independent: Sequence[WindowRecord] = ()) -> list[HeadlineFigure]:
    """The headline figures of the measured steps: for each TF-vs-PyTorch pair of direct targets, p50
    at the fewest users and throughput at the most; for each backend, the gateway's added p50 and its
    throughput share. A figure comes from the independent client's windows (``independent``) where it
    measured both targets (its 1-user windows for p50, its concurrent ones for throughput: it adds less
    of its own time than Locust and interleaves the targets finely), else from Locust's; per target
    with both, the harness check (Locust's figure over the independent client's, round by round).
    Pairs of two targets through the gateway are left to the per-metric table: the gateway's cost per
    backend answers that question."""
    figures: list[HeadlineFigure | None] = []
    alone = [r for r in independent if int(r["users"]) == 1]
    together = [r for r in independent if int(r["users"]) > 1]
    via_gateway = {via for via, _ in GATEWAY_PAIRS}

    def latency(pair: str, a: str, b: str, figure: str) -> HeadlineFigure | None:
        if alone and {a, b} <= {r["target"] for r in alone}:
            return _figure(alone, pair, a, b, str(alone[0]["step"]), figure)
        return _figure(steps, pair, a, b, _closed_steps(steps, a)[0][1], figure)

    def throughput(pair: str, a: str, b: str) -> HeadlineFigure | None:
        if together and {a, b} <= {r["target"] for r in together}:
            return _figure(together, pair, a, b, str(together[0]["step"]), "throughput")
        return _figure(steps, pair, a, b, _closed_steps(steps, a)[-1][1], "throughput")

    for label, tf_side, pytorch_side in HEADLINE_PAIRS:
        if not _closed_steps(steps, tf_side) or not _closed_steps(steps, pytorch_side):
            continue
        if {tf_side, pytorch_side} <= via_gateway:
            continue
        figures.append(latency(label, tf_side, pytorch_side, "p50 latency"))
        figures.append(throughput(label, tf_side, pytorch_side))
    for via, direct in GATEWAY_PAIRS:
        if not _closed_steps(steps, direct) or not _closed_steps(steps, via):
            continue
        pair = f"gateway cost: {direct}"
        figures.append(latency(pair, direct, via, "added p50 latency"))
        figures.append(throughput(pair, direct, via))
    figures += [
        _harness(steps, alone, target, "p50 latency") for target in sorted({r["target"] for r in alone})
    ]
    figures += [
        _harness(steps, together, target, "throughput") for target in sorted({r["target"] for r in together})
    ]
    return [figure for figure in figures if figure is not None]


HARNESS_TOLERANCE = 0.15
"""Locust's figure within 15% of the independent client's: the harness is not what is measured."""


def _harness(
    steps: Sequence[WindowRecord], independent: Sequence[WindowRecord], target: str, figure: str
) -> HeadlineFigure | None:
    """Locust's p50 (or throughput) over the independent client's at the same concurrency, round by
    round; None where Locust did not measure that concurrency."""
    alone = {r["rep"]: r for r in independent if r["target"] == target and r["requests"]}
    users = int(independent[0]["users"]) if independent else 1
    locust = {
        s["rep"]: s for s in steps if s["target"] == target and s["kind"] == "closed" and s["users"] == users
    }
    rounds = sorted(rep for rep in alone if rep in locust and locust[rep]["requests"])
    if not rounds:
        return None
    if figure == "throughput":
        values = [locust[r]["rps"] / alone[r]["rps"] for r in rounds]
        better, measured = "higher", "throughput"
    else:
        values = [locust[r]["latency_ms"]["p50"] / alone[r]["latency_ms"]["p50"] for r in rounds]
        better, measured = "lower", "p50"
    summary = across_rounds(values, ratio=True)
    if summary.rounds < MIN_ROUNDS:
        verdict = TOO_FEW
    elif abs(summary.value - 1.0) <= HARNESS_TOLERANCE:
        verdict = "agrees within 15%"
    else:
        side = "higher" if summary.value > 1.0 else "lower"
        verdict = f"Locust reads {side}: the headline uses the independent client's {measured}"
    return HeadlineFigure(
        pair=f"harness check: {target}",
        figure=f"Locust {measured} / independent client {measured}",
        a=f"{target} (independent client)",
        b=f"{target} (Locust)",
        step=f"{users} user{'s' if users != 1 else ''}",
        kind="ratio",
        better=better,
        value=summary.value,
        low=summary.low,
        high=summary.high,
        rounds=summary.rounds,
        winner=verdict,
        per_round=summary.per_round,
    )


SPEED_CHANGE_WARNING = 1.3
"""A run whose slowest round took this much longer than its fastest gets a warning in the headline."""


def machine_speed(independent: Sequence[WindowRecord]) -> dict[str, Any]:
    """How the machine's speed moved from round to round, read from the independent client: per round,
    the geometric mean over targets of each target's p50 over its own median p50 (1.0: a typical
    round; 2.0: every request took twice as long). ``slowest_over_fastest`` compares the extremes."""
    by_target: dict[str, dict[int, float]] = {}
    for record in independent:
        if int(record["users"]) != 1:
            continue
        p50 = float(record["latency_ms"]["p50"])
        if record["requests"] and math.isfinite(p50) and p50 > 0:
            by_target.setdefault(str(record["target"]), {})[int(record["rep"])] = p50
    rounds = sorted({rep for values in by_target.values() for rep in values})
    per_round = []
    for rep in rounds:
        logs = [
            math.log(values[rep] / float(np.median(list(values.values()))))
            for values in by_target.values()
            if rep in values
        ]
        per_round.append(math.exp(sum(logs) / len(logs)))
    spread = max(per_round) / min(per_round) if per_round else math.nan
    return {"rounds": rounds, "per_round": per_round, "slowest_over_fastest": spread}


def headline_json(steps: Sequence[WindowRecord], independent: Sequence[WindowRecord] = ()) -> dict[str, Any]:
    """``results.json``'s ``headline``: the method and the figures (documented in docs/benchmarking.md)."""
    rounds = sorted({int(s["rep"]) for s in steps})
    speed = machine_speed(independent)
    return {
        "version": 1,
        "method": METHOD,
        "confidence": 0.95,
        "rounds": len(rounds),
        "figures": [figure.to_json() for figure in headline(steps, independent)],
        "machine_speed": {**speed, "slowest_over_fastest": _json_number(speed["slowest_over_fastest"])},
    }


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else value


@dataclass(frozen=True)
class Agreement:
    """One headline figure measured twice: does each run's interval hold the other's estimate?"""

    id: str
    first: HeadlineFigure
    second: HeadlineFigure

    @property
    def each_contains_the_other(self) -> bool:
        one, two = self.first, self.second
        return one.low <= two.value <= one.high and two.low <= one.value <= two.high

    @property
    def same_winner(self) -> bool:
        return self.first.winner == self.second.winner

    @property
    def relative_change(self) -> float:
        """How far the second estimate is from the first: a ratio's factor - 1, a difference in ms."""
        if self.first.kind == "ratio":
            return self.second.value / self.first.value - 1.0
        return self.second.value - self.first.value

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "first": self.first.to_json(),
            "second": self.second.to_json(),
            "each_contains_the_other": self.each_contains_the_other,
            "same_winner": self.same_winner,
            "relative_change": self.relative_change,
        }


def agreements(first: Sequence[HeadlineFigure], second: Sequence[HeadlineFigure]) -> list[Agreement]:
    """The figures both runs measured, paired by id."""
    later = {figure.id: figure for figure in second}
    return [Agreement(f.id, f, later[f.id]) for f in first if f.id in later]


def is_harness_check(figure: HeadlineFigure) -> bool:
    """A check of the load generator (Locust against the independent client), not a finding."""
    return figure.pair.startswith("harness check")


RERUN_RATIO_TOLERANCE = 0.15
"""A ratio that moved less than this between two runs "reproduced"."""


def _shares(rows: Sequence[Agreement]) -> dict[str, Any]:
    ratios = [row for row in rows if row.first.kind == "ratio"]
    return {
        "figures": len(rows),
        "contained_share": sum(r.each_contains_the_other for r in rows) / len(rows) if rows else None,
        "same_winner_share": sum(r.same_winner for r in rows) / len(rows) if rows else None,
        "ratios": len(ratios),
        "ratios_within_15_percent": sum(abs(r.relative_change) <= RERUN_RATIO_TOLERANCE for r in ratios),
    }


def reproducibility_json(headlines: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``results.json``'s ``reproducibility``: each run's headline, each later one against the first,
    and how many findings (the harness checks apart) reproduced: intervals that hold the other run's
    estimate, the same verdict, ratios within 15%."""
    figures = [[HeadlineFigure.from_json(f) for f in headline["figures"]] for headline in headlines]
    checks = [agreements(figures[0], later) for later in figures[1:]]
    rows = [row for check in checks for row in check]
    findings = [row for row in rows if not is_harness_check(row.first)]
    harness = [row for row in rows if is_harness_check(row.first)]
    return {
        "passes": len(headlines),
        "headlines": list(headlines),
        "against_first": [[row.to_json() for row in check] for check in checks],
        **_shares(findings),
        "harness": _shares(harness),
    }
