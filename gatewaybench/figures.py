"""The gateway benchmark's arithmetic: steps -> per-backend figures -> targets with pass/miss.

Pure functions over recorded steps (no servers, no clock), so they are tested on recorded samples.
Every ratio is taken within one run; where a pair was measured twice (A B B A) the median is used.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
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


def _line(
    figure: str, where: str, measured: float | None, op: str, bound: float, unit: str, note: str = ""
) -> TargetLine:
    target = f"{op} {bound:g}{unit}"
    if measured is None:
        return TargetLine(figure, where, None, target, None, note)
    passed = measured <= bound if op == "<=" else measured >= bound
    return TargetLine(figure, where, measured, target, passed, note)


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


GRPC_FLOOR_BACKEND = "tfserving-grpc"
"""The backend the gRPC proxy floor calls."""
TORCHSERVE_FLOOR_BACKEND = "torchserve-rest"
"""The backend the TorchServe proxy floor calls."""


def _floor_for(floor: Floor, backend: str, rest_backend: str) -> Floor | None:
    """The plain proxy measured in front of ``backend``: the REST one in front of ``rest_backend``,
    the one in front of TorchServe REST, the gRPC one in front of TF Serving gRPC."""
    return {
        rest_backend: floor,
        TORCHSERVE_FLOOR_BACKEND: floor.torchserve,
        GRPC_FLOOR_BACKEND: floor.grpc,
    }.get(backend)


def evaluate_targets(
    figures: Sequence[BackendFigures],
    steps: Sequence[Step],
    batched_backend: str,
    batch_clients: int,
    floor: Floor | None = None,
    lone: Mapping[str, float] | None = None,
    stages: Mapping[str, Any] | None = None,
    startup: Mapping[str, Any] | None = None,
) -> list[TargetLine]:
    """The lean-gateway targets, each stated against what the same run measured: the plain WSGI proxy
    (the floor) for CPU and own work, the cheapest backend for the spread between backends, the server
    alone and the server's own batching for batching; memory and start-up of the gateway as deployed."""
    floor = floor or Floor()
    proxied = [f for f in figures if not f.backend.startswith("embedded")]
    return [
        *_startup_lines(startup or {}),
        _own_work_line((stages or {}).get("instant_backend_us") or {}, batched_backend),
        *_cpu_lines(proxied, floor, batched_backend),
        *_batching_lines(steps, floor, batched_backend, batch_clients),
        _lone_request_line(steps, batched_backend, lone),
    ]


def _startup_lines(startup: Mapping[str, Any]) -> list[TargetLine]:
    where = f"{len(startup.get('ready_s') or [])} starts"
    rss = startup.get("max_worker_rss_mib")
    ready = startup.get("median_ready_s")
    return [
        _line("RSS per proxying worker (2 workers, gRPC ingress on)", where, rss, "<=", 120, " MiB"),
        _line("gateway start to ready (2 workers, proxy routing)", where, ready, "<=", 2.0, " s"),
    ]


def _own_work_line(instant: Mapping[str, float], backend: str) -> TargetLine:
    own, floor_own = instant.get("gateway"), instant.get("floor")
    note = f"gateway {own:.1f} µs, floor {floor_own:.1f} µs" if own and floor_own else ""
    figure = "gateway own work / floor's (instant backend, in process)"
    return _line(figure, backend, _ratio(own, floor_own), "<=", 2.0, "x", note)


def _cpu_lines(proxied: Sequence[BackendFigures], floor: Floor, rest_backend: str) -> list[TargetLine]:
    """Per REST backend, the gateway's CPU per request over the plain proxy's in front of the same
    server; then the dearest backend over the cheapest (the floor's own spread beside it)."""
    lines = []
    for f in (f for f in proxied if f.backend.endswith("-rest")):
        proxy = _floor_for(floor, f.backend, rest_backend)
        floor_cpu = proxy.cpu_ms_per_request if proxy else None
        note = (
            f"gateway {f.gateway_cpu_ms:.3f} ms, floor {floor_cpu:.3f} ms"
            if f.gateway_cpu_ms and floor_cpu
            else ""
        )
        ratio = _ratio(f.gateway_cpu_ms, floor_cpu)
        lines.append(
            _line("gateway CPU per request / floor's (8 clients)", f.backend, ratio, "<=", 1.5, "x", note)
        )
    costs = {f.backend: f.gateway_cpu_ms for f in proxied if f.gateway_cpu_ms}
    worst = max(costs, key=costs.__getitem__) if costs else ""
    best = min(costs, key=costs.__getitem__) if costs else ""
    floors = [
        p.cpu_ms_per_request for p in (floor, floor.torchserve, floor.grpc) if p and p.cpu_ms_per_request
    ]
    note = f"the floor's proxies: {max(floors) / min(floors):.2f}x" if len(floors) > 1 else ""
    spread = _ratio(costs.get(worst), costs.get(best))
    where = f"{worst} / {best}" if costs else "-"
    lines.append(
        _line("gateway CPU per request, dearest backend / cheapest", where, spread, "<=", 1.3, "x", note)
    )
    return lines


def _batching_lines(steps: Sequence[Step], floor: Floor, backend: str, clients: int) -> list[TargetLine]:
    """Gateway batching against the server alone (the stand-in, TorchServe) and against TorchServe's
    own batching, at ``clients``."""
    lines = []
    for name in dict.fromkeys((backend, TORCHSERVE_FLOOR_BACKEND)):
        rps = _median(s.rps for s in _pick(steps, f"batched/{name}", clients))
        alone = _median(s.rps for s in _pick(steps, f"{ALONE}/{name}", clients))
        note = ""
        if name == backend and floor.generator_rps is not None and alone:
            note = f"load generator against null endpoints: {floor.generator_rps / alone:.2f}x"
        figure = f"gateway batching, {clients} clients: throughput / direct unbatched"
        lines.append(_line(figure, name, _ratio(rps, alone), ">=", 1.5, "x", note))
    server = _median(s.rps for s in _pick(steps, f"server-batched/{TORCHSERVE_FLOOR_BACKEND}", clients))
    gateway = _median(s.rps for s in _pick(steps, f"batched/{TORCHSERVE_FLOOR_BACKEND}", clients))
    figure = f"gateway batching / TorchServe's own batching, {clients} clients"
    lines.append(_line(figure, TORCHSERVE_FLOOR_BACKEND, _ratio(gateway, server), ">=", 0.9, "x"))
    return lines


def _lone_request_line(
    steps: Sequence[Step], batched_backend: str, lone: Mapping[str, float] | None
) -> TargetLine:
    """What batching adds to a lone request: the A B B A windows, or (where it ran) the per-request
    alternation, which cancels the drift between windows."""
    on_runs = [s.p50_ms for s in _pick(steps, f"batched/{batched_backend}", 1)]
    off_runs = [s.p50_ms for s in _pick(steps, f"unbatched/{batched_backend}", 1)]
    on, off = _median(on_runs), _median(off_runs)
    windows = None if on is None or off is None else on - off
    where = batched_backend
    if windows is not None:
        noise = f", off windows differ by {max(off_runs) - min(off_runs):.3f} ms" if len(off_runs) > 1 else ""
        where += f"; A B B A windows through the gateway: {windows:+.3f} ms{noise}"
    measured = windows
    if lone and "median_difference_ms" in lone:
        measured = lone["median_difference_ms"]
        where = f"{where}; decided by {lone.get('pairs', 0):.0f} pairs alternating per request"
    return _line("gateway batching, 1 client: p50 on minus off", where, measured, "<=", 0.05, " ms")


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
