"""The headline's method on synthetic data: per-round paired figures, intervals from the spread between
rounds, winners only where the interval excludes no difference, and why rounds must be interleaved."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from loadtests.headline import (
    NO_DIFFERENCE,
    HeadlineFigure,
    across_rounds,
    agreements,
    headline,
    headline_json,
    hodges_lehmann,
    machine_speed,
)
from loadtests.plan import PlanSettings, build_plan
from loadtests.targets import select_targets

TF, TS = "tfserving-rest", "torchserve-rest"


def test_the_hodges_lehmann_centre_of_the_rounds_with_a_rerun_interval() -> None:
    values = [2.0, 2.2, 1.8, 2.0, 2.1]
    summary = across_rounds(values, ratio=True)
    assert summary.value == pytest.approx(2.0, rel=0.01)
    # symmetric around the estimate on a log scale, and the same for the same rounds
    assert math.log(summary.high / summary.value) == pytest.approx(math.log(summary.value / summary.low))
    assert across_rounds(values, ratio=True) == summary
    assert summary.rounds == 5 and summary.excludes(1.0) and not summary.excludes(2.1)
    one_off = across_rounds([2.0, 2.2, 1.8, 2.0, 6.0], ratio=True)
    mean = math.exp(sum(math.log(v) for v in (2.0, 2.2, 1.8, 2.0, 6.0)) / 5)
    assert one_off.value == pytest.approx(2.0, rel=0.06), "one disturbed round moves the estimate little"
    assert mean > 2.4  # where a mean would have gone
    assert across_rounds([0.5, -1.0, 0.2], ratio=False).value == pytest.approx(-0.025)
    wider = across_rounds([1.0, 3.0, 1.5, 2.5, 2.0], ratio=True)
    assert wider.high / wider.low > summary.high / summary.low


def test_hodges_lehmann_is_the_median_of_pairwise_means() -> None:
    # pairwise means of (1, 2, 10): 1, 1.5, 5.5, 2, 6, 10; their median 3.75; one row per sample
    rows = hodges_lehmann(np.array([[1.0, 2.0, 10.0], [0.0, 0.0, 3.0]]))
    assert rows.tolist() == pytest.approx([3.75, 0.75])


def test_too_few_rounds_give_no_interval() -> None:
    summary = across_rounds([2.0, 2.1], ratio=True)
    assert math.isnan(summary.low) and not summary.excludes(1.0)
    assert across_rounds([], ratio=True).rounds == 0
    assert across_rounds([float("nan"), 0.0, 2.0], ratio=True).rounds == 1  # not a ratio: left out


def step(target: str, rep: int, p50: float, rps: float, users: int = 1) -> dict[str, Any]:
    return {
        "target": target,
        "rep": rep,
        "kind": "closed",
        "users": users,
        "step": f"{users} user{'s' if users > 1 else ''}",
        "requests": 500,
        "rps": rps,
        "latency_ms": {"p50": p50},
        "saturated": False,
    }


def figure(steps: list[dict[str, Any]], name: str) -> HeadlineFigure:
    return next(f for f in headline(steps) if f.pair.startswith("REST, direct") and f.figure == name)


def test_a_winner_only_where_the_interval_excludes_no_difference() -> None:
    apart = [s for r in range(6) for s in (step(TF, r, 1.0 + 0.01 * r, 900), step(TS, r, 2.0, 450 + r))]
    p50 = figure(apart, "p50 latency")
    assert p50.winner == TF and p50.value == pytest.approx(1.97, rel=0.02)
    assert figure(apart, "throughput").winner == TF
    noisy = [
        s
        for r, x in enumerate([0.8, 1.3, 0.9, 1.2, 1.0])
        for s in (step(TF, r, 1.0, 900), step(TS, r, x, 900))
    ]
    assert figure(noisy, "p50 latency").winner == NO_DIFFERENCE


def _synthetic_steps(
    schedule: list[tuple[str, int, float]], rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Windows at the given times on a machine that gets 2x slower over the run: TorchServe's true p50 is
    twice TF Serving's, and each window's p50 carries 3% noise."""
    end = max(t for _, _, t in schedule)
    base = {TF: 1.0, TS: 2.0}
    out = []
    for target, rep, t in schedule:
        p50 = base[target] * (1 + t / end) * rng.normal(1.0, 0.03)
        out.append(step(target, rep, p50, 1000 / p50))
    return out


def test_interleaved_rounds_recover_the_true_ratio_and_sequential_windows_do_not() -> None:
    rng = np.random.default_rng(7)
    plan = build_plan(
        select_targets(f"{TF},{TS}"), [], PlanSettings(users=(1,), repetitions=10, warmup_requests=0)
    )
    # The plan's own order: each phase takes a second, measured or not.
    interleaved = [(p.target, p.rep, float(p.index)) for p in plan.phases if p.measured]
    sequential = [(TF, r, float(r)) for r in range(10)] + [(TS, r, float(10 + r)) for r in range(10)]
    fair = figure(_synthetic_steps(interleaved, rng), "p50 latency")
    drifted = figure(_synthetic_steps(sequential, rng), "p50 latency")
    assert fair.low <= 2.0 <= fair.high and fair.value == pytest.approx(2.0, rel=0.1)
    assert not drifted.low <= 2.0 <= drifted.high, (drifted.low, drifted.high)
    assert drifted.value > 2.5  # the drift, not the servers


def test_two_passes_are_paired_by_figure() -> None:
    one = [s for r in range(5) for s in (step(TF, r, 1.0, 900), step(TS, r, 2.0 + 0.02 * r, 450))]
    two = [s for r in range(5) for s in (step(TF, r, 1.0, 900), step(TS, r, 2.1 - 0.02 * r, 440))]
    rows = {row.id: row for row in agreements(headline(one), headline(two))}
    p50 = rows["REST, direct (headline) | p50 latency | 1 user"]
    assert p50.each_contains_the_other and p50.same_winner
    assert p50.relative_change == pytest.approx(0.01, abs=0.01)
    data = headline_json(one)
    assert data["rounds"] == 5 and {f["id"] for f in data["figures"]} == {r.id for r in headline(one)}
    assert HeadlineFigure.from_json(data["figures"][0]) == headline(one)[0]


def independent_windows(p50_by_target: dict[str, float], rounds: int = 5) -> list[dict[str, Any]]:
    """The independent client's window of each target in each round, at a fixed p50."""
    return [
        {**step(target, r, p50, 0.0), "kind": "independent", "step": "1 user, independent client"}
        for r in range(rounds)
        for target, p50 in p50_by_target.items()
    ]


def test_the_harness_check_pairs_locust_with_the_independent_client_round_by_round() -> None:
    locust = [s for r in range(5) for s in (step(TF, r, 1.5 + 0.01 * r, 600), step(TS, r, 3.0, 300))]
    alone = independent_windows({TF: 1.0, TS: 2.9})
    figures = {f.id: f for f in headline(locust, alone)}
    tf = figures[f"harness check: {TF} | Locust p50 / independent client p50 | 1 user"]
    assert tf.value == pytest.approx(1.52, rel=0.02) and tf.winner.startswith("Locust reads higher")
    ts = figures[f"harness check: {TS} | Locust p50 / independent client p50 | 1 user"]
    assert ts.winner == "agrees within 15%"
    from_client = figures["REST, direct (headline) | p50 latency | 1 user, independent client"]
    assert from_client.value == pytest.approx(2.9) and from_client.winner == TF
    # where the independent client measured both sides, the headline's p50 is its figure, not Locust's
    assert "REST, direct (headline) | p50 latency | 1 user" not in figures


def test_the_gateway_cost_at_one_user_comes_from_the_independent_client_where_it_measured_both() -> None:
    via = f"gateway/{TF}"
    locust = [s for r in range(5) for s in (step(TF, r, 1.0, 900), step(via, r, 3.0, 500))]
    alone = independent_windows({TF: 0.8, via: 1.3})
    figures = {f.id: f for f in headline(locust, alone)}
    added = figures[f"gateway cost: {TF} | added p50 latency | 1 user, independent client"]
    assert added.value == pytest.approx(0.5) and added.winner == TF  # the direct call is the faster
    assert f"gateway cost: {TF} | added p50 latency | 1 user" not in figures
    without = {f.id: f for f in headline(locust)}
    assert without[f"gateway cost: {TF} | added p50 latency | 1 user"].value == pytest.approx(2.0)


def test_the_machines_speed_across_rounds_is_read_from_the_independent_client() -> None:
    steady = independent_windows({TF: 1.0, TS: 3.0}, rounds=4)
    assert machine_speed(steady)["slowest_over_fastest"] == pytest.approx(1.0)
    # rounds 0-1 twice as slow for every target: the ratio between targets is unchanged
    slow_start = [
        {**record, "latency_ms": {"p50": record["latency_ms"]["p50"] * (2.0 if record["rep"] < 2 else 1.0)}}
        for record in steady
    ]
    speed = machine_speed(slow_start)
    assert speed["slowest_over_fastest"] == pytest.approx(2.0)
    assert speed["rounds"] == [0, 1, 2, 3] and speed["per_round"][0] > speed["per_round"][3]
    steps = [step(TF, r, 1.0, 900) for r in range(4)]
    assert headline_json(steps, slow_start)["machine_speed"]["slowest_over_fastest"] == pytest.approx(2.0)
    assert machine_speed([])["per_round"] == []
    assert headline_json(steps, [])["machine_speed"]["slowest_over_fastest"] is None


def concurrent_windows(rps_by_target: dict[str, float], connections: int = 8) -> list[dict[str, Any]]:
    """The independent client's concurrent part of each round, at a fixed throughput."""
    step_name = f"{connections} connections, independent client"
    return [
        {**step(target, r, 5.0, rps, users=connections), "kind": "independent", "step": step_name}
        for r in range(5)
        for target, rps in rps_by_target.items()
    ]


def test_throughput_comes_from_the_independent_clients_concurrent_part_where_it_measured_both() -> None:
    via = f"gateway/{TF}"
    locust = [
        s
        for r in range(5)
        for s in (step(TF, r, 1.0, 600, users=8), step(TS, r, 2.0, 300, users=8), step(via, r, 2.0, 200, 8))
    ]
    together = concurrent_windows({TF: 800.0, TS: 200.0, via: 400.0})
    figures = {f.id: f for f in headline(locust, together)}
    direct = figures["REST, direct (headline) | throughput | 8 connections, independent client"]
    assert direct.value == pytest.approx(0.25) and direct.winner == TF
    share = figures[f"gateway cost: {TF} | throughput | 8 connections, independent client"]
    assert share.value == pytest.approx(0.5)
    assert "REST, direct (headline) | throughput | 8 users" not in figures, "Locust's is the check only"
    check = figures[f"harness check: {TS} | Locust throughput / independent client throughput | 8 users"]
    assert check.value == pytest.approx(1.5) and check.winner.startswith("Locust reads higher")
    agrees = figures[f"harness check: {TF} | Locust throughput / independent client throughput | 8 users"]
    assert agrees.value == pytest.approx(0.75) and agrees.winner.startswith("Locust reads lower")
    # the 1-user figures are unaffected, and the machine's speed is read from 1-user windows only
    assert machine_speed(together)["per_round"] == []
    without = {f.id: f for f in headline(locust)}
    assert without["REST, direct (headline) | throughput | 8 users"].value == pytest.approx(0.5)
