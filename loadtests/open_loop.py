"""Open-loop arrivals inside a Locust process: the dispatcher, the users' wait, each request's send lag.

Imported only inside Locust (gevent). While a capacity step runs, one dispatcher greenlet per process
walks a :class:`~loadtests.arrivals.PoissonSchedule` and puts each arrival, when it is due, into a
queue; every user of the pool waits on that queue (in its ``wait_time``, where Locust may stop it) and
sends the request the moment it gets one. A slow answer therefore never delays the next arrival: the
arrival waits in the queue for the next free user, and that wait is added to its latency. (Only that
wait: when a user was already free, the few tenths of a millisecond the generator itself takes to
wake it are its own jitter, shown by its CPU figures, not the server's queue.) Arrivals beyond
``BACKLOG`` are dropped (the step then fails on its sent rate). A rate change drops the old schedule
and any backlog, so one step's queue does not spill into the next.

Locust's ``constant_throughput`` does not fit here: it paces each user on its own at fixed intervals
and a user waiting for an answer sends nothing, which is a closed loop again past saturation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from gevent.queue import Empty, Full, Queue
from locust import User, events
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests.arrivals import PoissonSchedule

__all__ = ["ARRIVALS_MESSAGE", "context", "lag_ms", "set_arrivals", "wait_or"]

ARRIVALS_MESSAGE = "loadtests_arrivals"
BACKLOG = 10_000
_QUEUED = "loadtests_queued_ms"
"""Request context key: how long the arrival waited in the queue for a free user (ms)."""


class _State:
    def __init__(self) -> None:
        self.schedule = PoissonSchedule()
        self.queue: Queue[float] = Queue(maxsize=BACKLOG)
        self.changed = Event()
        self.dispatcher: gevent.Greenlet | None = None
        self.dropped = 0

    @property
    def active(self) -> bool:
        return self.schedule.rate > 0


_state = _State()


def set_arrivals(rate: float | None) -> None:
    """Offer Poisson arrivals at ``rate`` per second in this process from now (None or 0: stop)."""
    _state.schedule.set_rate(rate or 0.0, time.time())
    while not _state.queue.empty():
        _state.queue.get_nowait()
    if _state.dispatcher is None and rate:
        _state.dispatcher = gevent.spawn(_dispatch)
    _state.changed.set()


def _dispatch() -> None:
    while True:
        due = _state.schedule.due
        if math.isinf(due):
            _state.changed.wait()
            _state.changed.clear()
            continue
        delay = due - time.time()
        if delay > 0 and _state.changed.wait(timeout=delay):
            _state.changed.clear()  # the rate changed while waiting: read the new schedule
            continue
        try:
            _state.queue.put_nowait(_state.schedule.take())
        except Full:
            _state.dropped += 1


def wait_or(fallback: Callable[[User], float]) -> Callable[[User], float]:
    """A ``wait_time``: the next arrival's turn in capacity steps, ``fallback`` otherwise."""

    def wait(user: User) -> float:
        while _state.active:
            backlog = not _state.queue.empty()  # an arrival is already waiting: no user was free for it
            try:
                scheduled = _state.queue.get(timeout=0.5)
            except Empty:
                continue
            user.__dict__[_QUEUED] = max(0.0, time.time() - scheduled) * 1000.0 if backlog else 0.0
            return 0.0
        user.__dict__.pop(_QUEUED, None)
        return fallback(user)

    return wait


def context(user: User) -> dict[str, Any]:
    """What a user adds to its request events: how long its arrival waited for it."""
    queued = user.__dict__.get(_QUEUED)
    return {_QUEUED: queued} if queued is not None else {}


def lag_ms(request_context: dict[str, Any] | None) -> float:
    """How long the request's arrival waited for a free user (0 outside capacity steps)."""
    return float((request_context or {}).get(_QUEUED) or 0.0)


@events.init.add_listener
def _wire(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        # Locust calls a message listener as listener(environment=..., msg=...).
        environment.runner.register_message(ARRIVALS_MESSAGE, lambda msg, **_: set_arrivals(msg.data["rate"]))
