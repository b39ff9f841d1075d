"""From samples and phase windows to figures: window selection, flags, gateway-added latency, winners."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from loadtests.analysis import AnalysisSettings, analyse, select_window
from loadtests.plan import PlanSettings, build_plan
from loadtests.recorder import Columns
from loadtests.targets import CALIBRATION, select_targets

SETTINGS = AnalysisSettings(bootstrap=200, seed=1)


def columns(starts: list[float], ms: list[float], errors: list[str] | None = None) -> Columns:
    nan = float("nan")
    return Columns(starts, ms, errors or [""] * len(starts), [nan] * len(starts), [nan] * len(starts))


def test_only_requests_inside_the_window_are_measured() -> None:
    data = columns(
        [9.9, 10.0, 10.5, 10.99, 11.0, 12.0],
        [1.0, 2.0, 3.0, 20.0, 1.0, 1.0],
        ["", "", "HTTP 500", "", "", ""],
    )
    picked = select_window(data, (10.0, 11.0))
    # 9.9 starts before the window, 10.99 + 20 ms ends after it, 11.0 and 12.0 start when it has closed.
    assert picked.latencies.tolist() == [2.0]
    assert dict(picked.errors) == {"HTTP 500": 1}


def synthetic_run(
    latency: dict[str, float], cpu: float = 20.0
) -> tuple[Any, list[dict[str, Any]], dict[str, Columns]]:
    """Every target answers at a constant rate with latencies around ``latency[target]`` ms."""
    targets = select_targets("tfserving-rest,torchserve-rest,gateway/tfserving-rest")
    plan = build_plan(targets, CALIBRATION[:1], PlanSettings(users=(1,), repetitions=4, warmup_requests=0))
    rng = np.random.default_rng(0)
    events: list[dict[str, Any]] = []
    samples: dict[str, Columns] = {}
    clock = 0.0
    for phase in plan.phases:
        if not phase.measured:
            clock += 1.0
            continue
        window = [clock, clock + 5.0]
        mean = latency[phase.target]
        rate = 1000.0 / mean
        starts = np.arange(clock, clock + 5.0 - mean / 1000, 1 / rate)
        ms = rng.normal(mean, mean / 20, starts.size).clip(0.01)
        cols = samples.setdefault(phase.target, columns([], []))
        cols.extend(columns(starts.tolist(), ms.tolist()))
        generator = 95.0 if phase.target.startswith("null") else cpu
        events.append(
            {
                "event": "phase_end",
                "phase": phase.index,
                "window": window,
                "requests": int(starts.size),
                "generator_cpu": {"role": "standalone", "own_percent": generator, "workers_percent": {}},
            }
        )
        clock += 6.0
    return plan, events, samples


def test_figures_flags_and_comparisons() -> None:
    plan, events, samples = synthetic_run(
        {"null-rest": 0.25, "tfserving-rest": 2.0, "torchserve-rest": 4.0, "gateway/tfserving-rest": 3.0}
    )
    results = analyse(plan, events, samples, {}, SETTINGS)
    rows = {r["target"]: r for r in results["summary"]}
    assert rows["tfserving-rest"]["repetitions"] == 4
    assert rows["tfserving-rest"]["p50_ms"]["value"] == pytest.approx(2.0, rel=0.02)
    assert rows["torchserve-rest"]["rps"]["value"] == pytest.approx(250.0, rel=0.02)
    assert rows["null-rest"]["saturated"] and not rows["tfserving-rest"]["saturated"]
    assert results["calibration"]["rest"]["ceiling_rps"] == pytest.approx(4000.0, rel=0.02)
    added = results["gateway_added"][0]
    assert added["backend"] == "tfserving-rest"
    assert added["added_p50_ms"]["value"] == pytest.approx(1.0, abs=0.1)
    assert added["throughput_ratio"]["value"] == pytest.approx(2 / 3, rel=0.03)
    headline = {c["metric"]: c for c in results["comparisons"] if c["pair"].startswith("REST, direct")}
    assert headline["p50_ms"]["winner"] == "tfserving-rest"
    assert headline["rps"]["winner"] == "tfserving-rest"
    assert headline["p50_ms"]["ratio_b_over_a"]["value"] == pytest.approx(2.0, rel=0.05)
    assert headline["rps"]["ratio_b_over_a"]["value"] == pytest.approx(0.5, rel=0.05)
    assert results["cdf_step"] == "1 user"
    figures = {(f["pair"], f["figure"]): f for f in results["headline"]["figures"]}
    p50 = figures[("REST, direct (headline)", "p50 latency")]
    assert p50["value"] == pytest.approx(2.0, rel=0.05) and p50["winner"] == "tfserving-rest"
    assert p50["rounds"] == 4 and p50["low"] < p50["value"] < p50["high"]
    added_p50 = figures[("gateway cost: tfserving-rest", "added p50 latency")]
    assert added_p50["kind"] == "difference" and added_p50["value"] == pytest.approx(1.0, abs=0.1)
    assert added_p50["winner"] == "tfserving-rest", "the direct call is the faster one"


def test_a_saturated_generator_gets_no_throughput_winner() -> None:
    plan, events, samples = synthetic_run(
        {"null-rest": 0.25, "tfserving-rest": 2.0, "torchserve-rest": 4.0, "gateway/tfserving-rest": 3.0},
        cpu=92.0,
    )
    results = analyse(plan, events, samples, {}, SETTINGS)
    rps = next(
        c for c in results["comparisons"] if c["metric"] == "rps" and c["pair"].startswith("REST, direct")
    )
    assert rps["saturated"] and rps["winner"] is None
    assert "load generator at 92% CPU" in results["summary"][1]["saturation"]


def test_failures_are_counted_not_timed() -> None:
    plan, events, samples = synthetic_run(
        {"null-rest": 0.25, "tfserving-rest": 2.0, "torchserve-rest": 4.0, "gateway/tfserving-rest": 3.0}
    )
    torch = samples["torchserve-rest"]
    for i in range(0, len(torch.error), 10):
        torch.error[i] = "wrong digit: 1 for a 7"
        torch.ms[i] = 50.0
    torch.error[-1] = "HTTP 503"
    torch.start[-1] = 1e9  # outside every window
    results = analyse(plan, events, samples, {}, SETTINGS)
    row = next(r for r in results["summary"] if r["target"] == "torchserve-rest")
    assert row["errors"] > 0 and set(row["error_reasons"]) == {"wrong digit: 1 for a 7"}
    assert row["p99_ms"]["value"] < 10  # the failed requests (50 ms) are not in the percentiles
    # The one that started long after every window (and any slow failure crossing a window's end).
    assert set(results["failures_outside_windows"]) == {"torchserve-rest"}


def test_an_interleaved_step_gives_each_target_its_own_record_per_round() -> None:
    targets = select_targets("tfserving-rest,torchserve-rest")
    settings = PlanSettings(users=(1,), repetitions=3, warmup_requests=0, interleave_locust=True)
    plan = build_plan(targets, [], settings)
    events: list[dict[str, Any]] = []
    samples = {name: columns([], []) for name in ("tfserving-rest", "torchserve-rest")}
    samples.update({f"{name} (block start)": columns([], []) for name in list(samples)})
    clock = 0.0
    for phase in plan.phases:
        if phase.measured:  # the two targets in turn inside one window: 2 ms and 4 ms
            for i in range(100):
                name = ("tfserving-rest", "torchserve-rest")[(i // 10) % 2]
                counted = i % 10 >= 3
                ms = 2.0 if name == "tfserving-rest" else 4.0
                samples[name if counted else name + " (block start)"].extend(
                    columns([clock + 0.01 * i], [ms])
                )
            events.append({"event": "phase_end", "phase": phase.index, "window": [clock, clock + 1.1]})
        clock += 2.0
    results = analyse(
        plan,
        events,
        samples,
        {phase.index: {"servers": {"tfserving": 50.0}} for phase in plan.phases},
        SETTINGS,
    )
    steps = [(s["target"], s["rep"], s["requests"]) for s in results["steps"]]
    assert steps == [(name, rep, 35) for rep in range(3) for name in ("tfserving-rest", "torchserve-rest")]
    first = results["steps"][0]
    assert first["latency_ms"]["p50"] == 2.0 and first["step"] == "1 user"
    assert np.isnan(first["server_cpu_ms_per_request"]), "the window's server CPU is no one target's"
    ratio = next(c for c in results["comparisons"] if c["metric"] == "p50_ms")
    assert ratio["ratio_b_over_a"]["value"] == pytest.approx(2.0)
