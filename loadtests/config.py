"""Every knob of ``python -m loadtests compare``, its presets, and the parser that documents them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from loadtests.backends import BACKEND_NAMES, BACKENDS
from loadtests.capacity import SearchSettings, SloSettings
from loadtests.plan import PlanSettings
from loadtests.targets import ADDRESS_OPTIONS

__all__ = ["PRESETS", "CompareConfig", "build_parser", "config_from_args"]

PRESETS: dict[str, dict[str, Any]] = {
    "full": {},
    "demo": {
        # REST only (gRPC, more users and the capacity search in `make loadtest`). Interleaved rounds:
        # every round has one Locust window at 1 user in which Locust takes the six targets in turn,
        # in blocks of ten requests (the harness check), and ends with the independent client's window
        # over all six: one connection per target in blocks of ten requests (p50), then 8 connections
        # per target in time slots of about 0.2 s (throughput). The machine's drift falls on every
        # target alike and the headline's intervals come from the spread between the rounds.
        "targets": "tfserving-rest,torchserve-rest,v2-rest,gateway/tfserving-rest,gateway/torchserve-rest,"
        "gateway/v2-rest",
        "users": "1",
        "interleave_locust": True,
        "independent_connections": 8,
        "independent_concurrent_seconds": 5.5,
        "repetitions": 9,
        "min_requests": 50,
        "step_seconds": 0.6,
        "max_step_seconds": 3.0,
        "settle_seconds": 0.3,
        # No Locust warm-up phases: every server, and the gateway to each backend, is pre-warmed until
        # settled before the rounds, and each window opens 0.3 s after its users start.
        "warmup_requests": 0,
        "warmup_seconds": 0.0,
        "bootstrap": 500,
        # TorchServe's JVM kept speeding up for two minutes in one run: each server is warmed until its
        # throughput settles (three 1 s windows within 10%, no longer climbing) after 2,000 requests,
        # at most 15 s; the median over rounds absorbs what is left of its climb.
        "prewarm_seconds": 15.0,
        "prewarm_requests": 2000,
        "slo_ms": 50.0,
        "capacity_steps": 0,
    },
    "smoke": {
        "users": "2",
        "repetitions": 1,
        "min_requests": 20,
        "step_seconds": 0.5,
        "max_step_seconds": 3.0,
        "settle_seconds": 0.2,
        "independent_seconds": 0.6,
        "independent_connections": 2,
        "independent_concurrent_seconds": 0.6,
        "warmup_requests": 0,
        "warmup_seconds": 0.0,
        "bootstrap": 200,
        "digits": 20,
        "prewarm_seconds": 0.0,
        "prewarm_requests": 0,
        "capacity_steps": 1,
        "capacity_seconds": 0.5,
        "capacity_min_requests": 20,
    },
}
"""``full`` follows docs/benchmarking.md; ``demo`` fits ``make demo`` (about 3.5 minutes here); ``smoke``:
tests."""

DEFAULTS: dict[str, Any] = {
    "targets": "all",
    "users": "1,4,16,64",
    "rates": "",
    "rate_users": 0,
    "repetitions": 3,
    "min_requests": 1000,
    "step_seconds": 5.0,
    "max_step_seconds": 60.0,
    "settle_seconds": 1.0,
    "independent_seconds": 2.5,
    "independent_connections": 16,
    "independent_concurrent_seconds": 4.5,
    "interleave_locust": False,
    # TorchServe's JVM keeps getting faster for about 2,000 requests on these machines (cold: ~9-16 ms,
    # steady: ~1.5 ms p50 at one connection), so the warm-up asks for 2,000 (the protocol's minimum is 1,000).
    "warmup_requests": 2000,
    "warmup_seconds": 30.0,
    "warmup_users": 4,
    "bootstrap": 1000,
    "digits": 100,
    "prewarm_seconds": 20.0,
    "prewarm_requests": 0,
    "slo_ms": 10.0,
    "capacity_steps": 6,
    "capacity_seconds": 3.0,
    "capacity_precision": 0.1,
    "capacity_min_requests": 1000,
}


@dataclass(frozen=True)
class CompareConfig:
    targets: str = "all"
    skip: str = ""
    start: bool = False
    calibrate: bool = True
    tfserving_rest_url: str = ""
    tfserving_grpc_target: str = ""
    torchserve_url: str = ""
    torchserve_grpc_target: str = ""
    torchserve_key_file: str = ""
    triton_url: str = ""
    triton_grpc_target: str = ""
    gateway_url: str = ""
    store: Path | None = None
    digits: int = DEFAULTS["digits"]
    seed: int = 0
    users: str = DEFAULTS["users"]
    rates: str = DEFAULTS["rates"]
    rate_users: int = DEFAULTS["rate_users"]
    repetitions: int = DEFAULTS["repetitions"]
    min_requests: int = DEFAULTS["min_requests"]
    step_seconds: float = DEFAULTS["step_seconds"]
    max_step_seconds: float = DEFAULTS["max_step_seconds"]
    settle_seconds: float = DEFAULTS["settle_seconds"]
    warmup_requests: int = DEFAULTS["warmup_requests"]
    warmup_seconds: float = DEFAULTS["warmup_seconds"]
    warmup_users: int = DEFAULTS["warmup_users"]
    request_timeout: float = 10.0
    independent_client: bool = True
    """The independent client's window at the end of every round, over every REST target."""
    independent_seconds: float = DEFAULTS["independent_seconds"]
    independent_connections: int = DEFAULTS["independent_connections"]
    independent_concurrent_seconds: float = DEFAULTS["independent_concurrent_seconds"]
    interleave_locust: bool = DEFAULTS["interleave_locust"]
    prewarm_seconds: float = DEFAULTS["prewarm_seconds"]
    prewarm_requests: int = DEFAULTS["prewarm_requests"]
    workers: int = 0
    expect_workers: int = 0
    master_bind_host: str = "127.0.0.1"
    master_port: int = 0
    pin: str = "auto"
    threads: int = 1
    gateway_workers: int = 1
    gateway_threads: int = 4
    ts_workers: int = 1
    start_timeout: float = 180.0
    out: Path = Path("reports")
    bootstrap: int = DEFAULTS["bootstrap"]
    cdf_step: str = ""
    saturation_cpu: float = 80.0
    ceiling_fraction: float = 0.8
    slo_ms: float = DEFAULTS["slo_ms"]
    capacity_steps: int = DEFAULTS["capacity_steps"]
    capacity_seconds: float = DEFAULTS["capacity_seconds"]
    capacity_precision: float = DEFAULTS["capacity_precision"]
    capacity_start: float = 0.0
    capacity_min_requests: int = DEFAULTS["capacity_min_requests"]
    preset: str = "full"
    repeat: int = 1
    """Passes of the whole plan with the same servers; 2 or more: the rerun check."""

    def plan_settings(self) -> PlanSettings:
        slo = SloSettings(slo_ms=self.slo_ms, saturation_cpu=self.saturation_cpu)
        longest_step_s = 2 * self.capacity_seconds
        return PlanSettings(
            users=tuple(int(part) for part in self.users.split(",") if part.strip()),
            rates=tuple(float(part) for part in self.rates.split(",") if part.strip()),
            rate_users=self.rate_users,
            repetitions=self.repetitions,
            order_seed=self.seed,
            min_requests=self.min_requests,
            step_s=self.step_seconds,
            max_step_s=max(self.max_step_seconds, self.step_seconds),
            settle_s=self.settle_seconds,
            independent_s=self.independent_seconds,
            independent_connections=self.independent_connections if self.independent_client else 0,
            independent_concurrent_s=self.independent_concurrent_seconds,
            interleave_locust=self.interleave_locust,
            warmup_requests=self.warmup_requests,
            warmup_s=self.warmup_seconds,
            warmup_users=self.warmup_users,
            search=SearchSettings(
                start_rps=self.capacity_start,
                precision=self.capacity_precision,
                max_steps=self.capacity_steps,
                floor_rps=slo.lowest_rate(longest_step_s),
            )
            if self.capacity_steps > 0
            else None,
            slo=slo,
            capacity_step_s=self.capacity_seconds,
            capacity_max_step_s=longest_step_s,
            capacity_min_requests=self.capacity_min_requests,
        )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: str(v) if isinstance(v := getattr(self, f.name), Path) else v for f in fields(self)}


def _preset_help(name: str) -> str:
    values = {preset: PRESETS[preset].get(name, DEFAULTS[name]) for preset in ("demo", "smoke")}
    return f"default {DEFAULTS[name]!s}; demo preset {values['demo']!s}"


def _knob(group: argparse._ArgumentGroup, name: str, kind: type, text: str) -> None:
    """An option whose default comes from the preset (``DEFAULTS``/``PRESETS``); ``text`` may place
    the defaults with ``{defaults}``, else they follow it in brackets."""
    defaults = _preset_help(name)
    text = text.format(defaults=defaults) if "{defaults}" in text else f"{text} ({defaults})"
    group.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests compare",
        description=(
            "Compare TF Serving (or its named stand-in) and TorchServe, direct and through the gateway, "
            "REST and gRPC, with Locust (headless), and write "
            "reports/<timestamp>/{results.json,report.md,report.html}. "
            "Method: docs/benchmarking.md."
        ),
    )
    what = parser.add_argument_group("what to measure")
    what.add_argument(
        "--targets",
        default=None,
        help="all, direct, gateway, rest, grpc, or names: "
        + ", ".join(entry.name for entry in BACKENDS if entry.direct)
        + f" (Triton: v2-*), gateway/<backend> ({', '.join(BACKEND_NAMES)}) (default all; demo preset: "
        "the REST targets, direct and through the gateway)",
    )
    what.add_argument("--skip", default="", help="comma-separated target names to leave out")
    what.add_argument(
        "--no-calibration",
        dest="calibrate",
        action="store_false",
        help="skip the null-endpoint calibration of the load generator (saturation then judged by CPU only)",
    )
    what.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="full",
        help="load settings: full (docs/benchmarking.md), demo (make demo, about 3.5 minutes here), "
        "smoke (tests)",
    )

    where = parser.add_argument_group("where the targets are (defaults: `make serve` and `make gateway`)")
    where.add_argument(
        "--start",
        action="store_true",
        help="start TorchServe, TF Serving (or the stand-in) and the gateway on free loopback ports for this "
        "run and stop them afterwards (also on Ctrl-C or failure)",
    )
    for name, what_text in ADDRESS_OPTIONS:
        where.add_argument(f"--{name}", default="", help=f"{what_text} (default: the local `make` servers)")
    where.add_argument(
        "--store",
        type=Path,
        default=None,
        help="model store root for the digits and --start "
        "(default: $MODEL_STORE_DIR or model_store/artifacts)",
    )
    _knob(where, "digits", int, "test digits in the payload pool")
    where.add_argument("--seed", type=int, default=0, help="digit choice and bootstrap seed")

    load = parser.add_argument_group("load (closed loop unless --rates)")
    _knob(load, "users", str, "concurrency steps")
    load.add_argument(
        "--rates",
        default=None,
        help="fixed-rate steps in requests/s, e.g. 100,200 (paced users; closed-loop past saturation, "
        "i.e. coordinated omission)",
    )
    load.add_argument(
        "--rate-users", type=int, default=None, help="users sharing a fixed rate (0: largest --users)"
    )
    _knob(load, "repetitions", int, "rounds: each visits every target once, in a random order")
    load.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the whole plan N times on the same servers and print, per headline figure, each pass's "
        "estimate and interval and whether each interval contains the other's estimate (the rerun check; "
        "default 1)",
    )
    _knob(load, "min_requests", int, "measured requests per step")
    _knob(load, "step_seconds", float, "minimum step")
    _knob(load, "max_step_seconds", float, "step cap")
    _knob(load, "settle_seconds", float, "discarded after each ramp")
    _knob(load, "warmup_requests", int, "discarded warm-up")
    _knob(load, "warmup_seconds", float, "warm-up cap")
    _knob(
        load,
        "prewarm_seconds",
        float,
        "before the plan, send each server real requests on each protocol for this long from 4 threads "
        "(TorchServe's JVM speeds up for thousands of requests; same for TF Serving)",
    )
    _knob(
        load,
        "prewarm_requests",
        int,
        "stop pre-warming a server once it has had this many requests (0: after --prewarm-seconds only)",
    )
    _knob(load, "warmup_users", int, "users during the warm-up")
    load.add_argument("--request-timeout", type=float, default=10.0, help="seconds per request (default 10)")
    load.add_argument(
        "--no-independent-client",
        dest="independent_client",
        action="store_false",
        help="leave out the independent client: by default every round ends with a window in which an "
        "independent client (http.client, one connection per target, no Locust) measures every REST "
        "target (servers directly and through the gateway), interleaved in blocks of ten requests; the "
        "headline's 1-user p50 figures are its, and Locust's 1-user p50 beside them is the harness check",
    )
    _knob(load, "independent_seconds", float, "the independent client's 1-user part in each round")
    _knob(
        load,
        "independent_connections",
        int,
        "then its concurrent part: throughput at this many connections per target, the targets "
        "interleaved in 0.25 s time slots (the headline's throughput figures); 0 leaves it out",
    )
    _knob(load, "independent_concurrent_seconds", float, "the concurrent part's length in each round")
    load.add_argument(
        "--interleave-locust",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Locust takes the round's REST targets in turn within one window per step (blocks of ten "
        "requests, as the independent client does) instead of visiting them one by one, each with its "
        f"own window and drain; --step-seconds is then per target ({_preset_help('interleave_locust')})",
    )

    generator = parser.add_argument_group("load generator")
    generator.add_argument(
        "--workers", type=int, default=0, help="local Locust worker processes (0: standalone)"
    )
    generator.add_argument(
        "--expect-workers",
        type=int,
        default=0,
        help="external workers to wait for: `locust -f loadtests/comparison_locustfile.py --worker "
        "--master-host HOST --master-port PORT` on other machines",
    )
    generator.add_argument(
        "--master-bind-host", default="127.0.0.1", help="master's bind address (0.0.0.0 for remote)"
    )
    generator.add_argument("--master-port", type=int, default=0, help="master's port (0: a free one)")
    generator.add_argument(
        "--pin",
        default="auto",
        help="auto (a quarter of the cores, at least one, for Locust; the rest for the servers), off, or "
        "SERVER_CPUS:LOCUST_CPUS such as 1:0",
    )

    servers = parser.add_argument_group("servers started with --start")
    servers.add_argument("--threads", type=int, default=1, help="intra-op threads of every framework")
    servers.add_argument("--gateway-workers", type=int, default=1, help="gateway worker processes")
    servers.add_argument("--gateway-threads", type=int, default=4, help="threads per gateway worker")
    servers.add_argument("--ts-workers", type=int, default=1, help="TorchServe workers per model version")
    servers.add_argument("--start-timeout", type=float, default=180.0, help="seconds to wait for readiness")

    capacity = parser.add_argument_group(
        "capacity under a latency SLO (open loop, Poisson arrivals; docs/benchmarking.md)"
    )
    _knob(capacity, "slo_ms", float, "the p99 latency in ms a step must stay within")
    _knob(capacity, "capacity_steps", int, "most steps of each target's search; 0: no search")
    _knob(
        capacity,
        "capacity_seconds",
        float,
        "minimum measured seconds per search step (then until --capacity-min-requests answers, at most "
        "twice this long)",
    )
    _knob(capacity, "capacity_min_requests", int, "answers a search step waits for after its minimum time")
    _knob(
        capacity,
        "capacity_precision",
        float,
        "stop when the lowest failing rate is within this share of the highest passing one",
    )
    capacity.add_argument(
        "--capacity-start",
        type=float,
        default=0.0,
        help="first offered rate in req/s (0: half the target's last closed-loop throughput)",
    )

    report = parser.add_argument_group("report")
    report.add_argument("--out", type=Path, default=Path("reports"), help="reports/<timestamp>/ goes here")
    _knob(report, "bootstrap", int, "bootstrap resamples")
    report.add_argument(
        "--cdf-step",
        default="",
        help="step whose latency CDF is drawn, e.g. '4 users' "
        "(default: the busiest step no target saturated)",
    )
    report.add_argument(
        "--saturation-cpu",
        type=float,
        default=80.0,
        help="Locust CPU %% of a core from which a step is flagged",
    )
    report.add_argument(
        "--ceiling-fraction",
        type=float,
        default=0.8,
        help="share of the calibrated ceiling from which a step is flagged",
    )
    for action in parser._actions:  # every knob that takes a value states its default
        if action.nargs == 0 or not action.help or "default" in action.help or action.default is None:
            continue
        action.help += " (default: none)" if action.default == "" else " (default %(default)s)"
    return parser


def config_from_args(args: argparse.Namespace) -> CompareConfig:
    values = {f.name: getattr(args, f.name) for f in fields(CompareConfig) if hasattr(args, f.name)}
    preset = PRESETS[args.preset]
    for name, default in DEFAULTS.items():
        if values.get(name) is None:
            values[name] = preset.get(name, default)
    if values.get("repeat", 1) < 1:
        raise ValueError(f"--repeat {values['repeat']}: run the plan at least once")
    return CompareConfig(**values)
