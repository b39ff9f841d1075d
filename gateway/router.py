"""Per-model routing: explicit choice, weighted and sticky splits, failover with a retry budget, shadow.

Framework-free: no Flask here. One call of :meth:`Router.predict` picks a backend and a version,
calls it, fails over to the other framework when that backend fails (or is known to be down) while
the deadline and the retry budget allow, and maybe mirrors the request to a shadow backend whose
answer is only compared, never returned.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from types import MappingProxyType
from typing import NamedTuple, ParamSpec, Protocol, TypeVar

import numpy as np

from gateway.backends import BackendPool, Prediction
from gateway.batching import MicroBatcher
from gateway.breaker import BreakerConfig, Breakers, State
from gateway.errors import (
    DeadlineExceeded,
    GatewayError,
    InvalidInput,
    NotFound,
    OverCapacity,
    Unavailable,
)
from gateway.routing import ModelRoute, RetryBudgetConfig, RoutingTable
from gateway.tracing import Tracing

__all__ = [
    "CircuitOpen",
    "HealthCache",
    "InlineExecutor",
    "RetryBudget",
    "Routed",
    "Router",
    "RouterObserver",
    "Selection",
    "pick_weighted",
]

log = logging.getLogger(__name__)
K = TypeVar("K")
T = TypeVar("T")
P = ParamSpec("P")


class Selection(NamedTuple):
    """What the request asks for; everything optional except the model and the deadline
    (a NamedTuple: built for every request, and a tuple costs a third of a frozen dataclass to build)."""

    model: str
    deadline: float
    """``time.monotonic()`` after which no upstream call starts."""
    version: int | None = None
    label: str | None = None
    backend: str | None = None
    """Explicit choice: a backend name or a framework ("tensorflow", "pytorch"); disables failover."""
    headers: Mapping[str, str] = MappingProxyType({})
    """Request headers; the sticky key header is looked up here by its lower-cased name, so a plain
    dict needs lower-case keys (Werkzeug's headers match any case)."""


class Routed(NamedTuple):
    prediction: Prediction
    backend: str
    attempts: tuple[str, ...]


class RouterObserver(Protocol):
    """Where the router reports what it did (metrics implement it; tests record it)."""

    def attempt(self, model: str, backend: str, version: str, seconds: float, status: int) -> None: ...
    def failover(self, model: str, from_backend: str, to_backend: str) -> None: ...
    def budget_exhausted(self, model: str) -> None: ...
    def shadow(
        self, model: str, primary: str, shadow: str, outcome: str, seconds: float, agreed: int, total: int
    ) -> None: ...
    def batch(self, model: str, backend: str, images: int, requests: int) -> None: ...
    def queue_delay(self, model: str, backend: str, seconds: float) -> None: ...
    def lone(self, model: str, backend: str, images: int) -> None: ...
    def circuit(self, backend: str, state: State) -> None: ...
    def circuit_rejected(self, backend: str) -> None: ...


class NullObserver:
    def attempt(self, model: str, backend: str, version: str, seconds: float, status: int) -> None:
        pass

    def failover(self, model: str, from_backend: str, to_backend: str) -> None:
        pass

    def budget_exhausted(self, model: str) -> None:
        pass

    def shadow(
        self, model: str, primary: str, shadow: str, outcome: str, seconds: float, agreed: int, total: int
    ) -> None:
        pass

    def batch(self, model: str, backend: str, images: int, requests: int) -> None:
        pass

    def queue_delay(self, model: str, backend: str, seconds: float) -> None:
        pass

    def lone(self, model: str, backend: str, images: int) -> None:
        pass

    def circuit(self, backend: str, state: State) -> None:
        pass

    def circuit_rejected(self, backend: str) -> None:
        pass


def pick_weighted(weights: dict[K, float], point: float) -> K:
    """The key whose cumulative-weight interval holds ``point`` in [0, 1); keys with weight 0 never win."""
    total = sum(weights.values())
    threshold = point * total
    cumulative = 0.0
    chosen = None
    for key, weight in weights.items():
        if weight <= 0:
            continue
        chosen = key
        cumulative += weight
        if threshold < cumulative:
            return key
    if chosen is None:
        raise ValueError("no positive weight")
    return chosen  # rounding at the very top of the range


def sticky_point(key: str, salt: str) -> float:
    """A stable point in [0, 1) for a client key (same in every worker and every restart)."""
    digest = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class RetryBudget:
    """Envoy's retry budget: retries in flight <= max(min_concurrent, ratio * requests in flight).

    Counting concurrency rather than a rate keeps failover working when an outage leaves only a few
    requests moving (each stuck on a frozen backend until its attempt times out), while a retry storm
    under load is still capped at a share of the traffic.
    """

    def __init__(self, config: RetryBudgetConfig) -> None:
        self.config = config
        self._requests = 0
        self._retries = 0
        self._lock = threading.Lock()

    def request(self) -> RetryBudget:
        """``with budget.request():`` counts one request as in flight while the block runs. The budget
        is its own context manager (a counter, so any number of blocks may be open): a generator-based
        one cost a few µs of every request."""
        return self

    def __enter__(self) -> None:
        with self._lock:
            self._requests += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._requests -= 1

    def try_acquire(self) -> bool:
        """Start one retry if the budget has room; the caller must ``release()`` it when it ends."""
        with self._lock:
            allowed = max(self.config.min_concurrent, self.config.ratio * self._requests)
            if self._retries + 1 > allowed:
                return False
            self._retries += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._retries -= 1

    def in_flight(self) -> tuple[int, int]:
        """(requests, retries) in flight now."""
        with self._lock:
            return self._requests, self._retries


class HealthCache:
    """Passive health: a backend that just failed with a retryable error is skipped for ``ttl_s``."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_s
        self._clock = clock
        self._down_until: dict[str, float] = {}

    def mark(self, backend: str, ready: bool) -> None:
        if ready:
            self._down_until.pop(backend, None)
        else:
            self._down_until[backend] = self._clock() + self._ttl

    def known_down(self, backend: str) -> bool:
        until = self._down_until.get(backend)
        return until is not None and self._clock() < until


class InlineExecutor(Executor):
    """Runs shadow work in the caller's thread, so unit tests see its effects at once."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future


class Router:
    """Routes one worker's requests; safe to share between its threads."""

    def __init__(
        self,
        table: Callable[[], RoutingTable],
        pool: BackendPool,
        *,
        attempt_timeout_s: float,
        health: HealthCache,
        observer: RouterObserver | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        shadow_executor: Executor | None = None,
        shadow_max_inflight: int = 8,
        breaker: BreakerConfig | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._table = table
        self._pool = pool
        self._attempt_timeout = attempt_timeout_s
        self.health = health
        self._observer: RouterObserver = observer or NullObserver()
        self._rng = rng or random.Random()
        self._clock = clock
        self._budgets: dict[str, RetryBudget] = {}
        self._budget_lock = threading.Lock()
        self._shadow_executor = shadow_executor
        self._shadow_slots = threading.BoundedSemaphore(shadow_max_inflight)
        self._batchers: dict[tuple[str, str, int | None], MicroBatcher] = {}
        self.breakers = Breakers(breaker or BreakerConfig(enabled=False), clock, self._circuit_changed)
        self._tracing = tracing or Tracing(None)

    def _circuit_changed(self, backend: str, state: State) -> None:
        if state is State.OPEN:
            log.warning("circuit of %s opened: calls fail fast for a while", backend)
        else:
            log.info("circuit of %s is %s", backend, state.value.replace("_", "-"))
        self._observer.circuit(backend, state)

    # -- choosing -----------------------------------------------------------------------

    def route_for(self, model: str) -> ModelRoute:
        route = self._table().models.get(model)
        if route is None:
            raise NotFound(f"unknown model {model!r}")
        return route

    def _sticky_key(self, route: ModelRoute, selection: Selection) -> str | None:
        if route.sticky_header is None:
            return None
        return selection.headers.get(route.sticky_header.lower()) or None

    def choose_version(self, route: ModelRoute, selection: Selection) -> int | None:
        if selection.version is not None:
            return selection.version
        if selection.label is not None:
            if selection.label not in route.labels:
                raise NotFound(f"model {route.name!r} has no label {selection.label!r}")
            return route.labels[selection.label]
        if not route.versions:
            return None
        key = self._sticky_key(route, selection)
        point = sticky_point(key, f"{route.name}/version") if key else self._rng.random()
        return pick_weighted(route.versions, point)

    def choose_backends(self, route: ModelRoute, selection: Selection) -> list[str]:
        """Primary first, then the failover order: other framework first, then by weight."""
        if selection.backend is not None:
            return [self._explicit(route, selection.backend)]
        key = self._sticky_key(route, selection)
        point = sticky_point(key, f"{route.name}/backend") if key else self._rng.random()
        primary = pick_weighted(route.backends, point)
        if not route.failover:
            return [primary]
        framework = self._pool.framework(primary)
        others = sorted(
            (name for name in route.backends if name != primary),
            key=lambda name: (self._pool.framework(name) == framework, -route.backends[name]),
        )
        return [primary, *others]

    def _explicit(self, route: ModelRoute, wanted: str) -> str:
        if wanted in route.backends:
            return wanted
        same_framework = [name for name in route.backends if self._pool.framework(name) == wanted]
        if same_framework:
            return max(same_framework, key=lambda name: route.backends[name])
        choices = sorted([*route.backends, *{self._pool.framework(n) for n in route.backends}])
        raise InvalidInput(f"backend {wanted!r} does not serve model {route.name!r}; choose one of {choices}")

    def _budget(self, route: ModelRoute) -> RetryBudget:
        with self._budget_lock:
            budget = self._budgets.get(route.name)
            if budget is None or budget.config != route.retry_budget:
                budget = self._budgets[route.name] = RetryBudget(route.retry_budget)
            return budget

    # -- calling ------------------------------------------------------------------------

    def predict(self, selection: Selection, images: np.ndarray) -> Routed:
        route = self.route_for(selection.model)
        version = self.choose_version(route, selection)
        ordered = self.choose_backends(route, selection)
        # Backends that just failed go last: failing over to a healthy one costs no upstream call.
        candidates = [n for n in ordered if not self.health.known_down(n)] + [
            n for n in ordered if self.health.known_down(n)
        ]
        budget = self._budget(route)
        with budget.request():
            return self._try_candidates(route, selection, version, candidates, budget, images)

    def _try_candidates(
        self,
        route: ModelRoute,
        selection: Selection,
        version: int | None,
        candidates: list[str],
        budget: RetryBudget,
        images: np.ndarray,
    ) -> Routed:
        """Call the candidates in order until one answers, a failure is the request's own fault,
        the deadline passes or the retry budget says no."""
        attempts: list[str] = []
        tried: list[str] = []  # what each candidate did, for the log when the request fails
        last_error: GatewayError | None = None
        probed = False  # the last attempt was a breaker's probe: the gateway's choice, not a retry
        for name in candidates:
            left = selection.deadline - self._clock()
            if left <= 0:
                error = DeadlineExceeded(f"deadline passed after {len(attempts)} attempt(s)")
                raise _with_trail(error, tried) from last_error
            breaker = self.breakers[name]
            permitted = breaker.permit()  # one lock: the state check and the probe slot together
            if permitted is None:  # open: fail fast, no upstream call, no retry budget spent
                self._observer.circuit_rejected(name)
                last_error = CircuitOpen(
                    f"{name} is failing; calls to it are paused for {breaker.retry_after_s():.1f} s",
                    backend=name,
                )
                tried.append(f"{name}: circuit open")
                continue
            retrying = bool(attempts) and not probed
            if retrying and not budget.try_acquire():
                requests, retries = budget.in_flight()
                self._observer.budget_exhausted(route.name)
                tried.append(f"retry budget exhausted ({retries} retries of {requests} requests in flight)")
                break
            if attempts:
                self._observer.failover(route.name, attempts[-1], name)
            attempts.append(name)
            probed = permitted is State.HALF_OPEN
            began = self._clock()
            try:
                prediction = self._attempt(route, name, images, version, min(left, self._attempt_timeout))
            except GatewayError as exc:
                if not exc.retryable:
                    raise
                last_error = exc
                tried.append(f"{name}: {exc.status} after {self._clock() - began:.3f} s")
                continue
            finally:
                if retrying:
                    budget.release()
            self._maybe_shadow(route, name, images, version, prediction)
            return Routed(prediction, name, tuple(attempts))
        if last_error is not None:
            raise _with_trail(last_error, tried)
        raise Unavailable(f"no backend available for model {route.name!r}")  # pragma: no cover

    def _attempt(
        self, route: ModelRoute, name: str, images: np.ndarray, version: int | None, timeout: float
    ) -> Prediction:
        """One try at one backend: alone, or through the micro-batcher when the route batches."""
        if not route.batching.enabled:
            return self._call(route.name, name, images, version, timeout)
        return self._batcher(route, name, version).run(images, timeout)

    def batch_pending(self, model: str, backend: str, version: int | None = None) -> int:
        """Requests waiting in one batch queue now (0 when that queue does not exist)."""
        batcher = self._batchers.get((model, backend, version))
        return batcher.pending() if batcher is not None else 0

    def _batcher(self, route: ModelRoute, name: str, version: int | None) -> MicroBatcher:
        key = (route.name, name, version)
        batcher = self._batchers.get(key)
        if batcher is None:
            with self._budget_lock:
                batcher = self._batchers.get(key)
                if batcher is None:
                    model = route.name

                    def call(images: np.ndarray, timeout: float) -> Prediction:
                        return self._call(model, name, images, version, timeout)

                    batcher = MicroBatcher(model, name, route.batching, call, self._observer, self._clock)
                    self._batchers[key] = batcher
        if batcher.config != route.batching:
            batcher.configure(route.batching)  # the routing file changed
        return batcher

    def _call(
        self, model: str, name: str, images: np.ndarray, version: int | None, timeout: float
    ) -> Prediction:
        """One upstream call, counted and translated; the backend's health is updated."""
        backend = self._pool.get(name)
        began = self._clock()  # the breakers' clock: failures of calls in flight together count once
        started = time.perf_counter()
        try:
            if self._tracing.enabled:
                with self._tracing.attempt(name, model, _label(version), images=len(images)):
                    prediction = backend.predict(model, images, version, timeout)
            else:
                prediction = backend.predict(model, images, version, timeout)
        except GatewayError as exc:
            self._observer.attempt(model, name, _label(version), time.perf_counter() - started, exc.status)
            if exc.retryable:
                self.health.mark(name, ready=False)
            # 429 is the backend shedding load on purpose; 4xx is the request's fault.
            self.breakers[name].record(ok=not exc.retryable or isinstance(exc, OverCapacity), started=began)
            if exc.backend is None:
                exc.backend = name
            if isinstance(exc, NotFound):
                raise _not_served(model, version, name, exc) from exc
            raise
        except Exception as exc:  # a bug or an untranslated failure inside a backend: never leak it
            log.exception("backend %s raised an untranslated error", name)
            self._observer.attempt(model, name, _label(version), time.perf_counter() - started, 502)
            self.health.mark(name, ready=False)
            self.breakers[name].record(ok=False, started=began)
            raise Unavailable(f"backend {name} failed", backend=name) from exc
        self._observer.attempt(
            model, name, prediction.version or _label(version), time.perf_counter() - started, 200
        )
        self.health.mark(name, ready=True)
        self.breakers[name].record(ok=True)
        return prediction

    # -- shadow -------------------------------------------------------------------------

    def shadow_target(self, route: ModelRoute, primary: str) -> str | None:
        if route.shadow.backend is not None:
            return route.shadow.backend if route.shadow.backend != primary else None
        framework = self._pool.framework(primary)
        return next((name for name in route.backends if self._pool.framework(name) != framework), None)

    def _maybe_shadow(
        self, route: ModelRoute, primary: str, images: np.ndarray, version: int | None, answer: Prediction
    ) -> None:
        if route.shadow.percent <= 0 or self._rng.random() * 100 >= route.shadow.percent:
            return
        target = self.shadow_target(route, primary)
        if target is None:
            return
        if not self._shadow_slots.acquire(blocking=False):
            self._observer.shadow(route.name, primary, target, "dropped", 0.0, 0, 0)
            return
        executor = self._shadow_executor or self._default_executor()
        try:
            # The copied context carries the request's span into the shadow thread (tracing).
            run = contextvars.copy_context().run
            executor.submit(run, self._run_shadow, route.name, primary, target, images, version, answer)
        except RuntimeError:  # executor shut down (worker exiting)
            self._shadow_slots.release()

    def _default_executor(self) -> Executor:
        with self._budget_lock:
            if self._shadow_executor is None:
                self._shadow_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="shadow")
            return self._shadow_executor

    def _run_shadow(
        self,
        model: str,
        primary: str,
        target: str,
        images: np.ndarray,
        version: int | None,
        answer: Prediction,
    ) -> None:
        started = time.perf_counter()
        try:
            with self._tracing.attempt(target, model, _label(version), shadow=True):
                shadow = self._pool.get(target).predict(model, images, version, self._attempt_timeout)
            seconds = time.perf_counter() - started
            agreed = int((shadow.probabilities.argmax(axis=1) == answer.probabilities.argmax(axis=1)).sum())
            self._observer.shadow(model, primary, target, "ok", seconds, agreed, len(images))
        except Exception:
            self._observer.shadow(model, primary, target, "error", time.perf_counter() - started, 0, 0)
        finally:
            self._shadow_slots.release()

    def close(self, drain_s: float = 5.0) -> None:
        """Let queued batches finish (up to ``drain_s`` in all), then stop the shadow pool."""
        until = self._clock() + drain_s
        for batcher in list(self._batchers.values()):
            if not batcher.close(max(until - self._clock(), 0.0)):
                log.warning("batch queue of %s/%s did not drain in time", batcher.model, batcher.backend)
        if self._shadow_executor is not None:
            self._shadow_executor.shutdown(wait=False, cancel_futures=True)


def _with_trail(error: GatewayError, tried: list[str]) -> GatewayError:
    """``error`` with what each candidate did added to its log-only detail."""
    trail = "; ".join(tried)
    error.detail = f"{error.detail}; tried {trail}" if error.detail else f"tried {trail}"
    return error


class CircuitOpen(Unavailable):
    """503 without an upstream call: the backend's circuit breaker is open."""


def _label(version: int | None) -> str:
    return str(version) if version is not None else "default"


def _not_served(model: str, version: int | None, backend: str, exc: NotFound) -> NotFound:
    """A backend's 404 said in the client's terms: which version of which model is not served."""
    what = f"version {version} of model {model!r}" if version is not None else f"model {model!r}"
    return NotFound(f"{what} is not served by {backend} ({exc.message})", backend=backend, detail=exc.detail)
