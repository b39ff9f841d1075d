"""The comparison plan: every phase of one Locust run, and the clock that walks through it.

One Locust run (standalone, or a master with local or remote workers) executes the whole plan: for
each repetition (a *round*), for each target (calibration first, then the serving targets in a random
order of the round's own), a warm-up phase (discarded; first round only), the closed-loop
concurrency steps, the optional fixed-rate steps, the optional capacity search, and a short drain with
zero users so that the next target starts from nothing. A round can end with one ``independent``
phase: Locust holds zero users while the runner's own client measures every chosen target at one
connection, interleaved in short blocks, and then (optionally) at several connections, interleaved
in short time slots (``loadtests.independent``). The plan is a JSON file the
runner writes and the Locust shape reads.

The capacity search (``loadtests.capacity``) is planned as ``max_steps`` capacity phases per target and
repetition whose rates are chosen while the plan runs: the sequencer asks the target's
:class:`~loadtests.capacity.CapacitySearch` for each rate, has each step judged when it ends (``judge``,
from the recorder's raw samples) and skips the slots the search no longer needs.

:class:`Sequencer` decides, once per Locust shape tick (about every second), whether the current
phase has run long enough: at least ``min_s`` seconds *and* ``min_requests`` measured requests, or
``max_s`` seconds whatever the count. A phase's measurement window opens ``settle_s`` after it starts
(new connections, the ramp) and closes when the phase ends; only requests that start and finish inside
the window are measured. It emits events (phase start, window open, phase end) that the runner reads
for progress and CPU accounting. This module does not import Locust.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from loadtests.capacity import CapacitySearch, SearchSettings, SloSettings
from loadtests.targets import Target

__all__ = ["EVENT_PREFIX", "Phase", "Plan", "PlanSettings", "Sequencer", "build_plan"]

FORMAT = "loadtests-plan/1"
EVENT_PREFIX = "LOADTEST_EVENT "
"""Marks the shape's event lines on Locust's stdout."""
MEASURED_KINDS = ("closed", "rate")
INTERLEAVED = "interleaved"
"""The ``target`` of a phase that measures several targets in turn: an ``independent`` phase, or a
Locust step of ``interleave_locust`` (its targets: :attr:`Plan.interleaved`)."""
INTERLEAVED_USER = "InterleavedRestUser"
"""The Locust User class of an interleaved step (``loadtests.users``)."""
NOT_COUNTED = " (block start)"
"""Appended to the target's name for the first answers of a block, which are not counted."""
EXPECTED_SEARCH_STEPS = 5
"""Capacity steps a search usually takes (the time forecast counts these)."""


@dataclass(frozen=True)
class Phase:
    index: int
    rep: int
    target: str
    user_class: str
    kind: str
    """``warmup`` (discarded), ``closed`` (N users, no think time), ``rate`` (paced), ``capacity`` (a step
    of the capacity search: Poisson arrivals at a rate chosen while running), ``independent`` (0 Locust
    users while the runner's own client measures the round's chosen targets, interleaved; its
    ``target`` is :data:`INTERLEAVED`), ``drain`` (0 users)."""
    users: int
    settle_s: float
    min_s: float
    max_s: float
    min_requests: int
    rate: float | None = None
    """Total requests per second the users are paced to (``rate`` phases)."""
    search_step: int = 0
    """Capacity phases: the step's number within its search (0, 1, ...)."""

    @property
    def measured(self) -> bool:
        return self.kind in MEASURED_KINDS

    @property
    def step(self) -> str:
        """The step's label: ``16 users`` or ``200 req/s``."""
        if self.kind == "rate":
            return f"{self.rate:g} req/s"
        if self.kind == "capacity":
            return f"capacity step {self.search_step + 1}"
        return f"{self.users} user{'s' if self.users != 1 else ''}"


@dataclass(frozen=True)
class PlanSettings:
    users: tuple[int, ...] = (1, 4, 16, 64)
    rates: tuple[float, ...] = ()
    rate_users: int = 0
    """Users that share a fixed rate (0: the largest of ``users``)."""
    repetitions: int = 3
    min_requests: int = 1000
    step_s: float = 5.0
    max_step_s: float = 60.0
    settle_s: float = 1.0
    warmup_requests: int = 1000
    warmup_s: float = 30.0
    warmup_users: int = 4
    drain_s: float = 0.0
    """Least time a drain lasts; it lasts until Locust runs no user anyway (after a phase of zero users,
    such as an independent client's window, that is at once)."""
    calibration_repetitions: int = 1
    warmup_repetitions: int = 1
    """Rounds whose visits start with a warm-up phase (the servers are pre-warmed before the plan)."""
    order_seed: int = 0
    """Seeds each round's random visiting order."""
    independent: tuple[str, ...] = ()
    """Targets the runner's independent client measures at one connection in a window that ends every
    round (Locust at zero users), interleaved in short blocks: the 1-user headline figures and the
    harness check, formed inside the round."""
    independent_s: float = 2.5
    """How long that window's 1-user part lasts (after ``settle_s``)."""
    independent_connections: int = 0
    """Connections of the window's concurrent part (0: none): throughput at that concurrency, the
    targets interleaved in short time slots."""
    independent_concurrent_s: float = 0.0
    """How long the concurrent part lasts (after the 1-user part)."""
    interleave_locust: bool = False
    """Locust's closed-loop steps visit the round's REST targets together: one phase per step in which
    its users take the targets in turn, in blocks (``INTERLEAVED_USER``), instead of one visit (and one
    drain) per target. The other targets are still visited one by one."""

    @property
    def independent_window_s(self) -> float:
        """The whole window of the independent client: its 1-user part and its concurrent part."""
        concurrent = self.independent_concurrent_s if self.independent_connections > 0 else 0.0
        return self.independent_s + concurrent

    spawn_rate: float = 1000.0
    search: SearchSettings | None = None
    """The capacity search's settings; None: no search."""
    slo: SloSettings = field(default_factory=SloSettings)
    capacity_step_s: float = 5.0
    capacity_max_step_s: float = 15.0
    capacity_min_requests: int = 2000


@dataclass(frozen=True)
class Plan:
    phases: tuple[Phase, ...]
    spawn_rate: float
    settings: PlanSettings
    targets: tuple[str, ...] = field(default=())
    interleaved: tuple[tuple[str, str], ...] = field(default=())
    """(target, its own User class) of each target an interleaved Locust step takes in turn."""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "spawn_rate": self.spawn_rate,
            "settings": asdict(self.settings),
            "targets": list(self.targets),
            "interleaved": [list(pair) for pair in self.interleaved],
            "phases": [asdict(phase) for phase in self.phases],
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        if data.get("format") != FORMAT:
            raise ValueError(f"plan format {data.get('format')!r}, expected {FORMAT!r}")
        raw = dict(data["settings"])
        raw["users"] = tuple(raw["users"])
        raw["rates"] = tuple(raw["rates"])
        raw["independent"] = tuple(raw.get("independent", ()))
        raw["search"] = SearchSettings(**raw["search"]) if raw.get("search") else None
        raw["slo"] = SloSettings(**raw["slo"]) if raw.get("slo") else SloSettings()
        return cls(
            tuple(Phase(**phase) for phase in data["phases"]),
            float(data["spawn_rate"]),
            PlanSettings(**raw),
            tuple(data.get("targets", ())),
            tuple((str(name), str(user)) for name, user in data.get("interleaved", ())),
        )

    @classmethod
    def read(cls, path: Path) -> Plan:
        return cls.from_json(json.loads(path.read_text()))

    def estimated_s(self, start: int = 0) -> float:
        """A forecast of the time phases ``start..`` take, each at its minimum (phases end on 1 s ticks)."""
        total = 0.0
        for phase in self.phases[start:]:
            if phase.kind == "warmup":
                total += 0.0 if phase.min_requests == 0 else min(phase.max_s, 3.0)
            elif phase.kind == "capacity" and phase.search_step >= EXPECTED_SEARCH_STEPS:
                continue  # most searches end before their last slots
            else:
                total += max(1.0, math.ceil(phase.settle_s + phase.min_s))
        return total


def visit_order(targets: Sequence[Target], rep: int, seed: int = 0) -> list[Target]:
    """The targets in a random order of their own for each round (repeatable from ``seed``): a drift of
    the machine's speed then falls on every target alike instead of always on the last ones."""
    order = list(targets)
    random.Random(f"{seed}:{rep}").shuffle(order)
    return order


def build_plan(targets: Sequence[Target], calibration: Sequence[Target], settings: PlanSettings) -> Plan:
    if not settings.users and not settings.rates and settings.search is None:
        raise ValueError("nothing to measure: give concurrency steps (--users), rates or a capacity search")
    if any(users < 1 for users in settings.users):
        raise ValueError("every concurrency step needs at least one user")
    if settings.repetitions < 1:
        raise ValueError("--repetitions must be at least 1")
    rate_users = settings.rate_users or max(settings.users or (16,))
    phases: list[Phase] = []

    def add(
        rep: int, target: Target, kind: str, users: int, rate: float | None = None, step: int = 0
    ) -> None:
        measured = kind in MEASURED_KINDS
        timing: dict[str, Any]
        if kind == "independent":  # the runner's client measures; Locust sends nothing
            timing = {"settle_s": settings.settle_s, "min_s": settings.independent_window_s}
            timing.update(max_s=settings.independent_window_s, min_requests=0)
        elif kind == "capacity":  # a search step: its rate is chosen while the plan runs
            timing = {
                "settle_s": settings.settle_s,
                "min_s": settings.capacity_step_s,
                "max_s": max(settings.capacity_step_s, settings.capacity_max_step_s),
                "min_requests": settings.capacity_min_requests,
                "search_step": step,
            }
        else:
            timing = {
                "settle_s": settings.settle_s if measured else 0.0,
                "min_s": settings.step_s if measured else (settings.drain_s if kind == "drain" else 0.0),
                "max_s": {"warmup": settings.warmup_s, "drain": settings.drain_s}.get(
                    kind, settings.max_step_s
                ),
                "min_requests": {"warmup": settings.warmup_requests, "drain": 0}.get(
                    kind, settings.min_requests
                ),
                "rate": rate,
            }
        phases.append(
            Phase(
                index=len(phases),
                rep=rep,
                target=INTERLEAVED if kind == "independent" else target.name,
                user_class=target.user_class,
                kind=kind,
                users=users,
                **timing,
            )
        )

    def visit(rep: int, target: Target, closed: bool = True) -> None:
        steps = len(phases)
        if settings.warmup_requests > 0 and settings.warmup_s > 0 and rep < settings.warmup_repetitions:
            add(rep, target, "warmup", settings.warmup_users)
        for users in settings.users if closed else ():
            add(rep, target, "closed", users)
        for rate in settings.rates:
            add(rep, target, "rate", rate_users, rate)
        for step in range(settings.search.max_steps if settings.search else 0):
            add(rep, target, "capacity", settings.search.pool_users if settings.search else 0, step=step)
        if len(phases) > steps:
            add(rep, target, "drain", 0)

    def interleaved_steps(rep: int) -> None:
        """One phase per closed step in which the users take every REST target in turn."""
        for users in settings.users:
            add(rep, together[0], "closed", users)
            length = settings.step_s * len(together)
            phases[-1] = replace(
                phases[-1],
                target=INTERLEAVED,
                user_class=INTERLEAVED_USER,
                min_s=length,
                max_s=length,
                min_requests=0,
            )
        add(rep, together[0], "drain", 0)
        phases[-1] = replace(phases[-1], target=INTERLEAVED, user_class=INTERLEAVED_USER)

    together = [t for t in targets if settings.interleave_locust and t.protocol == "rest"]
    for rep in range(settings.repetitions):
        for target in calibration if rep < settings.calibration_repetitions else ():
            visit(rep, target)
        if together:
            interleaved_steps(rep)
        for target in visit_order(targets, rep, settings.order_seed):
            visit(rep, target, closed=target not in together)
        if settings.independent:  # Locust holds 0 users through it: it is the round's last drain too
            phases.pop()
            add(rep, targets[0], "independent", 0)
    names = tuple(dict.fromkeys(t.name for t in (*calibration, *targets)))
    pairs = tuple((t.name, t.user_class) for t in together)
    return Plan(tuple(phases), settings.spawn_rate, settings, names, pairs)


SAMPLES_WAIT_S = 10.0
"""Longest a capacity step waits for the workers' samples of its window before it is judged anyway."""
DRAIN_WAIT_S = 30.0
"""Longest a drain waits, past its own length, for the last users to stop before the plan goes on."""
Emit = Callable[[dict[str, Any]], None]
Counter = Callable[[str, float], int]
Judge = Callable[[Phase, float, tuple[float, float]], dict[str, Any]]
"""Judges a finished capacity step (phase, offered rate, window): a dict with at least ``outcome``."""


class Sequencer:
    """Walks a plan: ``tick()`` returns ``(users, spawn_rate, user_class)`` for now, or None at the end.

    ``start_counting(target, since)`` is called when a window opens; ``counted()`` then gives the
    number of requests of that target recorded since (the recorder's watch). ``rate`` is the arrival
    rate the current capacity step offers (None in every other phase). ``running()`` is how many
    users Locust still runs: a drain lasts until it is 0, since Locust keeps running users of a class
    the next tick no longer names. After a capacity search's pool of a thousand users, stopping them
    took the generator's whole CPU for seconds, and the next target's warm-up and first step sent
    nothing at all.
    """

    def __init__(
        self,
        plan: Plan,
        *,
        start_counting: Callable[[str, float], None],
        counted: Callable[[], int],
        emit: Emit,
        clock: Callable[[], float] = time.time,
        judge: Judge | None = None,
        samples_until: Callable[[], float] | None = None,
        running: Callable[[], int] | None = None,
    ) -> None:
        self.plan = plan
        self._judge = judge
        self._samples_until = samples_until
        self._running = running
        self._window_end: float | None = None
        self._searches: dict[tuple[int, str], CapacitySearch] = {}
        self._closed_rps: dict[tuple[int, str], float] = {}
        self._pool: dict[tuple[int, str], int] = {}
        self._skip = False
        self.rate: float | None = None
        self._start_counting = start_counting
        self._counted = counted
        self._emit = emit
        self._clock = clock
        self._index = -1
        self._started = 0.0
        self._window_open = False
        self.began = 0.0

    @property
    def current(self) -> Phase | None:
        return self.plan.phases[self._index] if 0 <= self._index < len(self.plan.phases) else None

    def tick(self) -> tuple[int, float, str] | None:
        now = self._clock()
        if self._index < 0:
            self.began = now
            self._enter(0, now)
        phase = self.current
        while phase is not None and self._done(phase, now):
            self._leave(phase, now)
            self._enter(self._index + 1, now)
            phase = self.current
        if phase is None:
            self._emit({"event": "plan_end", "time": now, "elapsed_s": now - self.began})
            return None
        if phase.kind == "capacity":
            return self._pool[(phase.rep, phase.target)], self.plan.spawn_rate, phase.user_class
        return phase.users, self.plan.spawn_rate, phase.user_class

    def _enter(self, index: int, now: float) -> None:
        self._index = index
        self._started = now
        self._window_open = False
        self._window_end = None
        self._skip = False
        self.rate = None
        phase = self.current
        if phase is None:
            return
        event: dict[str, Any] = {
            "event": "phase_start",
            "phase": phase.index,
            "time": now,
            "left_s": self.plan.estimated_s(phase.index),
        }
        if phase.kind == "capacity":
            self.rate = self._next_rate(phase)
            if self.rate is None:
                self._skip = True  # the search is over: this slot is not run
                return
            event.update(rate=self.rate, users=self._pool[(phase.rep, phase.target)])
        self._emit(event)
        self._maybe_open(phase, now)

    def _next_rate(self, phase: Phase) -> float | None:
        settings = self.plan.settings
        assert settings.search is not None, "capacity phases come with search settings"
        key = (phase.rep, phase.target)
        if key not in self._searches:
            first = settings.search.first_rate(self._closed_rps.get(key))
            self._searches[key] = CapacitySearch(settings.search, first)
        rate = self._searches[key].next_rate()
        if rate is not None:  # the pool only grows within a search: stopping users cuts requests short
            wanted = settings.search.users_for(rate, settings.slo.slo_ms)
            self._pool[key] = max(self._pool.get(key, 0), wanted)
        return rate

    def _maybe_open(self, phase: Phase, now: float) -> None:
        if self._window_open or phase.kind == "drain":
            return
        opens = self._started + phase.settle_s
        if now >= opens:
            self._window_open = True
            self._start_counting(phase.target, opens)
            if phase.measured:
                self._emit({"event": "window_open", "phase": phase.index, "time": opens})

    def _done(self, phase: Phase, now: float) -> bool:
        if self._skip:
            return True
        self._maybe_open(phase, now)
        if phase.kind in ("drain", "independent") and not self._drained(phase, now):
            return False
        if phase.kind == "drain":
            return True
        if not self._window_open:
            return False
        if self._window_end is None:
            elapsed = now - (self._started + phase.settle_s)
            if elapsed >= phase.max_s or (elapsed >= phase.min_s and self._counted() >= phase.min_requests):
                self._window_end = now
        if self._window_end is None:
            return False
        # A capacity step is judged once every sample sent in its window has arrived: remote workers
        # ship theirs every report interval, so the step holds its rate (outside the window) till then.
        if phase.kind != "capacity" or self._samples_until is None:
            return True
        late = now - self._window_end > SAMPLES_WAIT_S  # a worker that stopped reporting holds no step up
        return late or self._samples_until() >= self._window_end

    def _drained(self, phase: Phase, now: float) -> bool:
        """Whether a phase of zero users may end: its least time is over and Locust runs no user (the
        next target's users must not overlap this one's), or it waited too long for a stuck user."""
        elapsed = now - self._started
        if elapsed < phase.min_s + (phase.settle_s if phase.kind == "independent" else 0.0):
            return False
        stopped = self._running is None or self._running() == 0
        return stopped or elapsed >= phase.min_s + DRAIN_WAIT_S

    def _leave(self, phase: Phase, now: float) -> None:
        if self._skip:
            return
        count = self._counted() if phase.kind != "drain" else 0
        window = (self._started + phase.settle_s, self._window_end or now)
        event: dict[str, Any] = {
            "event": "phase_end",
            "phase": phase.index,
            "time": now,
            "window": list(window) if phase.kind != "drain" else None,
            "requests": count,
        }
        if phase.kind == "drain" and self._running is not None:
            event["users_left"] = self._running()  # not 0 only when the drain stopped waiting for them
        key = (phase.rep, phase.target)
        if phase.kind == "closed" and window[1] > window[0]:
            self._closed_rps[key] = count / (window[1] - window[0])
        if phase.kind == "capacity" and self.rate is not None:
            verdict = self._judge(phase, self.rate, window) if self._judge else {"outcome": "fail"}
            self._searches[key].observe(self.rate, str(verdict["outcome"]))
            # The step's own answers (a remote worker's later samples are counted above too).
            event.update(rate=self.rate, verdict=verdict, requests=int(verdict.get("requests", count)))
        self._emit(event)
