"""What the live progress says at a drain (recorded events; no Locust, no servers)."""

from __future__ import annotations

from loadtests.plan import PlanSettings, build_plan
from loadtests.progress import RunMonitor
from loadtests.targets import select_targets


def test_a_drain_that_stopped_waiting_for_users_is_reported() -> None:
    plan = build_plan(select_targets("tfserving-rest"), [], PlanSettings(users=(1,), repetitions=1))
    drain = next(p for p in plan.phases if p.kind == "drain")
    said: list[str] = []
    monitor = RunMonitor(plan, {}, said.append)
    monitor.on_event({"event": "phase_end", "phase": drain.index, "time": 0.0, "users_left": 0})
    assert said == []  # every user stopped: nothing to say
    monitor.on_event({"event": "phase_end", "phase": drain.index, "time": 0.0, "users_left": 12})
    assert len(said) == 1 and "12 users of tfserving-rest were still running" in said[0]
