"""Per-backend circuit breakers: stop calling a backend that keeps failing, probe it now and then.

States (one breaker per backend, per worker process):

- ``closed``: calls go through. It opens after ``failures`` consecutive failures, or when at least
  ``min_calls`` calls in the last ``window_s`` seconds failed in a ratio of ``error_ratio`` or more.
  Calls that were in flight together when one of them failed count once in the run of consecutive
  failures: 32 concurrent calls timing out in one stall of a busy backend are one failure, not 32
  (a measured case: 11 timeouts in one stall opened the circuit of a server that was answering
  500 req/s, and turned its next 5 s into 6,762 refusals). Every failure still counts in the ratio.
- ``open``: calls fail at once (503 with ``Retry-After``) without touching the backend, for ``open_s``.
- ``half_open``: after ``open_s``, up to ``probes`` calls go through as probes; one success closes
  the breaker, one failure opens it again for another ``open_s``.

A failure is an upstream answer that means "the backend, not the request, is wrong": unreachable,
timed out, 5xx, unreadable (the router's retryable errors except 429, which is the backend shedding
load on purpose). Client errors (4xx) never count.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

__all__ = ["BreakerConfig", "Breakers", "CircuitBreaker", "State"]


class State(Enum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"

    @property
    def level(self) -> int:
        """For a gauge: 0 closed, 1 half-open, 2 open."""
        return (State.CLOSED, State.HALF_OPEN, State.OPEN).index(self)


@dataclass(frozen=True)
class BreakerConfig:
    enabled: bool = True
    failures: int = 5
    error_ratio: float = 0.5
    min_calls: int = 20
    window_s: float = 10.0
    open_s: float = 5.0
    probes: int = 1


class CircuitBreaker:
    """One backend's breaker; thread-safe. ``allow()`` before a call, then ``record(ok)`` after it."""

    def __init__(
        self,
        config: BreakerConfig,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[State], None] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._consecutive = 0
        self._counted_at = float("-inf")
        """When the last failure counted in ``_consecutive`` was recorded."""
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._failed = 0
        """Failures among ``_outcomes`` (kept as a count: summing on every failure would cost O(calls))."""
        self._opened_at = 0.0
        self._probes_out = 0
        self._probe_started = 0.0

    @property
    def state(self) -> State:
        with self._lock:
            self._maybe_half_open(self._clock())
            return self._state

    def retry_after_s(self) -> float:
        with self._lock:
            return max(self._opened_at + self.config.open_s - self._clock(), 0.0)

    def allow(self) -> bool:
        """May a call go to the backend now? In half-open, this takes one probe slot."""
        return self.permit() is not None

    def permit(self) -> State | None:
        """Like :meth:`allow`, in one lock: the state the call goes in (CLOSED, or HALF_OPEN for a
        probe), or None when it may not go."""
        if not self.config.enabled:
            return State.CLOSED
        with self._lock:
            self._maybe_half_open(self._clock())
            if self._state is State.CLOSED:
                return State.CLOSED
            if self._state is State.HALF_OPEN:
                now = self._clock()
                if now - self._probe_started > self.config.open_s:
                    self._probes_out = 0  # a probe that never reported back (e.g. its request expired)
                if self._probes_out < self.config.probes:
                    self._probes_out += 1
                    self._probe_started = now
                    return State.HALF_OPEN
            return None

    def record(self, ok: bool, started: float | None = None) -> None:
        """The outcome of a call that began at ``started`` (this breaker's clock; None: just now)."""
        if not self.config.enabled:
            return
        with self._lock:
            now = self._clock()
            if self._state is State.HALF_OPEN:
                self._probes_out = max(self._probes_out - 1, 0)
                self._move(State.CLOSED if ok else State.OPEN, now)
                return
            if self._state is State.OPEN:
                return  # a call that started before the breaker opened
            if ok:
                self._consecutive = 0
            elif started is None or started >= self._counted_at:  # not in flight with the last one
                self._consecutive += 1
                self._counted_at = now
            self._outcomes.append((now, ok))
            self._failed += not ok
            horizon = now - self.config.window_s
            while self._outcomes and self._outcomes[0][0] < horizon:
                self._failed -= not self._outcomes.popleft()[1]
            if not ok and self._tripped():
                self._move(State.OPEN, now)

    def _tripped(self) -> bool:
        if self._consecutive >= self.config.failures:
            return True
        calls = len(self._outcomes)
        return calls >= self.config.min_calls and self._failed / calls >= self.config.error_ratio

    def _maybe_half_open(self, now: float) -> None:
        if self._state is State.OPEN and now >= self._opened_at + self.config.open_s:
            self._move(State.HALF_OPEN, now)

    def _move(self, state: State, now: float) -> None:
        self._state = state
        if state is State.OPEN:
            self._opened_at = now
        if state is not State.HALF_OPEN:
            self._probes_out = 0
        if state is State.CLOSED:
            self._consecutive = 0
            self._counted_at = float("-inf")
            self._outcomes.clear()
            self._failed = 0
        if self._on_change is not None:
            self._on_change(state)


class Breakers:
    """One breaker per backend name, made on first use."""

    def __init__(
        self,
        config: BreakerConfig,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, State], None] | None = None,
    ) -> None:
        self.config = config
        self._clock = clock
        self._on_change = on_change
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def __getitem__(self, backend: str) -> CircuitBreaker:
        breaker = self._breakers.get(backend)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.get(backend)
                if breaker is None:
                    notify = self._on_change
                    on_change = (lambda state: notify(backend, state)) if notify is not None else None
                    breaker = self._breakers[backend] = CircuitBreaker(self.config, self._clock, on_change)
        return breaker

    def states(self) -> dict[str, State]:
        return {name: breaker.state for name, breaker in list(self._breakers.items())}
