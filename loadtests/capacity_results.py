"""The capacity search's results: each step as judged while running, its arrivals checked, its CPU cost.

Built after the run from the plan, the shape's events (each capacity step's window, offered rate and
verdict), the raw samples and the CPU the runner measured per phase. The verdicts are the ones that
steered the search (judged when each step ended); this module adds what only the whole run knows:
how Poisson the sent arrivals were, and the CPU-seconds per 1,000 correct answers of each process
group (the server, and the gateway where the target goes through it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from loadtests.arrivals import ArrivalCheck, arrival_check
from loadtests.capacity import SCHEMA, CapacityRun, CapacitySearch, CapacitySummary, summarise_runs
from loadtests.plan import Plan
from loadtests.recorder import Columns

__all__ = ["ARRIVALS_TEXT", "CapacityStep", "TargetCapacity", "capacity_results"]

ARRIVALS_TEXT = (
    "open loop: Poisson arrivals (exponential gaps) from one dispatcher greenlet per Locust process, "
    "each handed to the next free user of a pool of at least 4 x rate x SLO users; latency counted "
    "from the arrival, so time an arrival spent waiting for a free user is included"
)


@dataclass(frozen=True)
class CapacityStep:
    target: str
    rep: int
    phase: int
    offered_rps: float
    users: int
    window: tuple[float, float]
    verdict: dict[str, Any]
    """:class:`loadtests.capacity.StepVerdict` as a dict (the live judgement)."""
    arrivals: ArrivalCheck
    cpu_s_per_1000: dict[str, float]
    """CPU-seconds per 1,000 correct answers, per process group (``torchserve``, ``gateway``, ...)."""
    other_cpu: float
    """CPU (% of one core) used meanwhile by processes outside the comparison (a shared machine)."""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "window": list(self.window), "arrivals": self.arrivals.to_dict()}


@dataclass(frozen=True)
class TargetCapacity:
    summary: CapacitySummary
    cpu_s_per_1000: dict[str, float]
    """At each repetition's capacity (its highest passing step), median over repetitions."""

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary.to_dict(), "cpu_s_per_1000": self.cpu_s_per_1000}


def _cpu_cost(
    cpu: Mapping[str, Any], groups: Sequence[str], answered: int, duration: float
) -> dict[str, float]:
    servers = cpu.get("servers") or {}
    if not answered or duration <= 0:
        return {}
    return {
        group: float(servers[group]) / 100.0 * duration / answered * 1000.0
        for group in groups
        if group in servers
    }


def _run(plan: Plan, target: str, rep: int, steps: Sequence[CapacityStep]) -> CapacityRun:
    """Replays the search over its recorded outcomes (so the status says why it stopped)."""
    assert plan.settings.search is not None
    search = CapacitySearch(plan.settings.search, steps[0].offered_rps if steps else 0.0)
    for step in steps:
        search.observe(step.offered_rps, str(step.verdict["outcome"]))
    search.next_rate()
    return search.result(target, rep)


def capacity_results(
    plan: Plan,
    events: Sequence[Mapping[str, Any]],
    samples: Mapping[str, Columns],
    cpu_by_phase: Mapping[int, Mapping[str, Any]],
    components: Callable[[str], tuple[str, ...]],
) -> dict[str, Any]:
    """Every capacity step and, per target, the capacity under the SLO over repetitions (JSON-ready)."""
    if plan.settings.search is None:
        return {}
    starts = {int(e["phase"]): e for e in events if e.get("event") == "phase_start" and "rate" in e}
    steps: list[CapacityStep] = []
    for event in events:
        if event.get("event") != "phase_end" or "verdict" not in event:
            continue
        phase = plan.phases[int(event["phase"])]
        window = (float(event["window"][0]), float(event["window"][1]))
        columns = samples.get(phase.target)
        begun = np.asarray(columns.start if columns else [])
        sent = begun[(begun >= window[0]) & (begun < window[1])]
        verdict = dict(event["verdict"])
        steps.append(
            CapacityStep(
                target=phase.target,
                rep=phase.rep,
                phase=phase.index,
                offered_rps=float(event["rate"]),
                users=int(starts.get(phase.index, {}).get("users", phase.users)),
                window=window,
                verdict=verdict,
                arrivals=arrival_check(sent, float(event["rate"])),
                cpu_s_per_1000=_cpu_cost(
                    cpu_by_phase.get(phase.index, {}),
                    components(phase.target),
                    int(verdict.get("requests", 0)),
                    window[1] - window[0],
                ),
                other_cpu=float(cpu_by_phase.get(phase.index, {}).get("other", float("nan"))),
            )
        )
    targets: dict[str, Any] = {}
    for name in dict.fromkeys(step.target for step in steps):
        runs, costs = [], []
        for rep in sorted({s.rep for s in steps if s.target == name}):
            mine = [s for s in steps if s.target == name and s.rep == rep]
            run = _run(plan, name, rep, mine)
            runs.append(run)
            best = [s for s in mine if s.verdict["outcome"] == "pass" and s.offered_rps == run.capacity_rps]
            if best:
                costs.append(best[0].cpu_s_per_1000)
        groups = sorted({group for cost in costs for group in cost})
        median = {g: float(np.median([c[g] for c in costs if g in c])) for g in groups}
        targets[name] = TargetCapacity(summarise_runs(name, runs), median).to_dict()
    return {
        "schema": SCHEMA,
        "slo": asdict(plan.settings.slo),
        "search": asdict(plan.settings.search),
        "arrivals": ARRIVALS_TEXT,
        "steps": [step.to_dict() for step in steps],
        "targets": targets,
    }
