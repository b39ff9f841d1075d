"""From raw samples and phase windows to every figure of the report (a JSON-ready dict).

For each measured phase (target x step x repetition) the requests that started *and* finished inside
the window are kept; throughput is their count over the window's length; percentiles come from their
raw float timings. Failed requests are counted by reason, never timed into the percentiles. Figures
over repetitions and their 95% intervals come from :mod:`loadtests.stats`. A step is flagged
*saturated* when the load generator used at least ``saturation_cpu`` percent of a core, or reached
``ceiling_fraction`` of its own calibrated ceiling (null endpoint) for that protocol: such a step
measures the generator, not the server, and is kept out of capacity figures and winners.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from loadtests.backends import spec
from loadtests.headline import across_rounds, headline_json
from loadtests.plan import INTERLEAVED, Phase, Plan
from loadtests.recorder import Columns
from loadtests.records import (
    Analysis,
    CalibrationRecord,
    ComparisonRow,
    GatewayAddedRow,
    StepRecord,
    SummaryRow,
    WindowRecord,
)
from loadtests.stats import (
    bin_rates,
    bins_for,
    bootstrap_percentile,
    bootstrap_rate,
    estimate,
    paired_difference,
    percentile,
    resample_mean,
)
from loadtests.targets import ALL_TARGETS, GATEWAY_PAIRS, HEADLINE_PAIRS, Target
from loadtests.targets import target as target_by_name

__all__ = ["AnalysisSettings", "analyse", "select_window", "target_components"]

PERCENTILES = (50, 95, 99)


@dataclass(frozen=True)
class AnalysisSettings:
    bootstrap: int = 1000
    seed: int = 0
    saturation_cpu: float = 80.0
    """Load generator CPU (percent of one core, per process) from which a step is flagged."""
    ceiling_fraction: float = 0.8
    """Share of the calibrated null-endpoint ceiling from which a step is flagged."""
    cdf_step: str = ""
    """Step whose latency CDF is drawn (default: the highest concurrency no target saturated)."""


@dataclass(frozen=True)
class StepSamples:
    latencies: np.ndarray
    starts: np.ndarray
    errors: Counter[str]
    gateway_ms: np.ndarray
    backend_ms: np.ndarray


def select_window(columns: Columns | None, window: tuple[float, float]) -> StepSamples:
    """The requests that started and finished inside ``window`` (successes timed, failures counted)."""
    if columns is None or not len(columns):
        empty = np.empty(0)
        return StepSamples(empty, empty, Counter(), empty, empty)
    start = np.asarray(columns.start)
    ms = np.asarray(columns.ms)
    inside = (start >= window[0]) & (start + ms / 1000.0 <= window[1])
    failed = np.asarray([bool(e) for e in columns.error])
    ok = inside & ~failed
    errors = Counter(e for e, keep in zip(columns.error, inside & failed, strict=True) if keep)
    return StepSamples(
        ms[ok],
        start[ok],
        errors,
        np.asarray(columns.gateway_ms)[ok],
        np.asarray(columns.backend_ms)[ok],
    )


def target_components(name: str) -> tuple[str, ...]:
    """The process groups that serve a target by name (``gateway`` first where it goes through it)."""
    return _components(target_by_name(name))


def _components(target: Target) -> tuple[str, ...]:
    if target.path == "calibration":
        return ("nullserver",)
    if target.via_gateway:
        return ("gateway", *_server(target.backend))
    return _server(target.name)


def _server(backend: str | None) -> tuple[str, ...]:
    """The separate server process behind a backend, whose CPU a request also costs (none in-process)."""
    server = spec(backend).server if backend else ""
    return (server,) if server else ()


def _cpu_per_request(servers: Mapping[str, float], target: Target, ok: int, duration: float) -> float:
    """Server CPU time per correct answer, in ms: the cost of a request on the servers of this target."""
    if not servers or ok == 0 or duration <= 0:
        return float("nan")
    percent = sum(float(servers.get(c, 0.0)) for c in _components(target))
    return percent / 100.0 * duration / ok * 1000.0


def _generator_peak(event: Mapping[str, Any], local: Mapping[str, float]) -> float:
    cpu = event.get("generator_cpu") or {}
    values = [float(v) for v in (cpu.get("workers_percent") or {}).values()]
    if cpu.get("role") == "standalone":
        values.append(float(cpu.get("own_percent", 0.0)))
    values.extend(float(v) for v in local.values())
    return max(values) if values else float("nan")


def _step_record(
    phase: Phase,
    event: Mapping[str, Any],
    data: StepSamples,
    cpu: Mapping[str, Any],
    target: Target,
) -> StepRecord:
    window = (float(event["window"][0]), float(event["window"][1]))
    duration = window[1] - window[0]
    servers = cpu.get("servers", {})
    ok = int(data.latencies.size)
    record: StepRecord = {
        "target": phase.target,
        "rep": phase.rep,
        "phase": phase.index,
        "kind": phase.kind,
        "step": phase.step,
        "users": phase.users,
        "rate": phase.rate,
        "window": list(window),
        "duration_s": duration,
        "requests": ok,
        "errors": dict(data.errors),
        "error_count": sum(data.errors.values()),
        "rps": ok / duration if duration > 0 else float("nan"),
        "short": ok < phase.min_requests,
        "saturated": False,  # judged once every step is in (``_flag``)
        "latency_ms": {f"p{q}": percentile(data.latencies, q) for q in PERCENTILES}
        | {
            "mean": float(data.latencies.mean()) if ok else float("nan"),
            "min": float(data.latencies.min()) if ok else float("nan"),
            "max": float(data.latencies.max()) if ok else float("nan"),
        },
        "generator_cpu": {
            **(event.get("generator_cpu") or {}),
            "local_processes_percent": dict(cpu.get("generator", {})),
        },
        "generator_cpu_peak": _generator_peak(event, cpu.get("generator", {})),
        "server_cpu_percent": dict(servers),
        "target_server_cpu_percent": sum(float(servers.get(c, 0.0)) for c in _components(target)),
        "other_cpu_percent": float(cpu.get("other", float("nan"))),
        "steal_cpu_percent": float(cpu.get("steal", float("nan"))),
        "server_cpu_ms_per_request": _cpu_per_request(servers, target, ok, duration),
        "latencies_ms": np.round(data.latencies, 4).tolist(),
        "starts": np.round(data.starts - window[0], 6).tolist(),
    }
    if np.isfinite(data.gateway_ms).any():
        record["server_timing_ms"] = {
            "gateway_p50": float(np.nanpercentile(data.gateway_ms, 50)),
            "backend_p50": float(np.nanpercentile(data.backend_ms, 50)),
            "client_p50": percentile(data.latencies, 50),
        }
    return record


def _flag(
    record: StepRecord, ceilings: Mapping[str, float], settings: AnalysisSettings, protocol: str
) -> None:
    reasons = []
    peak = record["generator_cpu_peak"]
    if np.isfinite(peak) and peak >= settings.saturation_cpu:
        reasons.append(f"load generator at {peak:.0f}% CPU")
    ceiling = ceilings.get(protocol)
    if record["target"].startswith("null-"):
        ceiling = None
    if ceiling and record["rps"] >= settings.ceiling_fraction * ceiling:
        reasons.append(
            f"{record['rps']:.0f} req/s is >= {settings.ceiling_fraction:.0%} of the generator's ceiling"
        )
    record["saturated"] = bool(reasons)
    record["saturation"] = reasons


def _calibration(steps: list[StepRecord]) -> dict[str, CalibrationRecord]:
    out: dict[str, CalibrationRecord] = {}
    for name, protocol in (("null-rest", "rest"), ("null-grpc", "grpc")):
        mine = [s for s in steps if s["target"] == name and s["requests"]]
        if not mine:
            continue
        best = max(mine, key=lambda s: s["rps"])
        out[protocol] = {
            "target": name,
            "ceiling_rps": best["rps"],
            "at_step": best["step"],
            "p50_ms_at_1_user": next(
                (s["latency_ms"]["p50"] for s in mine if s["kind"] == "closed" and s["users"] == 1), None
            ),
            "generator_cpu_peak": best["generator_cpu_peak"],
        }
    return out


def _group(steps: Iterable[StepRecord]) -> dict[tuple[str, str], list[StepRecord]]:
    groups: dict[tuple[str, str], list[StepRecord]] = {}
    for step in steps:
        groups.setdefault((step["target"], step["step"]), []).append(step)
    return groups


def _summary_row(
    target: str, step: str, runs: list[StepRecord], iterations: int, rng: np.random.Generator
) -> SummaryRow:
    latencies = [np.asarray(r["latencies_ms"]) for r in runs]
    cost = np.asarray([r.get("server_cpu_ms_per_request", float("nan")) for r in runs], dtype=float)
    rate_runs = [(np.asarray(r["starts"]), (0.0, float(r["duration_s"]))) for r in runs]
    p50, p95, p99 = (bootstrap_percentile(latencies, q, iterations, rng).to_dict() for q in PERCENTILES)
    row: SummaryRow = {
        "target": target,
        "step": step,
        "kind": runs[0]["kind"],
        "users": runs[0]["users"],
        "rate": runs[0]["rate"],
        "repetitions": len(runs),
        "requests": sum(r["requests"] for r in runs),
        "errors": sum(r["error_count"] for r in runs),
        "error_reasons": dict(sum((Counter(r["errors"]) for r in runs), Counter())),
        "saturated": any(r["saturated"] for r in runs),
        "saturation": sorted({reason for r in runs for reason in r["saturation"]}),
        "short": any(r["short"] for r in runs),
        "rps": bootstrap_rate(rate_runs, iterations, rng).to_dict(),
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "generator_cpu_peak": max((r["generator_cpu_peak"] for r in runs), default=float("nan")),
        "target_server_cpu_percent": float(np.median([r["target_server_cpu_percent"] for r in runs])),
        "server_cpu_ms_per_request": float(np.nanmedian(cost)) if np.isfinite(cost).any() else float("nan"),
        "other_cpu_percent": float(np.nanmax([r["other_cpu_percent"] for r in runs]))
        if any(np.isfinite(r["other_cpu_percent"]) for r in runs)
        else float("nan"),
    }
    timing = [r["server_timing_ms"] for r in runs if "server_timing_ms" in r]
    if timing:
        row["server_timing_ms"] = {key: float(np.median([t[key] for t in timing])) for key in timing[0]}
    return row


def _rate_replicates(run: StepRecord, iterations: int, rng: np.random.Generator) -> np.ndarray:
    window = (0.0, float(run["duration_s"]))
    return resample_mean(bin_rates(np.asarray(run["starts"]), window, bins_for(window)), iterations, rng)


def _gateway_added(
    steps: list[StepRecord], iterations: int, rng: np.random.Generator
) -> list[GatewayAddedRow]:
    """Per backend and step: gateway - direct p50/p99 and gateway/direct throughput, per repetition."""
    by_key = {(s["target"], s["step"], s["rep"]): s for s in steps}
    rows: list[GatewayAddedRow] = []
    for via, direct in GATEWAY_PAIRS:
        for step in dict.fromkeys(s["step"] for s in steps if s["target"] == via):
            pairs = [
                (by_key[(via, step, rep)], by_key[(direct, step, rep)])
                for (name, label, rep) in by_key
                if name == via and label == step and (direct, step, rep) in by_key
            ]
            pairs = [(a, b) for a, b in pairs if a["requests"] and b["requests"]]
            if not pairs:
                continue
            arrays = [(np.asarray(a["latencies_ms"]), np.asarray(b["latencies_ms"])) for a, b in pairs]
            ratio_points = [a["rps"] / b["rps"] for a, b in pairs if b["rps"]]
            ratio_reps = [
                _rate_replicates(a, iterations, rng) / _rate_replicates(b, iterations, rng) for a, b in pairs
            ]
            rows.append(
                {
                    "backend": direct,
                    "via": via,
                    "step": step,
                    "repetitions": len(pairs),
                    "added_p50_ms": paired_difference(arrays, 50, iterations, rng).to_dict(),
                    "added_p99_ms": paired_difference(arrays, 99, iterations, rng).to_dict(),
                    "throughput_ratio": estimate(ratio_points, ratio_reps, rng).to_dict(),
                    "saturated": any(a["saturated"] or b["saturated"] for a, b in pairs),
                }
            )
    return rows


Metric = Literal["rps", "p50_ms", "p95_ms", "p99_ms"]
METRICS: tuple[tuple[Metric, bool], ...] = (
    ("rps", False),
    ("p50_ms", True),
    ("p95_ms", True),
    ("p99_ms", True),
)


def _comparisons(summary: list[SummaryRow], steps: list[StepRecord]) -> list[ComparisonRow]:
    """TensorFlow side vs PyTorch side per pair, step and metric.

    The ratio (PyTorch side / TensorFlow side) is formed inside each round, pair by pair, and summarised
    across rounds (:mod:`loadtests.headline`); a winner only where its 95% rerun interval excludes 1.
    """
    rows = {(r["target"], r["step"]): r for r in summary}
    out: list[ComparisonRow] = []
    for label, left, right in HEADLINE_PAIRS:
        for step in dict.fromkeys(r["step"] for r in summary if r["target"] == left):
            a, b = rows.get((left, step)), rows.get((right, step))
            if a is None or b is None:
                continue
            saturated = a["saturated"] or b["saturated"]
            for metric, lower_is_better in METRICS:
                ratio = across_rounds(_per_round_ratio(steps, left, right, step, metric), ratio=True)
                side = None
                if ratio.excludes(1.0) and not (saturated and metric == "rps"):
                    side = right if (ratio.low > 1.0) != lower_is_better else left
                out.append(
                    {
                        "pair": label,
                        "a": left,
                        "b": right,
                        "step": step,
                        "metric": metric,
                        "a_value": a[metric],
                        "b_value": b[metric],
                        "ratio_b_over_a": {
                            "value": ratio.value,
                            "low": ratio.low,
                            "high": ratio.high,
                            "rounds": ratio.rounds,
                        },
                        "winner": side,
                        "saturated": saturated,
                    }
                )
    return out


def _per_round_ratio(steps: list[StepRecord], left: str, right: str, step: str, metric: str) -> list[float]:
    """right / left for one metric, in each round that measured both."""
    by_round = {(s["target"], s["rep"]): s for s in steps if s["step"] == step and s["requests"]}
    rounds = sorted(rep for (name, rep) in by_round if name == left and (right, rep) in by_round)
    if metric == "rps":
        return [by_round[(right, r)]["rps"] / by_round[(left, r)]["rps"] for r in rounds]
    key = metric.removesuffix("_ms")
    return [by_round[(right, r)]["latency_ms"][key] / by_round[(left, r)]["latency_ms"][key] for r in rounds]


def _cdf_step(summary: list[SummaryRow], wanted: str) -> str | None:
    steps = [r for r in summary if r["kind"] == "closed" and not r["target"].startswith("null-")]
    labels = list(dict.fromkeys(r["step"] for r in sorted(steps, key=lambda r: r["users"])))
    if wanted:
        return wanted if wanted in labels else (labels[0] if labels else None)
    clean = [label for label in labels if not any(r["saturated"] for r in steps if r["step"] == label)]
    chosen = clean or labels
    return chosen[-1] if chosen else None


def analyse(
    plan: Plan,
    events: list[dict[str, Any]],
    samples: Mapping[str, Columns],
    cpu_by_phase: Mapping[int, Mapping[str, Any]],
    settings: AnalysisSettings,
    independent: Sequence[WindowRecord] = (),
) -> Analysis:
    """Every figure of the report; ``independent``: the independent client's windows (the harness
    check and the headline's p50 pair from that client)."""
    rng = np.random.default_rng(settings.seed)
    targets = {t.name: t for t in ALL_TARGETS}
    ends = {int(e["phase"]): e for e in events if e.get("event") == "phase_end" and e.get("window")}
    steps: list[StepRecord] = []
    for phase in plan.phases:
        event = ends.get(phase.index)
        if not phase.measured or event is None:
            continue
        window = (float(event["window"][0]), float(event["window"][1]))
        cpu = cpu_by_phase.get(phase.index, {})
        if phase.target != INTERLEAVED:
            data = select_window(samples.get(phase.target), window)
            steps.append(_step_record(phase, event, data, cpu, targets[phase.target]))
            continue
        for name, _ in plan.interleaved:  # one window, each target's own answers in it
            data = select_window(samples.get(name), window)
            record = _step_record(replace(phase, target=name), event, data, cpu, targets[name])
            # The servers' CPU of the window is every target's: none of it is this target's alone.
            record["target_server_cpu_percent"] = record["server_cpu_ms_per_request"] = math.nan
            steps.append(record)
    calibration = _calibration(steps)
    ceilings = {protocol: float(c["ceiling_rps"]) for protocol, c in calibration.items()}
    for record in steps:
        _flag(record, ceilings, settings, targets[record["target"]].protocol)
    summary = [
        _summary_row(target, step, runs, settings.bootstrap, rng)
        for (target, step), runs in _group(steps).items()
    ]
    searched = [e["window"] for e in events if e.get("event") == "phase_end" and "verdict" in e]
    measured_windows = [tuple(s["window"]) for s in steps] + [tuple(w) for w in searched]
    unmeasured = {
        name: sum(
            1
            for start, ms, error in zip(cols.start, cols.ms, cols.error, strict=True)
            if error and not any(w0 <= start and start + ms / 1000 <= w1 for w0, w1 in measured_windows)
        )
        for name, cols in samples.items()
    }
    return {
        "steps": steps,
        "summary": summary,
        "gateway_added": _gateway_added(steps, settings.bootstrap, rng),
        "comparisons": _comparisons(summary, steps),
        "independent": list(independent),
        "headline": headline_json(steps, independent),
        "calibration": calibration,
        "cdf_step": _cdf_step(summary, settings.cdf_step),
        "failures_outside_windows": {name: count for name, count in unmeasured.items() if count},
        "settings": {
            "bootstrap_iterations": settings.bootstrap,
            "seed": settings.seed,
            "confidence": 0.95,
            "saturation_cpu_percent": settings.saturation_cpu,
            "ceiling_fraction": settings.ceiling_fraction,
            "percentile_method": "numpy linear (Hyndman-Fan type 7) on raw float ms",
        },
    }
