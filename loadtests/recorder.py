"""Raw per-request samples at full resolution, collected from Locust's request events.

Locust's own statistics keep response times in a histogram rounded to whole milliseconds below 100 ms
(``locust.stats.bucket_response_time``), which is useless at MNIST latencies (about 1 ms). Its request
event, however, carries the unrounded ``perf_counter`` duration as a float number of milliseconds (for
FastHttpUser: ``(time.perf_counter() - start_perf_counter) * 1000``, measured around the request and
the body download; our gRPC users fire the same event with their own ``perf_counter`` timing). This
recorder keeps that float for every request together with the wall-clock start (``time.time()``, used
to place the request inside a measurement window), the failure reason, and the gateway's
``Server-Timing`` split when the answer has one.

Workers hand their batch to the master with each stats report; the master (or a standalone process)
writes everything to one JSON file at the end. This module does not import Locust.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Columns", "SampleRecorder", "failure_reason", "load_samples", "parse_server_timing"]

FORMAT = "loadtests-samples/1"
_TIMING = re.compile(r"(?P<name>[A-Za-z0-9_-]+)\s*;(?:[^,]*?)dur=(?P<dur>[0-9.]+)")


@dataclass
class Columns:
    """One target's samples, column-wise (cheap to append, to ship and to load into numpy)."""

    start: list[float] = field(default_factory=list)
    """Wall-clock start, ``time.time()`` seconds."""
    ms: list[float] = field(default_factory=list)
    """Client-measured duration in milliseconds (float, perf_counter)."""
    error: list[str] = field(default_factory=list)
    """Failure reason, "" for a correct answer."""
    gateway_ms: list[float] = field(default_factory=list)
    """``Server-Timing: gateway;dur=`` (NaN without the header)."""
    backend_ms: list[float] = field(default_factory=list)
    """``Server-Timing: backend;dur=`` (NaN without the header)."""
    lag_ms: list[float] = field(default_factory=list)
    """Open-loop steps: how long the request's arrival waited for a free user (0 otherwise)."""

    def append(
        self, start: float, ms: float, error: str, gateway_ms: float, backend_ms: float, lag_ms: float = 0.0
    ) -> None:
        self.start.append(start)
        self.ms.append(ms)
        self.error.append(error)
        self.gateway_ms.append(gateway_ms)
        self.backend_ms.append(backend_ms)
        self.lag_ms.append(lag_ms)

    def extend(self, other: Columns) -> None:
        self.start.extend(other.start)
        self.ms.extend(other.ms)
        self.error.extend(other.error)
        self.gateway_ms.extend(other.gateway_ms)
        self.backend_ms.extend(other.backend_ms)
        self.lag_ms.extend(other.lag_ms)

    def __len__(self) -> int:
        return len(self.start)

    def to_dict(self) -> dict[str, list[Any]]:
        return {
            "start": self.start,
            "ms": self.ms,
            "error": self.error,
            # JSON has no NaN: missing Server-Timing figures are null.
            "gateway_ms": [None if math.isnan(v) else v for v in self.gateway_ms],
            "backend_ms": [None if math.isnan(v) else v for v in self.backend_ms],
            "lag_ms": self.lag_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, list[Any]]) -> Columns:
        nan = float("nan")
        return cls(
            [float(v) for v in data["start"]],
            [float(v) for v in data["ms"]],
            [str(v) for v in data["error"]],
            [nan if v is None else float(v) for v in data["gateway_ms"]],
            [nan if v is None else float(v) for v in data["backend_ms"]],
            [float(v) for v in data.get("lag_ms") or [0.0] * len(data["start"])],
        )


def parse_server_timing(header: str | None) -> tuple[float, float]:
    """``(gateway ms, backend ms)`` from ``Server-Timing``; NaN for what is absent."""
    found = {m["name"]: float(m["dur"]) for m in _TIMING.finditer(header or "")}
    return found.get("gateway", float("nan")), found.get("backend", float("nan"))


def failure_reason(exception: BaseException | str | None) -> str:
    """A short reason that groups well: the check's message, or the exception's type and message."""
    if exception is None:
        return ""
    if isinstance(exception, str):
        text = exception
    else:
        message = str(exception)
        # Locust wraps response.failure(reason) in CatchResponseError(reason): keep just the reason.
        name = type(exception).__name__
        text = message if name == "CatchResponseError" and message else f"{name}: {message}"
    return " ".join(text.split())[:160] or "failure"


class SampleRecorder:
    """Collects samples per target name; counts the samples of one watched target since a moment."""

    def __init__(self) -> None:
        self.columns: dict[str, Columns] = {}
        self._outbox: dict[str, Columns] = {}
        self._watch: tuple[str, float] | None = None
        self._watched = 0
        self._reported: dict[str, float] = {}
        """On the master: when each worker's last report arrived."""

    def record(
        self,
        name: str,
        start: float,
        ms: float,
        error: str = "",
        server_timing: str | None = None,
        *,
        keep: bool = True,
        lag_ms: float = 0.0,
    ) -> None:
        """Add one request; ``keep=False`` (on a worker) only queues it for the master."""
        gateway_ms, backend_ms = parse_server_timing(server_timing)
        box = self.columns if keep else self._outbox
        box.setdefault(name, Columns()).append(start, ms, error, gateway_ms, backend_ms, lag_ms)
        self._count(name, [start])

    def take_batch(self) -> dict[str, dict[str, list[Any]]]:
        """What a worker ships with its next report (and forgets)."""
        batch = {name: columns.to_dict() for name, columns in self._outbox.items() if len(columns)}
        self._outbox = {}
        return batch

    def reported_until(self, workers: int) -> float:
        """On the master: the oldest of the ``workers``' last reports (0 until each has reported)."""
        if workers <= 0 or len(self._reported) < workers:
            return 0.0
        return min(self._reported.values())

    def add_batch(self, batch: dict[str, dict[str, list[Any]]], worker: str = "") -> None:
        """On the master: samples reported by a worker (everything it recorded before now)."""
        if worker:
            self._reported[worker] = time.time()
        for name, data in batch.items():
            columns = Columns.from_dict(data)
            self.columns.setdefault(name, Columns()).extend(columns)
            self._count(name, columns.start)

    def watch(self, name: str, since: float) -> None:
        """Start counting samples of ``name`` that started at or after ``since``."""
        self._watch = (name, since)
        existing = self.columns.get(name)
        self._watched = sum(1 for start in existing.start if start >= since) if existing else 0

    @property
    def watched(self) -> int:
        return self._watched

    def _count(self, name: str, starts: list[float]) -> None:
        if self._watch is not None and self._watch[0] == name:
            since = self._watch[1]
            self._watched += sum(1 for start in starts if start >= since)

    def window_summary(self, name: str, begin: float, end: float) -> dict[str, float | int | None]:
        """Median duration of the correct answers, their count and the failures' in a window (progress)."""
        columns = self.columns.get(name)
        durations: list[float] = []
        failures = 0
        if columns is not None:
            for start, ms, error in zip(columns.start, columns.ms, columns.error, strict=True):
                if begin <= start and start + ms / 1000.0 <= end:
                    if error:
                        failures += 1
                    else:
                        durations.append(ms)
        durations.sort()
        p50 = durations[len(durations) // 2] if durations else None
        return {"p50_ms": p50, "failures": failures, "requests": len(durations)}

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "targets": {name: cols.to_dict() for name, cols in self.columns.items()}}

    def write(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json()))
        tmp.replace(path)


def load_samples(path: Path) -> dict[str, Columns]:
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: format {data.get('format')!r}, expected {FORMAT!r}")
    return {name: Columns.from_dict(columns) for name, columns in data["targets"].items()}
