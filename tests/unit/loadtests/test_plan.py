"""The plan's order and phases, and the sequencer that walks it (fake clock and counter)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from loadtests.capacity import SearchSettings
from loadtests.plan import INTERLEAVED, INTERLEAVED_USER, Plan, PlanSettings, Sequencer, build_plan
from loadtests.targets import CALIBRATION, select_targets

SETTINGS = PlanSettings(
    users=(1, 4),
    repetitions=2,
    min_requests=100,
    step_s=2.0,
    max_step_s=10.0,
    settle_s=1.0,
    warmup_requests=50,
    warmup_s=5.0,
    drain_s=1.0,
)


def test_rounds_visit_in_random_orders_and_calibrate_and_warm_up_once() -> None:
    targets = select_targets("tfserving-rest,torchserve-rest,v2-rest")
    plan = build_plan(targets, CALIBRATION, dataclasses.replace(SETTINGS, repetitions=8))
    warmups = [(p.rep, p.target) for p in plan.phases if p.kind == "warmup"]
    assert warmups == [(0, "null-rest"), (0, "null-grpc")] + [(0, t) for t in _order(plan, 0)]
    orders = {tuple(_order(plan, rep)) for rep in range(8)}
    assert len(orders) > 1, "every round in the same order"
    assert all(sorted(order) == sorted(t.name for t in targets) for order in orders)
    again = build_plan(targets, CALIBRATION, dataclasses.replace(SETTINGS, repetitions=8))
    assert again == plan, "the order comes from the seed"
    reseeded = build_plan(targets, CALIBRATION, dataclasses.replace(SETTINGS, repetitions=8, order_seed=1))
    assert [_order(reseeded, r) for r in range(8)] != [_order(plan, r) for r in range(8)]
    kinds = [p.kind for p in plan.phases if p.rep == 1 and p.target == "tfserving-rest"]
    assert kinds == ["closed", "closed", "drain"]
    assert [p.users for p in plan.phases if p.target == "tfserving-rest" and p.kind == "closed"] == [1, 4] * 8


def _order(plan: Plan, rep: int) -> list[str]:
    serving = [p.target for p in plan.phases if p.rep == rep and p.kind == "closed" and p.users == 1]
    return [name for name in serving if not name.startswith("null-")]


def test_every_round_ends_with_one_interleaved_independent_window() -> None:
    settings = dataclasses.replace(
        SETTINGS, repetitions=3, independent=("tfserving-rest", "torchserve-rest"), independent_s=2.5
    )
    plan = build_plan(select_targets("tfserving-rest,torchserve-rest"), [], settings)
    for rep in range(3):
        kinds = [(p.kind, p.target) for p in plan.phases if p.rep == rep]
        assert kinds[-1] == ("independent", INTERLEAVED)
        assert [k for k in kinds if k[0] == "independent"] == [("independent", INTERLEAVED)]
    alone = [p for p in plan.phases if p.kind == "independent"]
    assert alone[0].min_requests == 0 and alone[0].min_s == alone[0].max_s == 2.5
    assert Plan.from_json(plan.to_json()) == plan
    plain = build_plan(select_targets("tfserving-rest,torchserve-rest"), [], SETTINGS)
    assert not [p for p in plain.phases if p.kind == "independent"]


def test_the_independent_window_is_the_rounds_last_drain() -> None:
    """Locust holds 0 users through the independent window, so the round's last visit needs no drain
    of its own; every other visit keeps its drain, and the window ends only once Locust runs no user."""
    settings = dataclasses.replace(SETTINGS, users=(4, 1), independent=("torchserve-rest",))
    plan = build_plan(select_targets("tfserving-rest,torchserve-rest"), [], settings)
    rounds = [[(p.kind, p.users) for p in plan.phases if p.rep == rep] for rep in range(2)]
    first_visit, last_visit = [("closed", 4), ("closed", 1), ("drain", 0)], [("closed", 4), ("closed", 1)]
    assert rounds[1] == [*first_visit, *last_visit, ("independent", 0)]
    clock, running = Clock(), {"users": 1}
    sequencer = Sequencer(
        plan,
        start_counting=lambda target, since: None,
        counted=lambda: 10_000,
        emit=lambda event: None,
        clock=clock,
        running=lambda: running["users"],
    )
    for _ in range(100):
        clock.now += 1.0
        assert sequencer.tick() is not None
        if sequencer.current is not None and sequencer.current.kind == "independent":
            break
    window = sequencer.current
    assert window is not None
    clock.now += window.settle_s + window.min_s + 3.0
    assert sequencer.tick() is not None and sequencer.current is window  # a Locust user still runs
    running["users"] = 0
    assert sequencer.tick() is not None and sequencer.current is not window


def test_rate_steps_are_paced_users() -> None:
    plan = build_plan(select_targets("tfserving-rest"), [], PlanSettings(users=(1, 8), rates=(50.0,)))
    rate = [p for p in plan.phases if p.kind == "rate"]
    assert [(p.users, p.rate, p.step) for p in rate] == [(8, 50.0, "50 req/s")] * 3


def test_plan_round_trips_through_json(tmp_path: Path) -> None:
    plan = build_plan(select_targets("gateway"), CALIBRATION, SETTINGS)
    plan.write(tmp_path / "plan.json")
    assert Plan.read(tmp_path / "plan.json") == plan


@pytest.mark.parametrize(
    "settings", [PlanSettings(users=()), PlanSettings(users=(0,)), PlanSettings(repetitions=0)]
)
def test_impossible_plans_are_refused(settings: PlanSettings) -> None:
    with pytest.raises(ValueError):
        build_plan(select_targets("all"), [], settings)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sequencer_walks_warmup_steps_and_drain() -> None:
    plan = build_plan(select_targets("tfserving-rest"), [], dataclasses.replace(SETTINGS, repetitions=1))
    clock = Clock()
    counted = {"n": 0}
    watches: list[tuple[str, float]] = []
    events: list[dict[str, Any]] = []
    sequencer = Sequencer(
        plan,
        start_counting=lambda target, since: (watches.append((target, since)), counted.update(n=0)),
        counted=lambda: counted["n"],
        emit=events.append,
        clock=clock,
    )
    assert sequencer.tick() == (4, plan.spawn_rate, "TFServingRestUser")  # warm-up at 4 users
    counted["n"] = 49
    clock.now += 1
    assert sequencer.tick()[0] == 4  # 49 < 50 warm-up requests
    counted["n"] = 50
    clock.now += 1
    assert sequencer.tick()[0] == 1  # warm-up done: first step, 1 user
    first_step_start = clock.now
    clock.now += 1  # the window opens after 1 s of settling
    counted["n"] = 0
    assert sequencer.tick()[0] == 1
    assert watches[-1] == ("tfserving-rest", first_step_start + 1.0)
    counted["n"] = 500
    clock.now += 1.5  # enough requests, but only 1.5 s of the 2 s minimum
    assert sequencer.tick()[0] == 1
    clock.now += 0.5
    assert sequencer.tick()[0] == 4  # next step
    for _ in range(10):
        clock.now += 1
        assert sequencer.tick()[0] == 4  # too few requests: waits up to max_step_s
        counted["n"] = 3
    clock.now += 1
    assert sequencer.tick()[0] == 0  # max_step_s reached: drain with zero users
    clock.now += 1
    assert sequencer.tick() is None
    ends = [e for e in events if e["event"] == "phase_end"]
    assert [e["requests"] for e in ends] == [50, 500, 3, 0]
    closed = ends[1]
    assert closed["window"] == [first_step_start + 1.0, first_step_start + 3.0]
    assert events[-1]["event"] == "plan_end"


def test_a_drain_lasts_until_locust_runs_no_user_or_its_wait_ends() -> None:
    """Locust keeps running users of a class the next tick no longer names: a drain that ended on its
    clock alone let a capacity pool's last users run on into the next target's warm-up."""
    from loadtests.plan import DRAIN_WAIT_S

    plan = build_plan(
        select_targets("tfserving-rest,torchserve-rest"), [], dataclasses.replace(SETTINGS, users=(1,))
    )
    clock = Clock()
    running = {"users": 0}
    events: list[dict[str, Any]] = []
    sequencer = Sequencer(
        plan,
        start_counting=lambda target, since: None,
        counted=lambda: 10_000,  # every step has its requests at once
        emit=events.append,
        clock=clock,
        running=lambda: running["users"],
    )

    def tick_until_drain() -> None:
        for _ in range(100):
            clock.now += 1.0
            state = sequencer.tick()
            assert state is not None
            if sequencer.current is not None and sequencer.current.kind == "drain":
                return
        raise AssertionError("no drain")

    tick_until_drain()
    first_drain = sequencer.current
    running["users"] = 300  # still stopping
    clock.now += plan.phases[first_drain.index].min_s + 5.0
    assert sequencer.tick() is not None and sequencer.current is first_drain  # waits past its length
    running["users"] = 0
    clock.now += 0.1
    assert sequencer.tick() is not None and sequencer.current is not first_drain  # all stopped: go on
    assert [e.get("users_left") for e in events if e.get("phase") == first_drain.index][-1] == 0
    tick_until_drain()
    second_drain = sequencer.current
    running["users"] = 3  # never stop
    clock.now += plan.phases[second_drain.index].min_s + DRAIN_WAIT_S + 0.5
    sequencer.tick()
    assert sequencer.current is not second_drain  # the wait is bounded
    assert [e.get("users_left") for e in events if e.get("phase") == second_drain.index][-1] == 3


def test_sequencer_runs_a_capacity_search_chosen_while_running() -> None:
    """A fake judge with a known capacity (300 req/s): the slots follow the search, the rest are skipped."""
    plan = _capacity_plan(SearchSettings(precision=0.2, max_steps=8, pool_users=4), capacity_step_s=1.0)
    assert [p.kind for p in plan.phases] == ["closed"] + ["capacity"] * 8 + ["drain"]
    assert Plan.from_json(plan.to_json()) == plan
    clock = Clock()
    events: list[dict[str, Any]] = []
    judged: list[float] = []

    def judge(phase: Any, rate: float, window: tuple[float, float]) -> dict[str, Any]:
        judged.append(rate)
        return {"outcome": "pass" if rate <= 300 else "fail"}

    sequencer = Sequencer(
        plan,
        start_counting=lambda *_: None,
        counted=lambda: 200,
        emit=events.append,
        clock=clock,
        judge=judge,
    )
    users = []
    while (state := sequencer.tick()) is not None:
        users.append(state[0])
        clock.now += 1
    assert judged[0] == 100.0  # half the closed-loop step's 200 req/s
    assert judged[:3] == [100.0, 200.0, 400.0]  # exponential until a failure, then bisection
    assert max(r for r in judged if r <= 300) >= 300 / 1.2 and len(judged) < 8
    ends = [e for e in events if e["event"] == "phase_end" and "verdict" in e]
    assert [e["rate"] for e in ends] == judged
    searching = users[1:-1]  # between the closed step and the drain
    assert max(searching) == 16 and searching == sorted(searching)  # 4 x 400 req/s x 10 ms; never shrinks


def _capacity_plan(search: SearchSettings, capacity_step_s: float) -> Plan:
    """One closed-loop step of 1 user, then capacity steps of ``capacity_step_s`` to 2 s."""
    settings = PlanSettings(
        users=(1,),
        repetitions=1,
        min_requests=10,
        step_s=1.0,
        max_step_s=2.0,
        settle_s=0.0,
        warmup_requests=0,
        search=search,
        capacity_step_s=capacity_step_s,
        capacity_max_step_s=2.0,
        capacity_min_requests=10,
    )
    return build_plan(select_targets("tfserving-rest"), [], settings)


def _one_capacity_step() -> Plan:
    """One closed-loop step, then one 2 s capacity step at 100 req/s."""
    return _capacity_plan(SearchSettings(start_rps=100.0, max_steps=1), capacity_step_s=2.0)


def test_a_capacity_step_is_judged_once_every_worker_has_reported_its_window() -> None:
    """Remote workers ship samples with their reports: the step holds its rate until the oldest
    report is newer than the window's end, and the judge gets the window as it closed."""
    plan = _one_capacity_step()
    clock = Clock()
    reported = {"until": 0.0}
    windows: list[tuple[float, float]] = []

    def judge(phase: Any, rate: float, window: tuple[float, float]) -> dict[str, Any]:
        windows.append(window)
        return {"outcome": "pass"}

    sequencer = Sequencer(
        plan,
        start_counting=lambda *_: None,
        counted=lambda: 200,
        emit=lambda event: None,
        clock=clock,
        judge=judge,
        samples_until=lambda: reported["until"],
    )
    while sequencer.current is None or sequencer.current.kind != "capacity":
        sequencer.tick()
        clock.now += 1
    opened = clock.now - 1
    for _ in range(5):  # the window is over after 2 s, but no worker has reported since
        sequencer.tick()
        clock.now += 1
    assert not windows and sequencer.rate == 100.0  # still offering the step's rate
    reported["until"] = clock.now  # every worker reported after the window closed
    sequencer.tick()
    assert windows == [(opened, opened + 2.0)]


def test_a_worker_that_stops_reporting_delays_a_step_by_at_most_the_wait_limit() -> None:
    from loadtests.plan import SAMPLES_WAIT_S

    clock = Clock()
    windows: list[tuple[float, float]] = []

    def judge(phase: Any, rate: float, window: tuple[float, float]) -> dict[str, Any]:
        windows.append(window)
        return {"outcome": "pass"}

    sequencer = Sequencer(
        _one_capacity_step(),
        start_counting=lambda *_: None,
        counted=lambda: 200,
        emit=lambda event: None,
        clock=clock,
        judge=judge,
        samples_until=lambda: 0.0,  # never reports
    )
    began = clock.now
    while sequencer.tick() is not None and clock.now < began + 100:
        clock.now += 1
    assert len(windows) == 1 and windows[0][1] - windows[0][0] == 2.0
    assert windows[0][1] + SAMPLES_WAIT_S < clock.now < began + 100  # judged after the wait; the plan ended


def test_interleaved_locust_steps_take_the_rest_targets_together_and_visit_the_others(tmp_path: Path) -> None:
    settings = PlanSettings(
        users=(1, 8),
        repetitions=2,
        step_s=0.5,
        warmup_requests=0,
        interleave_locust=True,
        independent=("tfserving-rest", "torchserve-rest"),
    )
    targets = select_targets("tfserving-rest,torchserve-rest,tfserving-grpc")
    plan = build_plan(targets, [], settings)
    assert plan.interleaved == (
        ("tfserving-rest", "TFServingRestUser"),
        ("torchserve-rest", "TorchServeRestUser"),
    )
    for rep in range(2):
        phases = [(p.target, p.kind, p.users) for p in plan.phases if p.rep == rep]
        assert phases[:3] == [
            (INTERLEAVED, "closed", 1),
            (INTERLEAVED, "closed", 8),
            (INTERLEAVED, "drain", 0),
        ]
        assert ("tfserving-grpc", "closed", 8) in phases, "a gRPC target is still visited on its own"
        assert not [p for p in phases if p[0] in ("tfserving-rest", "torchserve-rest")], (
            "no REST visit of its own"
        )
        assert phases[-1] == (INTERLEAVED, "independent", 0)
    together = next(p for p in plan.phases if p.user_class == INTERLEAVED_USER)
    assert (together.min_s, together.max_s, together.min_requests) == (1.0, 1.0, 0), "step_s per target"
    plan.write(tmp_path / "plan.json")
    assert Plan.read(tmp_path / "plan.json") == plan
