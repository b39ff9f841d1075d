"""The comparison's records as ``results.json`` keeps them: each measured window of one target, and
what the analysis makes of them (summary rows, gateway-added figures, comparisons, calibration).

They stay plain JSON objects on disk (``results.json`` → ``data``); these types say which fields each
carries, so the analysis, the headline and the report are checked against one description instead of
each other's spelling. Parts recorded as found (the machine, the servers, the configuration) stay
``dict[str, Any]``: they are JSON edges, written once and shown as they are.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

__all__ = [
    "Analysis",
    "CalibrationRecord",
    "ComparisonRow",
    "GatewayAddedRow",
    "Interval",
    "Results",
    "RoundRatio",
    "StepRecord",
    "SummaryRow",
    "WindowRecord",
]


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


class Interval(TypedDict):
    """A :class:`loadtests.stats.Estimate` as JSON keeps it (``None`` where not finite: JSON has no NaN)."""

    value: float | None
    low: float | None
    high: float | None


class SummaryRow(TypedDict):
    """One target at one step, over every round that measured it."""

    target: str
    step: str
    kind: str
    users: int
    rate: float | None
    repetitions: int
    requests: int
    errors: int
    error_reasons: dict[str, int]
    saturated: bool
    saturation: list[str]
    short: bool
    rps: Interval
    p50_ms: Interval
    p95_ms: Interval
    p99_ms: Interval
    generator_cpu_peak: float
    target_server_cpu_percent: float
    server_cpu_ms_per_request: float
    other_cpu_percent: float
    server_timing_ms: NotRequired[dict[str, float]]
    """The gateway's ``Server-Timing`` stages (through the gateway only)."""


class GatewayAddedRow(TypedDict):
    """Through the gateway against the same backend called directly, paired within each round."""

    backend: str
    via: str
    step: str
    repetitions: int
    added_p50_ms: Interval
    added_p99_ms: Interval
    throughput_ratio: Interval
    saturated: bool


class RoundRatio(TypedDict):
    value: float
    low: float
    high: float
    rounds: int


class ComparisonRow(TypedDict):
    """The TensorFlow side (``a``) against the PyTorch side (``b``) of one pair, step and metric."""

    pair: str
    a: str
    b: str
    step: str
    metric: str
    a_value: Interval
    b_value: Interval
    ratio_b_over_a: RoundRatio
    winner: str | None
    saturated: bool


class CalibrationRecord(TypedDict):
    """The load generator against the null endpoints of one protocol: its ceiling here."""

    target: str
    ceiling_rps: float
    at_step: str
    p50_ms_at_1_user: float | None
    generator_cpu_peak: float


class Analysis(TypedDict):
    """What :func:`loadtests.analysis.analyse` makes of a run's windows."""

    steps: list[StepRecord]
    summary: list[SummaryRow]
    gateway_added: list[GatewayAddedRow]
    comparisons: list[ComparisonRow]
    independent: list[WindowRecord]
    headline: dict[str, Any]
    calibration: dict[str, CalibrationRecord]
    """By protocol: ``rest``, ``grpc``."""
    cdf_step: str | None
    failures_outside_windows: dict[str, int]
    settings: dict[str, Any]


class Results(Analysis, total=False):
    """``results.json``'s ``data`` for a comparison: the analysis and what the run recorded about itself."""

    format: str
    """``loadtests-results/1``, kept inside the envelope for readers of the first layout."""
    crosscheck: list[dict[str, Any]]
    slo_capacity: dict[str, Any]
    capacity: dict[str, Any]
    reproducibility: dict[str, Any]
    prewarm: dict[str, Any]
    created: str
    argv: list[str]
    config: dict[str, Any]
    environment: dict[str, Any]
    tfserving: dict[str, Any]
    servers: dict[str, Any]
    endpoints: dict[str, str]
    payloads: dict[str, Any]
    targets: dict[str, Any]
    plan: dict[str, Any]
    locust_exit_code: int | None
    generator: dict[str, Any]
    cleanup: dict[str, Any]
