"""The independent client: every round ends with one window in which the runner's own client measures
each REST target at one connection while Locust sends nothing.

No Locust, no gevent: one thread, one keep-alive ``http.client`` connection per target, the same request
bytes and answer checks as the Locust users, timed with ``perf_counter``, pinned to the load generator's
CPUs. The targets are *interleaved* in short blocks (``BLOCK`` requests to one target, then the next, in
a fresh random order every cycle), so each target's p50 in a window is measured over the same fraction
of a second of the machine's life as every other target's. On this shared machine the speed of one
second says little about the next: measured here, the spread across rounds of TorchServe's / TF
Serving's p50 fell from 0.22 (log sd) with one target after the other in 0.5 s windows to 0.07 with
blocks of ten, and the gateway's added p50 from about 1 ms to 0.2 ms. The first ``DISCARD`` answers
of a block are not counted: a server that sat idle while the others were measured has cold caches
(alternating request by request, where every answer is a first one, made the TF Serving stand-in read
50% slower than alone).

These windows give the headline its 1-user p50 figures (pairs formed inside one window) and check the
harness: Locust's 1-user p50 of the same round against this client's.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from loadtests.checks import check_gateway_headers, check_rest_prediction, check_status
from loadtests.payloads import Digit
from loadtests.plan import Phase, Plan
from loadtests.records import WindowRecord
from loadtests.stats import percentile
from serving.cpu import pinned

__all__ = [
    "BLOCK",
    "STEP",
    "CrossCheck",
    "Digits",
    "IndependentClient",
    "IndependentTarget",
    "Slots",
    "concurrent_step",
    "independent_records",
    "run_concurrent",
    "run_interleaved",
]

STEP = "1 user, independent client"
"""The step label of the independent client's figures."""
BLOCK = 10
"""Requests sent to one target before the client moves on to the next."""
DISCARD = 3
"""Answers at the start of each block that are not counted (the server's caches are warming again)."""
TOOL = f"http.client, 1 keep-alive connection per target, targets interleaved in blocks of {BLOCK}"
SLOT_S = 0.25
"""About how long the concurrent part stays with one target."""
SETTLE_SHARE = 0.3
"""The share of a slot that is not counted."""
_LEAST_CONCURRENT_S = 0.5
"""Less time than this left for the concurrent part: it is left out of that round."""
_MARGIN_S = 0.25
"""The concurrent part's slots end this long before the phase may (its requests still in flight)."""


@dataclass(frozen=True)
class IndependentTarget:
    url: str
    path: str
    headers: dict[str, str]
    api: str
    """The body it takes and the answer it gives: ``tfserving``, ``torchserve`` or ``v2``."""
    backend: str | None = None
    """Through the gateway: the backend that must have answered."""


@dataclass(frozen=True)
class CrossCheck:
    """One target's figures in one window."""

    target: str
    tool: str
    seconds: float
    requests: int
    failures: int
    p50_ms: float
    p99_ms: float
    rps: float

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)

    @classmethod
    def of(
        cls, target: str, tool: str, seconds: float, durations: list[float], failures: int, rps: float
    ) -> CrossCheck:
        """One target's figures from its correct answers' latencies (ms) and its failure count."""
        p50, p99 = percentile(durations, 50), percentile(durations, 99)
        return cls(target, tool, seconds, len(durations), failures, p50, p99, rps)


class Digits:
    """The digits to send, each request body encoded once per API (not once per connection and round:
    eight connections to six targets encoding a hundred digits each took 1.5 s of a 4 s window)."""

    def __init__(self, digits: tuple[Digit, ...]) -> None:
        self.digits = digits
        self._bodies: dict[str, list[tuple[int, bytes]]] = {}

    def bodies(self, api: str) -> list[tuple[int, bytes]]:
        if api not in self._bodies:
            self._bodies[api] = [(d.label, d.body_for(api)) for d in self.digits]
        return self._bodies[api]


class _Connection:
    """One keep-alive connection to one target that sends a digit and checks the answer."""

    def __init__(self, target: IndependentTarget, digits: Digits) -> None:
        parts = urllib.parse.urlsplit(target.url)
        self._http = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)
        self._target = target
        self._bodies = digits.bodies(target.api)
        self._headers = {"Content-Type": "application/json", **target.headers}
        self._sent = 0

    def send(self) -> float | None:
        """The answer's latency in ms, or None when it was wrong or failed."""
        label, body = self._bodies[self._sent % len(self._bodies)]
        self._sent += 1
        started = time.perf_counter()
        self._http.request("POST", self._target.path, body=body, headers=self._headers)
        answer = self._http.getresponse()
        content = answer.read()
        elapsed = (time.perf_counter() - started) * 1000.0
        problem = check_status(answer.status, content) or check_rest_prediction(
            content, label, self._target.api
        )
        if self._target.backend and not problem:
            problem = check_gateway_headers(dict(answer.getheaders()), self._target.backend)
        return None if problem else elapsed

    def connect(self) -> None:
        self._http.connect()

    def close(self) -> None:
        self._http.close()


def run_interleaved(
    targets: Mapping[str, IndependentTarget],
    digits: Digits,
    seconds: float,
    *,
    seed: int = 0,
    block: int = BLOCK,
    discard: int = DISCARD,
) -> dict[str, CrossCheck]:
    """Measure every target for ``seconds`` in blocks of ``block`` requests, the targets in a new random
    order (from ``seed``) each cycle, and every target at least once; after one unmeasured block per
    target (new connections)."""
    order = random.Random(seed)
    connections = {name: _Connection(target, digits) for name, target in targets.items()}
    durations: dict[str, list[float]] = {name: [] for name in targets}
    failures = dict.fromkeys(targets, 0)
    busy = dict.fromkeys(targets, 0.0)
    try:
        for connection in connections.values():
            for _ in range(block):
                connection.send()
        began = time.perf_counter()
        names: list[str] = []
        cycles = 0
        # The first cycle is always finished (every target measured at least once), then until time.
        while (
            (block_began := time.perf_counter()) - began < seconds or cycles == 0 or (cycles == 1 and names)
        ):
            if not names:  # a new cycle: every target once, in a new order
                names = list(connections)
                order.shuffle(names)
                cycles += 1
            name = names.pop()
            for i in range(block):
                latency = connections[name].send()
                if latency is None:
                    failures[name] += 1
                elif i >= discard:
                    durations[name].append(latency)
            busy[name] += time.perf_counter() - block_began
        wall = time.perf_counter() - began
    finally:
        for connection in connections.values():
            connection.close()
    return {
        name: CrossCheck.of(
            name,
            TOOL,
            wall,
            durations[name],
            failures[name],
            (len(durations[name]) + failures[name]) / busy[name] if busy[name] > 0 else float("nan"),
        )
        for name in targets
    }


@dataclass(frozen=True)
class Slots:
    """Time slots of the concurrent part: every target gets one slot per cycle, in a new random order
    each cycle, the slots about ``SLOT_S`` long and fitted so that whole cycles fill the time; the first
    ``settle_s`` of a slot is not counted (the previous target's answers are still arriving and the
    connections move over)."""

    order: tuple[str, ...]
    slot_s: float
    settle_s: float

    @classmethod
    def plan(cls, names: Iterable[str], seconds: float, seed: int, slot_s: float = SLOT_S) -> Slots:
        targets = list(names)
        if not targets:
            return cls((), slot_s, slot_s * SETTLE_SHARE)
        cycles = max(1, round(seconds / (slot_s * len(targets))))
        fitted = seconds / (cycles * len(targets)) if seconds > 0 else slot_s  # whole cycles fill the time
        shuffle = random.Random(seed)
        order: list[str] = []
        for _ in range(cycles):
            shuffle.shuffle(targets)
            order += targets
        return cls(tuple(order), fitted, fitted * SETTLE_SHARE)

    def at(self, elapsed: float) -> tuple[int, bool] | None:
        """The slot ``elapsed`` seconds after the start, and whether that moment is counted; None after
        the last slot."""
        index = int(elapsed // self.slot_s)
        if elapsed < 0 or index >= len(self.order):
            return None
        return index, elapsed - index * self.slot_s >= self.settle_s

    def counted_s(self, name: str) -> float:
        return self.order.count(name) * (self.slot_s - self.settle_s)


def run_concurrent(
    targets: Mapping[str, IndependentTarget],
    digits: Digits,
    seconds: float,
    *,
    connections: int,
    seed: int = 0,
    slot_s: float = SLOT_S,
    deadline: float | None = None,
) -> dict[str, CrossCheck]:
    """Throughput at ``connections`` concurrent connections, every target in short time slots
    (``Slots``) that all threads follow by the same clock, so that each target's throughput is measured
    over the same seconds of the machine's life as every other's. A target's throughput is the number
    of requests *started* in its counted time over that time: in a closed loop each connection starts
    its next request as soon as an answer arrives, so the starts keep pace with the answers. The slots
    take ``seconds`` once every connection is open, or less where that would pass ``deadline``
    (``time.time()``; the phase's end)."""
    plan: list[Slots] = []
    began = [0.0]

    def start_clock() -> None:  # run once, by the last thread to be ready
        left = seconds if deadline is None else max(0.0, min(seconds, deadline - time.time()))
        plan.append(Slots.plan(targets, left, seed, slot_s))
        began[0] = time.perf_counter()

    ready = threading.Barrier(connections, action=start_clock)
    started = {name: 0 for name in targets}
    failures = dict.fromkeys(targets, 0)
    durations: dict[str, list[float]] = {name: [] for name in targets}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def connection() -> None:
        own = {name: _Connection(target, digits) for name, target in targets.items()}
        mine: list[tuple[str, float | None]] = []
        try:
            for link in own.values():  # connected before the clock starts (each slot's start is not counted)
                link.connect()
            ready.wait(timeout=30.0)
            slots = plan[0]
            while (now := slots.at(time.perf_counter() - began[0])) is not None:
                name = slots.order[now[0]]
                latency = own[name].send()
                if now[1]:
                    mine.append((name, latency))
        except (OSError, http.client.HTTPException, threading.BrokenBarrierError) as exc:
            with lock:
                errors.append(exc)
            ready.abort()
        finally:
            for link in own.values():
                link.close()
        with lock:
            for name, latency in mine:
                started[name] += 1
                if latency is None:
                    failures[name] += 1
                else:
                    durations[name].append(latency)

    threads = [threading.Thread(target=connection, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60.0)
    if errors:
        raise errors[0]
    slots = plan[0]
    tool = (
        f"http.client, {connections} keep-alive connections per target, targets interleaved in "
        f"{slots.slot_s:.2f} s time slots"
    )
    seconds_run = slots.slot_s * len(slots.order)
    return {
        name: CrossCheck.of(
            name,
            tool,
            seconds_run,
            durations[name],
            failures[name],
            started[name] / counted if (counted := slots.counted_s(name)) > 0 else float("nan"),
        )
        for name in targets
    }


class IndependentClient:
    """Measures each ``independent`` phase of ``plan`` as the Locust shape announces it (``on_event``)."""

    def __init__(
        self,
        plan: Plan,
        targets: Mapping[str, IndependentTarget],
        digits: tuple[Digit, ...],
        cpus: Iterable[int] | None,
        say: Callable[[str], None],
        labels: Mapping[str, str] | None = None,
    ) -> None:
        self.plan = plan
        self.targets = dict(targets)
        self.digits = Digits(digits)
        self.cpus = tuple(cpus) if cpus is not None else None
        self.say = say
        self.labels = dict(labels or {})
        self.results: dict[int, dict[str, CrossCheck]] = {}
        """Per independent phase: each target at one connection."""
        self.concurrent: dict[int, dict[str, CrossCheck]] = {}
        """Per independent phase: each target at the plan's ``independent_connections``."""
        self.failed: dict[int, str] = {}
        self._threads: list[threading.Thread] = []

    def on_event(self, event: Mapping[str, Any]) -> None:
        if event.get("event") != "phase_start" or not self.targets:
            return
        phase = self.plan.phases[int(event["phase"])]
        if phase.kind != "independent":
            return
        began = float(event.get("time") or time.time())
        thread = threading.Thread(
            target=self._measure, args=(phase, began), daemon=True, name="independent-client"
        )
        thread.start()
        self._threads.append(thread)

    def _measure(self, phase: Phase, began: float) -> None:
        """Both parts inside the phase: the concurrent part's slots end before the phase may (the
        Locust shape ends it on its own clock, and the next visit's users must find the servers idle)."""
        settings = self.plan.settings
        seed = settings.order_seed * 1000 + phase.rep
        deadline = began + phase.settle_s + settings.independent_window_s - _MARGIN_S
        with pinned(self.cpus):
            time.sleep(max(0.0, began + phase.settle_s - time.time()))
            try:
                alone = run_interleaved(self.targets, self.digits, settings.independent_s, seed=seed)
                self.results[phase.index] = alone
                self._say("1 connection each, blocks", alone, "p50 ms", lambda r: f"{r.p50_ms:.2f}")
                if settings.independent_connections > 0 and deadline - time.time() < _LEAST_CONCURRENT_S:
                    self.say("    independent client: no time left in the window for the concurrent part")
                elif settings.independent_connections > 0:
                    together = run_concurrent(
                        self.targets,
                        self.digits,
                        settings.independent_concurrent_s,
                        connections=settings.independent_connections,
                        seed=seed,
                        deadline=deadline,
                    )
                    self.concurrent[phase.index] = together
                    self._say(
                        f"{settings.independent_connections} connections, time slots",
                        together,
                        "req/s",
                        lambda r: f"{r.rps:.0f}",
                    )
            except (OSError, http.client.HTTPException) as exc:  # a server that broke the connection
                self.failed[phase.index] = str(exc)
                self.say(f"    independent client: failed ({exc})")

    def _say(
        self, how: str, results: Mapping[str, CrossCheck], unit: str, figure: Callable[[CrossCheck], str]
    ) -> None:
        seconds = max(result.seconds for result in results.values())
        requests = sum(result.requests for result in results.values())
        figures = ", ".join(f"{self.labels.get(n, n)} {figure(r)}" for n, r in sorted(results.items()))
        self.say(
            f"    {'independent':>12} {seconds:5.1f} s {requests:>7} requests, {len(results)} targets "
            f"interleaved, {how}, no Locust; {unit}: {figures}"
        )

    def join(self, timeout_s: float = 15.0) -> None:
        for thread in self._threads:
            thread.join(timeout_s)


def independent_records(
    plan: Plan,
    results: Mapping[int, Mapping[str, CrossCheck]],
    concurrent: Mapping[int, Mapping[str, CrossCheck]] | None = None,
) -> list[WindowRecord]:
    """Step-like records of the independent client's figures, a target, round and concurrency each
    (the fields the headline reads)."""
    connections = plan.settings.independent_connections
    parts = [(results, 1, STEP)]
    if concurrent:
        parts.append((concurrent, connections, concurrent_step(connections)))
    records: list[WindowRecord] = []
    for phase in plan.phases:
        if phase.kind != "independent":
            continue
        for windows, users, step in parts:
            for result in windows.get(phase.index, {}).values():
                records.append(
                    {
                        "target": result.target,
                        "rep": phase.rep,
                        "phase": phase.index,
                        "kind": "independent",
                        "step": step,
                        "users": users,
                        "requests": result.requests,
                        "error_count": result.failures,
                        "duration_s": result.seconds,
                        "rps": result.rps,
                        "latency_ms": {"p50": result.p50_ms, "p99": result.p99_ms},
                        "saturated": False,
                    }
                )
    return records


def concurrent_step(connections: int) -> str:
    """The step label of the independent client's figures at ``connections`` connections."""
    return f"{connections} connections, independent client"
