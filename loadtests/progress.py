"""Live progress (target, step, time left) and CPU accounting at each phase boundary.

Fed with the shape's events as Locust prints them. At the start and the end of each phase it reads the
CPU time of every server process group, of every local Locust process and of the whole machine
(psutil, :mod:`serving.cpu`), so each measured step records how busy the servers, the load
generator and everything else were (a window can open and close within one shape tick, too short to
measure, so the phase is the unit).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from loadtests.independent import BLOCK
from loadtests.plan import INTERLEAVED, Plan
from serving.cpu import cpu_seconds, process_cpu_seconds, system_busy_seconds, system_steal_seconds

__all__ = ["RunMonitor", "format_duration"]

Say = Callable[[str], None]


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


STEAL_SHOWN = 5.0
"""Steal (percent of one core) from which the progress line shows it."""


class RunMonitor:
    def __init__(
        self,
        plan: Plan,
        server_groups: Mapping[str, int],
        say: Say,
        labels: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = plan
        self.server_groups = dict(server_groups)
        self.say = say
        self.labels = dict(labels or {})
        self.clock = clock
        self.generator_pids: list[int] = []
        self.cpu_by_phase: dict[int, dict[str, Any]] = {}
        self._marks: dict[int, tuple[float, dict[str, float], dict[str, float], float, float]] = {}
        self._began = clock()

    def on_start(self, pids: list[int]) -> None:
        self.generator_pids = list(pids)
        self._began = self.clock()
        self.say(
            f"Locust started (pids {', '.join(map(str, pids))}); plan: {len(self.plan.phases)} phases, "
            f"at least {format_duration(self.plan.estimated_s())}"
        )

    def _snapshot(self) -> tuple[float, dict[str, float], dict[str, float], float, float]:
        servers = {name: cpu_seconds(pgid) for name, pgid in self.server_groups.items()}
        generator = {str(pid): process_cpu_seconds(pid) for pid in self.generator_pids}
        return self.clock(), servers, generator, system_busy_seconds(), system_steal_seconds()

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "phase_start":
            self._marks[int(event["phase"])] = self._snapshot()
            self._on_start(int(event["phase"]))
        elif kind == "phase_end":
            self._on_end(event)
        elif kind == "plan_end":
            self.say(f"Plan finished in {format_duration(float(event.get('elapsed_s', 0)))}")

    def _on_start(self, index: int) -> None:
        phase = self.plan.phases[index]
        first = index == 0 or (
            self.plan.phases[index - 1].target != phase.target or self.plan.phases[index - 1].rep != phase.rep
        )
        if first and phase.kind != "independent":  # the independent client prints its own line
            reps = self.plan.settings.repetitions
            label = self.labels.get(phase.target, phase.target)
            if phase.target == INTERLEAVED:
                label = f"{len(self.plan.interleaved)} REST targets in turn, blocks of {BLOCK} requests"
            self.say(f"[round {phase.rep + 1}/{reps}] {label}")

    def _on_end(self, event: dict[str, Any]) -> None:
        index = int(event["phase"])
        phase = self.plan.phases[index]
        mark = self._marks.pop(index, None)
        if phase.kind == "independent":
            return  # the independent client prints its own line
        if phase.kind == "drain":
            if users_left := int(event.get("users_left") or 0):
                self.say(
                    f"    warning: {users_left} users of {phase.target} were still running when the drain "
                    "stopped waiting for them; the next target's first figures may be disturbed"
                )
            return
        left = format_duration(self.plan.estimated_s(index + 1))
        elapsed = format_duration(self.clock() - self._began)
        window = event.get("window") or [0.0, 0.0]
        duration = float(window[1]) - float(window[0])
        requests = int(event.get("requests", 0))
        if phase.kind == "warmup":
            self.say(
                f"    warm-up {phase.users:>3} users {duration:5.1f} s {requests:>7} requests (discarded)"
                f"   [{elapsed} elapsed, ~{left} left]"
            )
            return
        cpu: dict[str, Any] = {}
        generator_peak = ""
        if mark is not None:
            now, servers, generator, busy, steal = self._snapshot()
            wall = max(now - mark[0], 1e-9)
            cpu = {
                "servers": {n: 100 * (servers[n] - mark[1].get(n, 0.0)) / wall for n in servers},
                "generator": {p: 100 * (generator[p] - mark[2].get(p, 0.0)) / wall for p in generator},
            }
            ours = sum(cpu["servers"].values()) + sum(cpu["generator"].values())
            # Everything else the machine did meanwhile (other users' work on a shared machine).
            # "other" counts the hypervisor's steal too (CPU this machine wanted but did not get).
            cpu["other"] = max(0.0, 100 * (busy - mark[3]) / wall - ours)
            cpu["steal"] = max(0.0, 100 * (steal - mark[4]) / wall)
            if cpu["generator"]:
                generator_peak = f"  Locust CPU {max(cpu['generator'].values()):3.0f}%"
            generator_peak += f"  other CPU {cpu['other']:3.0f}%"
            if cpu["steal"] >= STEAL_SHOWN:
                generator_peak += f" (host steal {cpu['steal']:.0f}%)"
        self.cpu_by_phase[index] = cpu
        rate = requests / duration if duration > 0 else 0.0
        p50 = event.get("p50_ms")
        p50_text = f"  p50 {p50:7.3f} ms" if isinstance(p50, int | float) else ""
        failed = int(event.get("failures", 0))
        verdict = event.get("verdict")
        if isinstance(verdict, dict):  # a capacity step: what was offered, its p99 and the verdict
            p_ms = verdict.get("p_ms")
            p50_text = f"  offered {float(event.get('rate', 0)):7.1f}/s  p99 " + (
                f"{p_ms:7.2f} ms" if isinstance(p_ms, int | float) and p_ms == p_ms else "      -"
            )
            p50_text += f"  {str(verdict.get('outcome', '?')).upper():9}"
            failed = int(verdict.get("errors", 0))
        each = event.get("targets")
        if isinstance(each, dict) and each:  # an interleaved step: each target's p50 in the one window
            p50_text = "  p50 ms: " + ", ".join(
                f"{self.labels.get(name, name)} {summary['p50_ms']:.2f}"
                for name, summary in sorted(each.items())
                if isinstance(summary.get("p50_ms"), int | float)
            )
        self.say(
            f"    {phase.step:>12} {duration:5.1f} s {requests:>7} requests {rate:8.1f} req/s{p50_text}"
            f"{f'  {failed} FAILED' if failed else ''}{generator_peak}   [{elapsed} elapsed, ~{left} left]"
        )
