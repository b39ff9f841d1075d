"""The comparison's records as ``results.json`` keeps them: one measured window of one target.

They stay plain JSON objects on disk (``results.json`` → ``data`` → ``steps`` and ``independent``);
these types say which fields each carries, so the analysis, the headline and the report are checked
against one description instead of each other's spelling.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = ["StepRecord", "WindowRecord"]


class WindowRecord(TypedDict):
    """What every measured window of one target in one round carries: a Locust step or one part of
    the independent client's window (the fields the headline reads)."""

    target: str
    rep: int
    phase: int
    kind: str
    """``closed``, ``rate`` or ``capacity`` (Locust), ``independent`` (the independent client)."""
    step: str
    """The step's label: ``8 users``, ``1 user, independent client``, ``8 connections, independent
    client``."""
    users: int
    requests: int
    """Correct answers measured in the window."""
    error_count: int
    duration_s: float
    rps: float
    latency_ms: dict[str, float]
    """``p50``, ``p99`` (Locust's also ``p95``, ``mean``, ``min``, ``max``)."""
    saturated: bool


class StepRecord(WindowRecord, total=False):
    """A Locust window: the common fields and what only Locust's windows record."""

    rate: float | None
    window: list[float]
    errors: dict[str, int]
    short: bool
    """Fewer answers than the step asked for (the window hit its time cap)."""
    generator_cpu: dict[str, Any]
    generator_cpu_peak: float
    server_cpu_percent: dict[str, float]
    target_server_cpu_percent: float
    other_cpu_percent: float
    steal_cpu_percent: float
    server_cpu_ms_per_request: float
    latencies_ms: list[float]
    starts: list[float]
    server_timing_ms: dict[str, float]
    saturation: list[str]
    """Why the load generator's figures are suspect (``saturated``: any reason)."""
