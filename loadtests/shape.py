"""The Locust load shape that runs a comparison plan (``loadtests.plan``) inside one Locust run.

Runs where the shape runs (standalone process or master). Each tick it asks the plan's
:class:`~loadtests.plan.Sequencer` what to run now; between targets the plan drains to zero users
(Locust keeps running users of a class that a tick no longer names, so a target switch always passes
through zero). It writes each plan event as a JSON line to ``--events-file`` and to stdout (prefixed
``LOADTEST_EVENT``) for the runner's progress and CPU accounting, and adds to every ``phase_end`` the
load generator's CPU use during the phase: this process's own (``time.process_time``) and each
worker's as the worker reports it in its heartbeats.

In a capacity step it turns the users' Poisson arrivals on at the step's rate (split evenly between
workers) and judges the step when it ends from the raw samples that have reached this process
(:func:`loadtests.capacity.judge_window`); the verdict steers the search and goes into the event.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from locust import LoadTestShape, events
from locust.runners import MasterRunner

from loadtests import open_loop, users
from loadtests.capacity import judge_window
from loadtests.plan import EVENT_PREFIX, INTERLEAVED, Phase, Plan, Sequencer

__all__ = ["ComparisonShape"]


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("comparison plan (loadtests)")
    group.add_argument("--plan-file", default="", env_var="LOADTEST_PLAN_FILE", help="plan JSON (runner)")
    group.add_argument("--events-file", default="", env_var="LOADTEST_EVENTS_FILE", help="events JSON lines")


class ComparisonShape(LoadTestShape):
    """Walks the plan: warm-up, concurrency steps, fixed-rate steps and a drain, per target and repetition."""

    def __init__(self) -> None:
        super().__init__()
        self._sequencer: Sequencer | None = None
        self._events_path: Path | None = None
        self._classes = dict(users.USER_CLASSES)
        self._cpu_mark: tuple[float, float] | None = None
        self._worker_cpu: dict[str, list[float]] = {}
        self._pace: float | None = None
        self._arrivals: float | None = None

    def _start(self) -> Sequencer:
        assert self.runner is not None, "Locust sets the runner before the first tick"
        options = self.runner.environment.parsed_options
        plan_file = getattr(options, "plan_file", "") if options else ""
        if not plan_file:
            raise ValueError("ComparisonShape needs --plan-file (written by `python -m loadtests compare`)")
        events_file = getattr(options, "events_file", "") if options else ""
        self._events_path = Path(events_file) if events_file else None
        return Sequencer(
            Plan.read(Path(plan_file)),
            start_counting=users.RECORDER.watch,
            counted=lambda: users.RECORDER.watched,
            emit=self._emit,
            judge=self._judge,
            samples_until=self._samples_until,
            running=lambda: self.runner.user_count if self.runner is not None else 0,
        )

    def _samples_until(self) -> float:
        """Up to when every sample has reached this process: now, or the oldest of the workers' last
        reports (each worker ships what it recorded with every report)."""
        if not isinstance(self.runner, MasterRunner):
            return time.time()
        return users.RECORDER.reported_until(self.runner.worker_count)

    def tick(self) -> tuple[int, float, list[type[Any]]] | None:
        if self._sequencer is None:
            self._sequencer = self._start()
        self._sample_workers()
        state = self._sequencer.tick()
        if state is None:
            return None
        count, spawn_rate, class_name = state
        phase = self._sequencer.current
        pace = phase.rate / count if phase is not None and phase.rate and count else None
        if pace != self._pace:
            self._pace = pace
            users.set_pace(pace)
            if isinstance(self.runner, MasterRunner):
                self.runner.send_message(users.PACE_MESSAGE, {"per_user": pace})
        self._set_arrivals(self._sequencer.rate)
        return count, spawn_rate, [self._classes[class_name]]

    def _set_arrivals(self, rate: float | None) -> None:
        if rate == self._arrivals:
            return
        self._arrivals = rate
        if isinstance(self.runner, MasterRunner):
            share = rate / max(1, self.runner.worker_count) if rate else None
            self.runner.send_message(open_loop.ARRIVALS_MESSAGE, {"rate": share})
        else:
            open_loop.set_arrivals(rate)

    def _judge(self, phase: Phase, rate: float, window: tuple[float, float]) -> dict[str, Any]:
        cpu = self._generator_cpu()
        values = [float(v) for v in (cpu.get("workers_percent") or {}).values()]
        if cpu.get("role") == "standalone":
            values.append(float(cpu.get("own_percent", 0.0)))
        assert self._sequencer is not None
        verdict = judge_window(
            users.RECORDER.columns.get(phase.target),
            window,
            rate,
            generator_cpu=max(values) if values else float("nan"),
            slo=self._sequencer.plan.settings.slo,
        )
        return verdict.to_dict()

    def _sample_workers(self) -> None:
        if self._cpu_mark is None or not isinstance(self.runner, MasterRunner):
            return
        for worker in self.runner.clients.values():
            self._worker_cpu.setdefault(str(worker.id), []).append(float(worker.cpu_usage))

    def _emit(self, event: dict[str, Any]) -> None:
        if event["event"] == "phase_start":
            # CPU is accounted over the whole phase (ramp and settling included): a window can open and
            # close within one tick, too short to measure.
            self._cpu_mark = (time.process_time(), time.time())
            self._worker_cpu = {}
        elif event["event"] == "phase_end":
            event["generator_cpu"] = self._generator_cpu()
            plan = self._sequencer.plan if self._sequencer else None
            phase = plan.phases[event["phase"]] if plan else None
            if (
                plan is not None
                and phase is not None
                and phase.kind == "closed"
                and phase.target == INTERLEAVED
            ):
                # one window, every target of the step: each one's figures, and the step's total
                each = {
                    name: users.RECORDER.window_summary(name, *event["window"])
                    for name, _ in plan.interleaved
                }
                event["targets"] = each
                event["requests"] = sum(int(summary["requests"] or 0) for summary in each.values())
                event["failures"] = sum(int(summary["failures"] or 0) for summary in each.values())
            elif phase is not None and event.get("window"):
                event.update(users.RECORDER.window_summary(phase.target, *event["window"]))
            self._cpu_mark = None
        line = json.dumps(event)
        if self._events_path is not None:
            with self._events_path.open("a") as stream:
                stream.write(line + "\n")
        print(EVENT_PREFIX + line, flush=True)

    def _generator_cpu(self) -> dict[str, Any]:
        if self._cpu_mark is None:
            return {}
        cpu0, wall0 = self._cpu_mark
        wall = max(time.time() - wall0, 1e-9)
        own = 100.0 * (time.process_time() - cpu0) / wall
        workers = {wid: sum(values) / len(values) for wid, values in self._worker_cpu.items() if values}
        role = "master" if isinstance(self.runner, MasterRunner) else "standalone"
        return {"role": role, "own_percent": own, "workers_percent": workers}
