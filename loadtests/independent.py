"""The harness check inside the rounds: the runner's own client measures a target while Locust sends
nothing, right after Locust's 1-user window of the same target in the same round.

The client is :func:`loadtests.crosscheck.run_crosscheck` (one thread, one keep-alive ``http.client``
connection, the same request bytes and answer checks as the Locust users, no gevent), pinned to the load
generator's CPUs. The plan's ``independent`` phases hold Locust at zero users for one window; when the
shape announces one, a thread here waits out the phase's settling time and measures for the rest of it.
Locust's p50 and this client's p50, paired round by round, show whether the harness inflates latency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from loadtests.cpu import pinned
from loadtests.crosscheck import CrossCheck, run_crosscheck
from loadtests.payloads import Digit
from loadtests.plan import Phase, Plan

__all__ = ["STEP", "IndependentClient", "IndependentTarget", "independent_records"]

STEP = "1 user, independent client"
"""The step label of the independent client's windows."""
_USABLE_SHARE = 0.85
"""Of the phase's measured time: the client stops before the next phase may start."""


@dataclass(frozen=True)
class IndependentTarget:
    url: str
    path: str
    headers: dict[str, str]
    api: str
    """The body it takes and the answer it gives: ``tfserving``, ``torchserve`` or ``v2``."""
    backend: str | None = None
    """Through the gateway: the backend that must have answered."""


class IndependentClient:
    """Measures each ``independent`` phase of ``plan`` as the Locust shape announces it (``on_event``)."""

    def __init__(
        self,
        plan: Plan,
        targets: Mapping[str, IndependentTarget],
        digits: tuple[Digit, ...],
        cpus: Iterable[int] | None,
        say: Callable[[str], None],
    ) -> None:
        self.plan = plan
        self.targets = dict(targets)
        self.digits = digits
        self.cpus = tuple(cpus) if cpus is not None else None
        self.say = say
        self.results: dict[int, CrossCheck] = {}
        self.failed: dict[int, str] = {}
        self._threads: list[threading.Thread] = []

    def on_event(self, event: Mapping[str, Any]) -> None:
        if event.get("event") != "phase_start":
            return
        phase = self.plan.phases[int(event["phase"])]
        if phase.kind != "independent" or phase.target not in self.targets:
            return
        thread = threading.Thread(target=self._measure, args=(phase,), daemon=True, name="independent-client")
        thread.start()
        self._threads.append(thread)

    def _measure(self, phase: Phase) -> None:
        target = self.targets[phase.target]
        with pinned(self.cpus):
            time.sleep(phase.settle_s)
            try:
                result = run_crosscheck(
                    phase.target,
                    target.url,
                    target.path,
                    self.digits,
                    target.headers,
                    phase.min_s * _USABLE_SHARE,
                    api=target.api,
                    backend=target.backend,
                    warmup=5,
                )
            except OSError as exc:
                self.failed[phase.index] = str(exc)
                self.say(f"    independent client: failed ({exc})")
                return
        self.results[phase.index] = result
        self.say(
            f"    {'independent':>12} {result.seconds:5.1f} s {result.requests:>7} requests "
            f"{result.rps:8.1f} req/s  p50 {result.p50_ms:7.3f} ms  (one http.client connection, no Locust)"
        )

    def join(self, timeout_s: float = 15.0) -> None:
        for thread in self._threads:
            thread.join(timeout_s)


def independent_records(plan: Plan, results: Mapping[int, CrossCheck]) -> list[dict[str, Any]]:
    """Step-like records of the independent windows (the fields the headline reads)."""
    records = []
    for phase in plan.phases:
        result = results.get(phase.index)
        if phase.kind != "independent" or result is None:
            continue
        records.append(
            {
                "target": phase.target,
                "rep": phase.rep,
                "phase": phase.index,
                "kind": "independent",
                "step": STEP,
                "users": 1,
                "requests": result.requests,
                "error_count": result.failures,
                "duration_s": result.seconds,
                "rps": result.rps,
                "latency_ms": {"p50": result.p50_ms, "p99": result.p99_ms},
                "saturated": False,
            }
        )
    return records
