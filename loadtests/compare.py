"""``python -m loadtests compare``: servers (optional) -> digits -> preflight -> Locust -> analysis -> report.

Everything this command starts (servers with ``--start``, the null endpoints, Locust) is stopped in a
``finally`` block, also on Ctrl-C (SIGINT) and SIGTERM; the report lists any process that survived.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from loadtests.analysis import AnalysisSettings, analyse, target_components
from loadtests.backends import spec
from loadtests.capacity_results import capacity_results
from loadtests.config import CompareConfig
from loadtests.environment import describe_machine, load_average
from loadtests.headline import reproducibility_json
from loadtests.independent import TOOL, IndependentClient, IndependentTarget, independent_records
from loadtests.interrupts import terminate_as_interrupt, uninterruptible
from loadtests.locust_run import LocustLaunch, run_locust
from loadtests.payloads import Payloads, payloads_from_store, write_payloads
from loadtests.plan import Plan, build_plan
from loadtests.preflight import Probe, bearer_header, probe
from loadtests.prewarm import prewarm
from loadtests.progress import RunMonitor, format_duration
from loadtests.recorder import load_samples
from loadtests.records import Results, StepRecord, WindowRecord
from loadtests.report import write_report
from loadtests.report.headline_text import reproducibility_text
from loadtests.report.summary import summary_text
from loadtests.saved import read_saved, write_saved
from loadtests.secrets import scrub_report
from loadtests.targets import CALIBRATION, Target, address, locust_args, select_targets
from model_store import MODEL_NAME, ModelStore, default_root
from serving.cpu import Pinning, plan_pinning
from serving.endpoints import REST_PATHS, Endpoints, default_endpoints
from serving.ports import free_port
from serving.settings import REPO_ROOT
from serving.stack import LocalStack, StackOptions, start_stack

__all__ = ["compare", "describe_tfserving", "needed_components"]

Say = Callable[[str], None]


def _say(message: str) -> None:
    print(message, flush=True)


def _report_dir(root: Path) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = root / stamp
    suffix = 1
    while path.exists():
        suffix += 1
        path = root / f"{stamp}-{suffix}"
    path.mkdir(parents=True)
    return path


@dataclass
class Session:
    """What one comparison run started and learned; closed by :func:`compare`'s finally block."""

    config: CompareConfig
    out: Path
    pinning: Pinning
    stack: LocalStack | None = None
    leftovers: list[str] | None = None
    results_file: Path | None = None

    def close(self, say: Say) -> None:
        if self.stack is None:
            return
        say("Stopping what this run started...")
        self.leftovers = self.stack.stop()
        if self.leftovers:
            say(f"error: processes remain: {', '.join(self.leftovers)}")
        else:
            say("  stopped: " + ", ".join(self.stack.records) + " (no process remains)")
        if self.results_file is not None and self.results_file.exists():
            results = read_saved(self.results_file, ()).flat()
            results["cleanup"] = {"stopped": list(self.stack.records), "leftovers": self.leftovers}
            write_saved(self.results_file, "comparison", results)


def describe_tfserving(
    stack: LocalStack | None, probes: dict[str, Probe], endpoints: Endpoints
) -> dict[str, Any]:
    """Which TF Serving answered: the official binary, the project's stand-in, or unverified."""
    if stack is not None and "tfserving" in stack.records:
        info = stack.records["tfserving"].info
        return {
            "implementation": info["implementation"],
            "official": bool(info["official"]),
            "how": "started",
        }
    served_by = next((p.served_by for p in probes.values() if p.served_by), "")
    if served_by:
        return {"implementation": served_by, "official": False, "how": "X-Served-By header"}
    return {
        "implementation": f"TF Serving at {endpoints.tfserving_rest_url} (not started by this run)",
        "official": None,
        "how": "unverified: it sent no X-Served-By header (the project's stand-in always sends one)",
    }


def needed_components(targets: list[Target]) -> tuple[str, ...]:
    """The servers ``--start`` must run for these targets (the gateway only when a target goes through it)."""
    wanted = {spec(target.backend).server for target in targets if target.backend}
    if any(target.via_gateway for target in targets):
        wanted.add("gateway")
    return tuple(name for name in ("torchserve", "tfserving", "triton", "gateway") if name in wanted)


def _start_servers(session: Session, targets: list[Target], store_root: Path, say: Say) -> Endpoints:
    config = session.config
    components = needed_components(targets) if config.start else ()
    if config.calibrate:
        components += ("nullserver",)
    base = default_endpoints().with_overrides(
        tfserving_rest_url=config.tfserving_rest_url,
        tfserving_grpc_target=config.tfserving_grpc_target,
        torchserve_url=config.torchserve_url,
        torchserve_grpc_target=config.torchserve_grpc_target,
        torchserve_key_file=config.torchserve_key_file,
        triton_url=config.triton_url,
        triton_grpc_target=config.triton_grpc_target,
        gateway_url=config.gateway_url,
    )
    if not components:
        return base
    say(
        "Starting "
        + ", ".join(components)
        + f" on free loopback ports (servers on CPUs {list(session.pinning.servers)})"
    )
    options = StackOptions(
        store_root=store_root,
        run_dir=session.out / "servers",
        threads=config.threads,
        gateway_workers=config.gateway_workers,
        gateway_threads=config.gateway_threads,
        ts_workers=config.ts_workers,
        start_timeout_s=config.start_timeout,
        components=components,
        pinning=session.pinning,
    )
    started = time.monotonic()
    session.stack = start_stack(options, say)
    say(f"  ready in {time.monotonic() - started:.0f} s")
    if config.start:
        return session.stack.endpoints
    return base.with_overrides(
        null_url=session.stack.endpoints.null_url, null_grpc_target=session.stack.endpoints.null_grpc_target
    )


def _payloads(config: CompareConfig, store: ModelStore, out: Path) -> tuple[Payloads, Path]:
    from exporters.mnist import load_mnist

    data = load_mnist()
    payloads = payloads_from_store(
        store, data.test_images, data.test_labels, count=config.digits, seed=config.seed
    )
    path = out / "payloads.json"
    write_payloads(payloads, path)
    return payloads, path


def _preflight(
    targets: list[Target], endpoints: Endpoints, payloads: Payloads, config: CompareConfig, say: Say
) -> dict[str, Probe]:
    import os

    token = os.environ.get("LOADTEST_TORCHSERVE_TOKEN", "")
    probes = {}
    for target in targets:
        result = probe(target, endpoints, payloads.digits[0], token=token, timeout=config.request_timeout)
        probes[target.name] = result
        state = "ok" if result.ok else f"SKIPPED: {result.reason}"
        say(f"  {target.name:<28} {address(endpoints, target):<28} {state}")
    return probes


def _read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _target_labels(tfserving: dict[str, Any]) -> dict[str, str]:
    from loadtests.report.labels import target_label
    from loadtests.targets import ALL_TARGETS

    return {t.name: target_label(t.name, tfserving.get("official")) for t in ALL_TARGETS}


def _run(session: Session, say: Say) -> int:
    config = session.config
    store_root = config.store or default_root()
    store = ModelStore(store_root, MODEL_NAME)
    wanted = select_targets(config.targets, config.skip)
    machine = describe_machine(REPO_ROOT)
    endpoints = _start_servers(session, wanted, store_root, say)
    payloads, payload_file = _payloads(config, store, session.out)
    say(
        f"Payload: {len(payloads.digits)} MNIST test digits both models of version {payloads.version} "
        "classify correctly"
    )
    protocols = {t.protocol for t in wanted}  # calibrate only what the load generator will speak
    calibration = [t for t in CALIBRATION if t.protocol in protocols] if config.calibrate else []
    say("Preflight (one real request per target):")
    probes = _preflight(calibration + wanted, endpoints, payloads, config, say)
    tfserving = describe_tfserving(session.stack, probes, endpoints)
    available = [t for t in wanted if probes[t.name].ok]
    calibrated = [t for t in calibration if probes[t.name].ok]
    if not available:
        say("error: no target answered correctly; nothing to measure (start servers, or use --start)")
        return 1
    warmed = _prewarm(config, endpoints, payloads, available, say)
    passes: list[Pass] = []
    for number in range(1, config.repeat + 1):
        if config.repeat > 1:
            say(f"\n== Pass {number} of {config.repeat} (same servers; a rerun check) ==")
        measured = _measure(
            session,
            endpoints,
            payloads,
            payload_file,
            available,
            calibrated,
            _target_labels(tfserving),
            number,
            say,
        )
        if measured is None:
            return 1
        passes.append(measured)
    first = passes[0]
    plan, results, code = first.plan, first.results, first.locust_exit_code
    if len(passes) > 1:
        results["reproducibility"] = reproducibility_json([p.results["headline"] for p in passes])
    results["prewarm"] = warmed
    machine["load_average_at_end"] = load_average()
    results.update(
        {
            "format": "loadtests-results/1",
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "argv": sys.argv[1:],
            "config": config.to_dict(),
            "environment": {**machine, "pinning": session.pinning.to_dict()},
            "tfserving": tfserving,
            "servers": session.stack.describe() if session.stack else {"started": {}, "failed": {}},
            "endpoints": endpoints.to_dict(),
            "payloads": payloads.describe(),
            "targets": {
                t.name: {
                    "available": probes[t.name].ok,
                    "skipped_reason": probes[t.name].reason or None,
                    "protocol": t.protocol,
                    "path": t.path,
                    "framework": t.framework,
                    "backend": t.backend,
                }
                for t in calibration + wanted
            },
            "plan": plan.to_json(),
            "locust_exit_code": code,
            "generator": {
                "tool": "Locust (FastHttpUser for HTTP; gRPC users on grpcio + gevent)",
                "mode": _generator_mode(config),
                "timing": "raw per-request time.perf_counter durations (float ms), not Locust's histogram",
            },
        }
    )
    paths = write_report(results, session.out)
    session.results_file = paths["json"]
    say("")
    say(summary_text(results))
    if len(passes) > 1:
        say("")
        say(reproducibility_text(results["reproducibility"]))
    say("")
    say(f"Report: {paths['html']}")
    say(f"        {paths['markdown']}  (raw figures: {paths['json']})")
    return 0 if all(p.locust_exit_code == 0 for p in passes) else 1


@dataclass(frozen=True)
class Pass:
    """One run of the whole plan in Locust, analysed."""

    number: int
    plan: Plan
    results: Results
    locust_exit_code: int


def _measure(
    session: Session,
    endpoints: Endpoints,
    payloads: Payloads,
    payload_file: Path,
    available: list[Target],
    calibrated: list[Target],
    labels: dict[str, str],
    number: int,
    say: Say,
) -> Pass | None:
    """The plan (each pass visits in orders of its own), run in Locust and analysed."""
    config = session.config
    alone = _independent_targets(config, endpoints, available)
    settings = replace(config.plan_settings(), order_seed=config.seed + number - 1, independent=tuple(alone))
    plan = build_plan(available, calibrated, settings)
    suffix = "" if number == 1 else f"-{number}"
    plan_file = session.out / f"plan{suffix}.json"
    plan.write(plan_file)
    raw = session.out / f"raw{suffix}"
    server_groups = {name: r.pid for name, r in (session.stack.records.items() if session.stack else [])}
    monitor = RunMonitor(plan, server_groups, say, labels)
    launch = LocustLaunch(
        plan_file=plan_file,
        events_file=raw / "events.jsonl",
        samples_file=raw / "samples.json",
        payload_file=payload_file,
        log_file=raw / "locust.log",
        address_args=(*locust_args(endpoints), *_interleaved_args(plan)),
        deadline_s=_deadline(plan),
        local_workers=config.workers,
        expect_workers=config.expect_workers,
        master_bind_host=config.master_bind_host,
        master_port=config.master_port or (free_port() if config.workers or config.expect_workers else 0),
        generator_cpus=session.pinning.generator if session.pinning.active else None,
        request_timeout_s=config.request_timeout,
    )
    raw.mkdir(parents=True, exist_ok=True)
    if config.expect_workers:
        say(
            f"Waiting for {config.expect_workers} external worker(s) (up to 120 s); on each one run:\n"
            f"  locust -f loadtests/comparison_locustfile.py --worker --master-host <this host> "
            f"--master-port {launch.master_port}\n"
            f"  (the master listens on {config.master_bind_host}:{launch.master_port}; the workers get the "
            "digits and the target addresses from it)"
        )
    rounds = settings.repetitions
    say(
        f"Running the plan in Locust: {rounds} round(s), each target once per round in a random order "
        f"(log: {launch.log_file})"
    )
    cpus = session.pinning.generator if session.pinning.active else None
    client = IndependentClient(plan, alone, payloads.digits, cpus, say, labels)

    def on_event(event: dict[str, Any]) -> None:
        client.on_event(event)
        monitor.on_event(event)

    code = run_locust(launch, on_event, monitor.on_start)
    client.join()
    if not launch.samples_file.exists():
        say(f"error: Locust exited with {code} and wrote no samples; see {launch.log_file}")
        return None
    say("Analysing (intervals from the spread between rounds)...")
    events, samples = _read_events(launch.events_file), load_samples(launch.samples_file)
    independent = independent_records(plan, client.results, client.concurrent)
    results: Results = {
        **analyse(
            plan,
            events,
            samples,
            monitor.cpu_by_phase,
            AnalysisSettings(
                bootstrap=config.bootstrap,
                seed=config.seed,
                saturation_cpu=config.saturation_cpu,
                ceiling_fraction=config.ceiling_fraction,
                cdf_step=config.cdf_step,
            ),
            independent,
        )
    }
    results["crosscheck"] = crosscheck_rows(independent, results["steps"])
    results["slo_capacity"] = capacity_results(plan, events, samples, monitor.cpu_by_phase, target_components)
    return Pass(number, plan, results, code)


def _interleaved_args(plan: Plan) -> list[str]:
    """The targets the interleaved Locust user takes in turn, with their own User classes."""
    if not plan.interleaved:
        return []
    return ["--interleaved-targets", ",".join(f"{name}={user}" for name, user in plan.interleaved)]


def _prewarm(
    config: CompareConfig, endpoints: Endpoints, payloads: Payloads, available: list[Target], say: Say
) -> dict[str, Any]:
    import os

    servers = sorted({t.backend for t in available if t.backend and spec(t.backend).direct})
    via_gateway = tuple(sorted({t.backend for t in available if t.via_gateway and t.backend}))
    if config.prewarm_seconds <= 0 or not servers:
        return {}
    least = f"after at least {config.prewarm_requests:,} requests, " if config.prewarm_requests > 0 else ""
    say(
        "Pre-warming each server and protocol until its throughput settles (three 1 s windows within 10%, "
        "no longer climbing), "
        f"{least}at most {config.prewarm_seconds:g} s each (not measured)..."
    )
    token = os.environ.get("LOADTEST_TORCHSERVE_TOKEN", "")
    headers = bearer_header(endpoints, token)
    warmed = prewarm(
        servers,
        endpoints,
        payloads,
        headers,
        config.prewarm_seconds,
        requests=config.prewarm_requests,
        gateway_backends=via_gateway,
    )
    for name, result in warmed.items():
        say(f"  {name}: {result.describe()}")
    return {name: asdict(result) for name, result in warmed.items()}


def _independent_targets(
    config: CompareConfig, endpoints: Endpoints, available: list[Target]
) -> dict[str, IndependentTarget]:
    """Every REST target the independent client can measure: the servers' own APIs directly, and the
    gateway's TF Serving REST endpoint routed to each backend."""
    import os

    if not config.independent_client:
        return {}
    token = os.environ.get("LOADTEST_TORCHSERVE_TOKEN", "")
    targets = {}
    for target in available:
        if target.protocol != "rest" or target.path == "calibration":
            continue
        if target.via_gateway:
            assert target.backend is not None, "a gateway target names its backend"
            targets[target.name] = IndependentTarget(
                endpoints.gateway_url,
                REST_PATHS["tfserving"].format(model=MODEL_NAME),
                {"X-Gateway-Backend": target.backend},
                api="tfserving",
                backend=target.backend,
            )
            continue
        api = target.api
        targets[target.name] = IndependentTarget(
            address(endpoints, target),
            REST_PATHS[api].format(model=MODEL_NAME),
            bearer_header(endpoints, token) if api == "torchserve" else {},
            api=api,
        )
    return targets


def crosscheck_rows(independent: list[WindowRecord], steps: list[StepRecord]) -> list[dict[str, Any]]:
    """Per target, the independent client's windows beside Locust's 1-user windows of the same rounds
    (medians over rounds)."""
    rows = []
    one_user = [r for r in independent if r["users"] == 1]
    for target in dict.fromkeys(r["target"] for r in one_user):
        alone = [r for r in one_user if r["target"] == target]
        locust = [s for s in steps if s["target"] == target and s["kind"] == "closed" and s["users"] == 1]
        rows.append(
            {
                "target": target,
                "tool": f"{TOOL}, in the same rounds",
                "rounds": len(alone),
                "requests": sum(r["requests"] for r in alone),
                "failures": sum(r["error_count"] for r in alone),
                "p50_ms": _median([r["latency_ms"]["p50"] for r in alone]),
                "rps": _median([r["rps"] for r in alone]),
                "locust_p50_ms": _median([s["latency_ms"]["p50"] for s in locust]),
                "locust_rps": _median([s["rps"] for s in locust]),
            }
        )
    return rows


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values) if values else float("nan")


def _generator_mode(config: CompareConfig) -> str:
    if config.expect_workers:
        return f"master with {config.workers} local and {config.expect_workers} external workers"
    if config.workers:
        return f"master with {config.workers} local workers"
    return "standalone (one process)"


def _deadline(plan: Plan) -> float:
    """A generous bound: every phase at its maximum, plus startup."""
    return 120.0 + sum(p.settle_s + p.max_s + 2.0 for p in plan.phases)


def compare(config: CompareConfig, say: Say = _say) -> int:
    out = _report_dir(config.out)
    session = Session(config, out, plan_pinning(config.pin))
    say(f"Comparison -> {out}   (pinning: {_pinning_text(session.pinning)})")
    started = time.monotonic()
    code = 1
    try:
        with terminate_as_interrupt():
            code = _run(session, say)
    except KeyboardInterrupt:
        say("\ninterrupted: stopping everything this run started")
        code = 130
    finally:
        with uninterruptible():
            session.close(say)
            scrub_report(out)  # TorchServe's keys stay out of a report made to be shared
    if session.leftovers:
        code = code or 1
    say(f"Done in {format_duration(time.monotonic() - started)}.")
    return code


def _pinning_text(pinning: Pinning) -> str:
    if not pinning.active:
        return pinning.note or "off"
    return f"servers on CPUs {list(pinning.servers)}, Locust on CPUs {list(pinning.generator)}"
