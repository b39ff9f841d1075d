"""How the request path's metric updates reach prometheus_client: at once, or queued and written in batches.

With several workers (``PROMETHEUS_MULTIPROC_DIR`` set) every counter increment and histogram
observation is a write to a memory-mapped file behind a process-wide lock, through a few layers of
Python: about ten of them per proxied request, some 45 µs of a worker's CPU per request in context.
:class:`BatchedWriter` lets the request threads only append to a queue; one thread per worker adds
the updates up and writes each labelled series once per interval, so a batch of requests costs a
few writes in all. What a scrape sees of a worker lags by at most :data:`FLUSH_INTERVAL_S`; the
worker serving the scrape writes its own queue first, and every worker writes its queue when it stops.

In one process (tests, ``flask run``) prometheus_client's in-memory values are cheap, and
:class:`MetricWriter` writes each update at once.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["FLUSH_INTERVAL_S", "BatchedWriter", "MetricWriter"]

log = logging.getLogger(__name__)

FLUSH_INTERVAL_S = 0.1
"""How often a worker writes its queued updates: far below any scrape interval, and ten wake-ups a
second cost nothing measurable."""


class MetricWriter:
    """Writes each update at once. ``on_flush`` runs on every :meth:`flush` (before a scrape is rendered):
    the place for gauges sampled from the worker's own state rather than updated per request."""

    def __init__(self, on_flush: Callable[[], None] | None = None) -> None:
        self.on_flush = on_flush

    def inc(self, counter: Any, amount: float = 1.0) -> None:
        """``counter``: a labelled child of a prometheus_client Counter."""
        counter.inc(amount)

    def observe(self, histogram: Any, value: float) -> None:
        """``histogram``: a labelled child of a prometheus_client Histogram."""
        histogram.observe(value)

    def flush(self) -> None:
        if self.on_flush is not None:
            self.on_flush()

    def close(self) -> None:
        self.flush()


_batched: weakref.WeakSet[BatchedWriter] = weakref.WeakSet()


class BatchedWriter(MetricWriter):
    """Queues updates (``deque.append`` is atomic: no lock on the request path) and writes them from a
    thread of its own every ``interval_s``, started with the first update, stopped by :meth:`close`.

    A histogram's batch is written as prometheus_client's own ``observe`` would leave it, one
    addition per bucket and one to the sum, through the child's ``_buckets`` and ``_sum`` values
    (prometheus_client has no public call that adds many observations at once; the unit tests
    compare the exposition with ``observe``'s)."""

    def __init__(
        self, on_flush: Callable[[], None] | None = None, interval_s: float = FLUSH_INTERVAL_S
    ) -> None:
        super().__init__(on_flush)
        self.interval_s = interval_s
        self._counts: deque[tuple[Any, float]] = deque()
        self._observations: deque[tuple[Any, float]] = deque()
        self._flushing = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()
        _batched.add(self)

    def inc(self, counter: Any, amount: float = 1.0) -> None:
        self._counts.append((counter, amount))
        if self._thread is None:
            self._start()

    def observe(self, histogram: Any, value: float) -> None:
        self._observations.append((histogram, value))
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._starting:
            if self._thread is None and not self._stopped.is_set():
                thread = threading.Thread(target=self._run, name="metric-writer", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_s):
            try:
                self.flush()
            except Exception:  # a metrics bug must not stop the writing for good
                log.exception("writing the queued metric updates failed")

    def flush(self) -> None:
        """Write everything queued so far (from any thread; one flush at a time)."""
        with self._flushing:
            counts: dict[Any, float] = {}
            for counter, amount in _drained(self._counts):
                counts[counter] = counts.get(counter, 0.0) + amount
            buckets: dict[Any, list[int]] = {}
            sums: dict[Any, float] = {}
            for histogram, value in _drained(self._observations):
                counted = buckets.get(histogram)
                if counted is None:
                    counted = buckets[histogram] = [0] * len(histogram._upper_bounds)
                if value == value:  # NaN falls in no bucket, as in observe
                    counted[bisect_left(histogram._upper_bounds, value)] += 1
                sums[histogram] = sums.get(histogram, 0.0) + value
            for counter, amount in counts.items():
                counter.inc(amount)
            for histogram, counted in buckets.items():
                histogram._sum.inc(sums[histogram])
                for index, count in enumerate(counted):
                    if count:
                        histogram._buckets[index].inc(count)
            super().flush()

    def close(self) -> None:
        """Stop the thread and write what is left; later updates are written by later flushes only."""
        self._stopped.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(self.interval_s * 5, 1.0))
        self.flush()

    def _forget_parent(self) -> None:
        """In a forked child: the parent's thread is not running here, and its queue is not ours."""
        self._thread = None
        self._counts.clear()
        self._observations.clear()
        self._flushing = threading.Lock()
        self._starting = threading.Lock()


def _drained(queue: deque[tuple[Any, float]]) -> Iterator[tuple[Any, float]]:
    """The queue's items, taken out oldest first until it is empty (request threads may append meanwhile)."""
    while True:
        try:
            yield queue.popleft()
        except IndexError:
            return


def _after_fork_in_child() -> None:
    for writer in list(_batched):
        writer._forget_parent()


os.register_at_fork(after_in_child=_after_fork_in_child)
