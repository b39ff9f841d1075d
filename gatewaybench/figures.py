"""The gateway benchmark's arithmetic: steps -> per-backend figures -> targets with pass/miss.

Pure functions over recorded steps (no servers, no clock), so they are tested on recorded samples.
Every ratio is taken within one run; where a pair was measured twice (A B B A) the median is used.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from loadtests.stats import percentile

__all__ = [
    "ALONE",
    "BATCHING_MODES",
    "GRPC_FLOOR_BACKEND",
    "TORCHSERVE_FLOOR_BACKEND",
    "BackendFigures",
    "BatchingRow",
    "Step",
    "TargetLine",
    "backend_figures",
    "batching_rows",
    "evaluate_targets",
    "step_from_samples",
]

ALONE = "alone"
"""The batching blocks' path for the server called directly: not ``direct``, so those windows, taken
minutes after a backend's A B B A, never enter its medians."""
BATCHING_MODES = {
    ALONE: "server alone, unbatched",
    "unbatched": "through the gateway, unbatched",
    "batched": "gateway batching",
    "server-batched": "server batching (TorchServe batchSize)",
}
"""Step path -> what it measures, in the order the batching table shows them."""


@dataclass(frozen=True)
class Step:
    """One measured window: one target at one number of closed-loop clients."""

    target: str
    """``direct/<backend>``, ``gateway/<backend>``, ``floor/<backend>``, and in the batching block
    ``batched/<backend>`` and ``unbatched/<backend>`` (batching on and off, measured alternately)."""
    clients: int
    seconds: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    rps: float
    gateway_cpu_ms: float | None
    """Gateway processes' CPU per completed request (None for direct steps)."""
    server_cpu_ms: float | None
    """The model server's CPU per completed request (None for embedded backends)."""
    generator_cpu_pct: float
    """The load generator's CPU over the window; near 100% the generator, not the server, set the pace."""

    @property
    def path(self) -> str:
        return self.target.split("/", 1)[0]

    @property
    def backend(self) -> str:
        return self.target.split("/", 1)[1]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def step_from_samples(
    target: str,
    clients: int,
    latencies_s: Sequence[float],
    errors: int,
    seconds: float,
    gateway_cpu_s: float | None,
    server_cpu_s: float | None,
    generator_cpu_s: float,
) -> Step:
    """Percentiles from raw latencies; CPU seconds over the window spread over the completed requests."""
    count = len(latencies_s)
    latencies_ms = [1000.0 * value for value in latencies_s]

    def per_request(cpu_s: float | None) -> float | None:
        return None if cpu_s is None or count == 0 else 1000.0 * cpu_s / count

    return Step(
        target=target,
        clients=clients,
        seconds=seconds,
        requests=count,
        errors=errors,
        p50_ms=percentile(latencies_ms, 50),
        p99_ms=percentile(latencies_ms, 99),
        rps=count / seconds if seconds > 0 else 0.0,
        gateway_cpu_ms=per_request(gateway_cpu_s),
        server_cpu_ms=per_request(server_cpu_s),
        generator_cpu_pct=100.0 * generator_cpu_s / seconds if seconds > 0 else 0.0,
    )


def _median(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _pick(steps: Sequence[Step], target: str, clients: int) -> list[Step]:
    return [s for s in steps if s.target == target and s.clients == clients]


@dataclass(frozen=True)
class BackendFigures:
    backend: str
    direct_p50_ms: float | None
    gateway_p50_ms: float | None
    added_p50_ms: float | None
    added_p99_ms: float | None
    direct_rps: float | None
    gateway_rps: float | None
    throughput_ratio: float | None
    gateway_cpu_ms: float | None
    """Gateway CPU per request at the throughput step, unbatched."""
    server_cpu_ms: float | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def backend_figures(
    steps: Sequence[Step], backend: str, latency_clients: int, load_clients: int
) -> BackendFigures:
    """Medians over the A B B A repetitions of one backend, direct vs through the gateway."""
    direct_1 = _pick(steps, f"direct/{backend}", latency_clients)
    gateway_1 = _pick(steps, f"gateway/{backend}", latency_clients)
    direct_n = _pick(steps, f"direct/{backend}", load_clients)
    gateway_n = _pick(steps, f"gateway/{backend}", load_clients)
    d50 = _median(s.p50_ms for s in direct_1)
    g50 = _median(s.p50_ms for s in gateway_1)
    d99 = _median(s.p99_ms for s in direct_1)
    g99 = _median(s.p99_ms for s in gateway_1)
    drps = _median(s.rps for s in direct_n)
    grps = _median(s.rps for s in gateway_n)
    return BackendFigures(
        backend=backend,
        direct_p50_ms=d50,
        gateway_p50_ms=g50,
        added_p50_ms=None if d50 is None or g50 is None else g50 - d50,
        added_p99_ms=None if d99 is None or g99 is None else g99 - d99,
        direct_rps=drps,
        gateway_rps=grps,
        throughput_ratio=None if not drps or grps is None else grps / drps,
        gateway_cpu_ms=_median(s.gateway_cpu_ms for s in gateway_n),
        server_cpu_ms=_median(s.server_cpu_ms for s in direct_n),
    )


@dataclass(frozen=True)
class TargetLine:
    figure: str
    where: str
    measured: float | None
    target: str
    passed: bool | None
    """None: not measured in this run (the reason is in ``where``)."""
    floor_note: str = ""
    """The same figure for the least any proxy could do here, when measured: a target the floor
    misses too cannot pass on this machine."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class Floor:
    """What the floor runs measured: a plain WSGI proxy (same server, same client) in front of
    tfserving-rest and answering by itself, and the load generator against null endpoints at the
    batching point; ``grpc`` and ``torchserve`` hold the same proxy's figures in front of
    tfserving-grpc and of torchserve-rest."""

    p50_ms_1_client: float | None = None
    direct_p50_ms_1_client: float | None = None
    """Direct p50 in the floor's own A B B A windows (None: compare with the gateway's direct windows)."""
    cpu_ms_per_request: float | None = None
    rps: float | None = None
    direct_rps: float | None = None
    answer_cpu_ms_per_request: float | None = None
    model_cpu_ms_per_request: float | None = None
    """The plain WSGI app decoding the JSON, running the same TorchScript and encoding its answer."""
    generator_rps: float | None = None
    grpc: Floor | None = None
    """The proxy figures (p50, CPU, rates) of the same plain proxy calling TF Serving over gRPC."""
    torchserve: Floor | None = None
    """The proxy figures of the same plain proxy calling TorchServe over REST (with its key)."""

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Floor:
        nested = ("grpc", "torchserve")
        grpc, torchserve = (
            cls.from_dict(value) if isinstance(value := raw.get(name), dict) else None for name in nested
        )
        flat = {name: raw.get(name) for name in cls.__dataclass_fields__ if name not in nested}
        return cls(**flat, grpc=grpc, torchserve=torchserve)


def _floor_note(what: str, value: float | None, op: str, bound: float, unit: str = "") -> str:
    if value is None:
        return ""
    misses = not (value <= bound if op == "<=" else value >= bound)
    return f"{what}: {value:.3f}{unit}" + (", misses too" if misses else "")


def _line(figure: str, where: str, measured: float | None, op: str, bound: float, unit: str) -> TargetLine:
    if measured is None:
        return TargetLine(figure, where, None, f"{op} {bound:g}{unit}", None)
    passed = measured <= bound if op == "<=" else measured >= bound
    return TargetLine(figure, where, measured, f"{op} {bound:g}{unit}", passed)


GRPC_FLOOR_BACKEND = "tfserving-grpc"
"""The backend the gRPC proxy floor calls."""
TORCHSERVE_FLOOR_BACKEND = "torchserve-rest"
"""The backend the TorchServe proxy floor calls."""


def _proxy_notes(floor: Floor, backend: str, proxied: Sequence[BackendFigures]) -> tuple[str, str, str]:
    """The proxy floor's CPU, added p50 and throughput ratio, each as the note beside its target line."""
    gateway_side = next((f for f in proxied if f.backend == backend), None)
    proxy = f"plain WSGI proxy to {backend}"
    cpu_note = _floor_note(proxy, floor.cpu_ms_per_request, "<=", 0.4, " ms")
    added = floor.p50_ms_1_client
    direct_p50 = floor.direct_p50_ms_1_client or (gateway_side.direct_p50_ms if gateway_side else None)
    floor_added = added - direct_p50 if added is not None and direct_p50 is not None else None
    added_note = _floor_note(proxy, floor_added, "<=", 0.5, " ms")
    direct_rps = floor.direct_rps or (gateway_side.direct_rps if gateway_side else None)
    floor_ratio = floor.rps / direct_rps if floor.rps is not None and direct_rps else None
    return cpu_note, added_note, _floor_note(proxy, floor_ratio, ">=", 0.65)


def evaluate_targets(
    figures: Sequence[BackendFigures],
    steps: Sequence[Step],
    batched_backend: str,
    batch_clients: int,
    floor: Floor | None = None,
    lone: Mapping[str, float] | None = None,
) -> list[TargetLine]:
    """The issue's targets, one line per backend where they apply, with the floor's figure beside
    each line the floor runs can speak for."""
    floor = floor or Floor()
    lines: list[TargetLine] = []
    proxied = [f for f in figures if not f.backend.startswith("embedded")]
    rest_notes = _proxy_notes(floor, batched_backend, proxied)
    grpc_notes = _proxy_notes(floor.grpc, GRPC_FLOOR_BACKEND, proxied) if floor.grpc else None
    torchserve_notes = (
        _proxy_notes(floor.torchserve, TORCHSERVE_FLOOR_BACKEND, proxied) if floor.torchserve else None
    )

    def notes_for(backend: str) -> tuple[str, str, str]:
        """A gRPC backend's lines get the gRPC proxy's floor, TorchServe REST's the proxy in front of
        TorchServe, where they were measured; the rest the proxy in front of TF Serving REST."""
        if grpc_notes and backend.endswith("-grpc"):
            return grpc_notes
        if torchserve_notes and backend == TORCHSERVE_FLOOR_BACKEND:
            return torchserve_notes
        return rest_notes

    for f in proxied:
        line = _line(
            "gateway CPU per proxied request, unbatched", f.backend, f.gateway_cpu_ms, "<=", 0.4, " ms"
        )
        lines.append(replace(line, floor_note=notes_for(f.backend)[0]))
    for f in proxied:
        line = _line("added p50 at 1 client", f.backend, f.added_p50_ms, "<=", 0.5, " ms")
        lines.append(replace(line, floor_note=notes_for(f.backend)[1]))
    for f in proxied:
        line = _line(
            "throughput via gateway / direct, unbatched", f.backend, f.throughput_ratio, ">=", 0.65, ""
        )
        lines.append(replace(line, floor_note=notes_for(f.backend)[2]))
    embedded = next((f for f in figures if f.backend == "embedded-pytorch"), None)
    line = _line(
        "embedded PyTorch, CPU per request end to end",
        "embedded-pytorch",
        embedded.gateway_cpu_ms if embedded else None,
        "<=",
        0.3,
        " ms",
    )
    answer_note = _floor_note(
        "plain WSGI app answering without a model", floor.answer_cpu_ms_per_request, "<=", 0.3, " ms"
    )
    model_note = _floor_note(
        "plain WSGI app running the same TorchScript", floor.model_cpu_ms_per_request, "<=", 0.3, " ms"
    )
    lines.append(replace(line, floor_note="; ".join(note for note in (answer_note, model_note) if note)))
    batched = _pick(steps, f"batched/{batched_backend}", batch_clients)
    direct = _pick(steps, f"{ALONE}/{batched_backend}", batch_clients)
    rps, direct_rps = _median(s.rps for s in batched), _median(s.rps for s in direct)
    p99, direct_p99 = _median(s.p99_ms for s in batched), _median(s.p99_ms for s in direct)
    where, wide = batched_backend, f"gateway batching, {batch_clients} clients"
    ratio = None if rps is None or not direct_rps else rps / direct_rps
    ceiling = floor.generator_rps / direct_rps if floor.generator_rps is not None and direct_rps else None
    lines.append(
        replace(
            _line(f"{wide}: throughput / direct unbatched", where, ratio, ">=", 1.5, ""),
            floor_note=_floor_note("load generator against null endpoints", ceiling, ">=", 1.5),
        )
    )
    worse = None if p99 is None or direct_p99 is None else p99 - direct_p99
    lines.append(_line(f"{wide}: p99 minus direct p99", where, worse, "<=", 0.0, " ms"))
    on_runs = [s.p50_ms for s in _pick(steps, f"batched/{batched_backend}", 1)]
    off_runs = [s.p50_ms for s in _pick(steps, f"unbatched/{batched_backend}", 1)]
    on, off = _median(on_runs), _median(off_runs)
    windows = None if on is None or off is None else on - off
    # The two "off" windows of the A B B A differ by the machine's drift, often by more than the target;
    # the per-request alternation cancels it, so it decides the line when it ran.
    where = batched_backend
    if windows is not None:
        noise = f", off windows differ by {max(off_runs) - min(off_runs):.3f} ms" if len(off_runs) > 1 else ""
        where += f"; A B B A windows through the gateway: {windows:+.3f} ms{noise}"
    measured = windows
    if lone and "median_difference_ms" in lone:
        measured = lone["median_difference_ms"]
        where = f"{where}; decided by {lone.get('pairs', 0):.0f} pairs alternating per request"
    lines.append(_line("gateway batching, 1 client: p50 on minus off", where, measured, "<=", 0.05, " ms"))
    return lines


@dataclass(frozen=True)
class BatchingRow:
    backend: str
    mode: str
    clients: int
    rps: float | None
    p50_ms: float | None
    p99_ms: float | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def batching_rows(steps: Sequence[Step], backend: str, points: Sequence[int]) -> list[BatchingRow]:
    """Each batching mode measured for ``backend`` at each number of clients (medians of repeats)."""
    rows = []
    for mode in BATCHING_MODES:
        for clients in points:
            picked = _pick(steps, f"{mode}/{backend}", clients)
            if picked:
                rows.append(
                    BatchingRow(
                        backend,
                        mode,
                        clients,
                        _median(s.rps for s in picked),
                        _median(s.p50_ms for s in picked),
                        _median(s.p99_ms for s in picked),
                    )
                )
    return rows
