"""``python -m gatewaybench soak`` (``make soak``): steady load through the gateway while things go wrong.

One run starts TorchServe (real, token auth on), TF Serving (the official binary or the project's
named stand-in) and the gateway on free loopback ports, over a private copy of the model store,
and routes ``mnist`` across all four served backends with failover. Client threads send valid
requests for the whole run while a schedule, scaled to ``--seconds``:

- kills TorchServe (SIGKILL, whole process group) and starts it again;
- freezes the TF server (SIGSTOP) and thaws it (SIGCONT);
- renews TorchServe's inference key (the gateway holds the old one);
- edits the routing file (new weights), then writes a broken one, then a good one again;
- publishes a new model version into the store;

and, all along, sends a corpus of bad requests and keeps slow clients (headers and bodies sent a
byte a second) connected. The report: requests sent and failed (by cause) per phase, p50/p99 per
phase, the gateway's memory (RSS) and open file descriptors after warm-up and at the end, and the
targets (docs/reliability.md): no failed valid request, RSS growth <= 10 %, descriptors flat.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from gateway.backends.torchserve_keys import TokenSource
from gateway.routing import RetryBudgetConfig
from loadtests.interrupts import terminate_as_interrupt, uninterruptible
from loadtests.report.templating import template_environment
from loadtests.saved import write_saved
from loadtests.secrets import scrub_report
from loadtests.stats import percentile
from model_store import MODEL_NAME, ModelStore, default_root
from model_store.manifest import VersionRecord
from serving.process import process_group_alive
from serving.stack import LocalStack, StackOptions, start_stack
from serving.torchserve import launcher as torchserve

TEMPLATES = Path(__file__).parent / "templates"

__all__ = ["main", "phase_table", "routing", "targets"]

Say = Callable[[str], None]
PREDICT = f"/v1/models/{MODEL_NAME}:predict"
VALID = json.dumps({"instances": [[0.0] * 784]}).encode()
WEIGHTS = {"torchserve-rest": 2, "tfserving-rest": 2, "torchserve-grpc": 1, "tfserving-grpc": 1}
EDITED_WEIGHTS = {"torchserve-rest": 1, "tfserving-rest": 3, "torchserve-grpc": 1, "tfserving-grpc": 1}
BAD_REQUESTS: list[tuple[str, bytes, str]] = [
    ("application/json", b"{", "malformed JSON"),
    ("application/json", b'{"instances": [[NaN]]}', "NaN"),
    ("application/json", b"[" * 5000 + b"]" * 5000, "deep nesting"),
    ("application/json", b'{"instances": []}', "no instances"),
    ("application/json", json.dumps({"instances": [[0.0] * 783]}).encode(), "783 values"),
    ("application/json", json.dumps({"instances": [[2.0] * 784]}).encode(), "out of range"),
    ("application/json", json.dumps({"instances": [[0.0] * 784] * 257}).encode(), "257 instances"),
    ("text/plain", VALID, "wrong content type"),
    ("application/json", b"\xff\xfe{}", "not UTF-8"),
    ("application/json", b'{"instances": [["a"] * 784]}', "strings"),
    ("image/png", b"not a png", "not an image"),
]


def routing(weights: dict[str, int], clients: int) -> dict[str, Any]:
    """``mnist`` across the four served backends with failover, and ``clients`` retries always allowed.

    The retry budget's floor is the client count because the soak promises that no valid request
    fails: when every client's request is on the backend that is killed or frozen at that moment, all
    of them need a retry at once, and the default floor (3) would answer the fourth 503 or 504 -- the
    budget doing its job, not a fault the soak looks for."""
    budget = {"min_concurrent": max(clients, RetryBudgetConfig().min_concurrent)}  # ratio: the default
    return {"models": {MODEL_NAME: {"backends": weights, "failover": True, "retry_budget": budget}}}


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Outcome:
    started: float
    seconds: float
    status: int
    cause: str


@dataclass
class Phase:
    name: str
    start: float
    end: float = float("inf")


@dataclass
class Timeline:
    """Named phases in time order; a request belongs to the phase in which it started."""

    phases: list[Phase] = field(default_factory=list)

    def begin(self, name: str, now: float) -> None:
        if self.phases:
            self.phases[-1].end = now
        self.phases.append(Phase(name, now))

    def phase_of(self, moment: float) -> str:
        for phase in self.phases:
            if phase.start <= moment < phase.end:
                return phase.name
        return "before"


def phase_table(outcomes: list[Outcome], timeline: Timeline) -> list[dict[str, Any]]:
    rows: dict[str, list[Outcome]] = {phase.name: [] for phase in timeline.phases}
    for outcome in outcomes:
        rows.setdefault(timeline.phase_of(outcome.started), []).append(outcome)
    table = []
    for name, items in rows.items():
        latencies = [o.seconds * 1000 for o in items]
        failed = Counter(o.cause for o in items if o.status != 200)
        table.append(
            {
                "phase": name,
                "requests": len(items),
                "failed": sum(failed.values()),
                "causes": dict(failed),
                "p50_ms": round(percentile(latencies, 50), 2),
                "p99_ms": round(percentile(latencies, 99), 2),
            }
        )
    return table


@dataclass(frozen=True)
class Footprint:
    rss_mib: float
    fds: int


def footprint(pid: int) -> Footprint:
    """Memory and descriptors of a process group's processes (the gateway and its workers)."""
    processes = [p for p in psutil.process_iter(["pid"]) if _group_of(p.pid) == pid]
    rss = fds = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            rss += process.memory_info().rss
            fds += process.num_fds()
    return Footprint(rss / 2**20, fds)


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def targets(table: list[dict[str, Any]], warm: Footprint, end: Footprint) -> list[tuple[str, bool, str]]:
    """(target, met, measured) for the report."""
    failed = sum(row["failed"] for row in table)
    sent = sum(row["requests"] for row in table)
    growth = (end.rss_mib - warm.rss_mib) / warm.rss_mib if warm.rss_mib else 0.0
    return [
        ("no failed valid request", failed == 0, f"{failed} of {sent} failed"),
        ("gateway RSS growth after warm-up <= 10 %", growth <= 0.10, f"{growth * 100:+.1f} %"),
        (
            "open file descriptors flat (within 10 % or 8)",
            end.fds - warm.fds <= max(8, warm.fds // 10),
            f"{warm.fds} -> {end.fds}",
        ),
    ]


def open_circuits(gateway_url: str, prefix: str) -> list[str]:
    """Backends named ``prefix*`` whose circuit is not closed in some gateway worker, from /metrics."""
    parts = urlsplit(gateway_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=5)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    except (OSError, http.client.HTTPException):
        return [f"{prefix}* (no metrics)"]
    finally:
        connection.close()
    found = []
    for line in text.splitlines():
        if line.startswith('gateway_circuit_state{backend="' + prefix):
            labels, value = line.rsplit(" ", 1)
            if float(value) != 0:
                found.append(labels)
    return found


# -- traffic --------------------------------------------------------------------------------


class Client(threading.Thread):
    """One closed-loop client with a keep-alive connection; every request has a 10 s deadline."""

    def __init__(self, base: str, stop: threading.Event, outcomes: list[Outcome], lock: threading.Lock):
        super().__init__(daemon=True)
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.stop_event, self.outcomes, self.lock = stop, outcomes, lock

    def run(self) -> None:
        connection: http.client.HTTPConnection | None = None
        while not self.stop_event.is_set():
            connection = connection or http.client.HTTPConnection(self.host, self.port, timeout=10)
            started = time.monotonic()
            try:
                connection.request("POST", PREDICT, VALID, {"Content-Type": "application/json"})
                answer = connection.getresponse()
                body = answer.read()
                status = answer.status
                cause = "ok" if status == 200 else _error_code(body, status)
                if answer.getheader("connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                status, cause = 0, f"connection: {type(exc).__name__}"
                if connection is not None:
                    connection.close()
                connection = None
            with self.lock:
                self.outcomes.append(Outcome(started, time.monotonic() - started, status, cause))


def _error_code(body: bytes, status: int) -> str:
    try:
        return f"{status} {json.loads(body)['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return f"{status} (no envelope)"


class Hostile(threading.Thread):
    """Bad requests in a loop, each checked for a 4xx envelope; counts what was not as it should be."""

    def __init__(self, base: str, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.stop_event = stop
        self.sent = 0
        self.wrong: Counter[str] = Counter()

    def run(self) -> None:
        while not self.stop_event.wait(0.05):
            content_type, body, name = BAD_REQUESTS[self.sent % len(BAD_REQUESTS)]
            path = "/predict" if content_type == "image/png" else PREDICT
            self.sent += 1
            try:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
                connection.request("POST", path, body, {"Content-Type": content_type})
                answer = connection.getresponse()
                reply = answer.read()
                connection.close()
                if not 400 <= answer.status < 500 or b'"request_id"' not in reply:
                    self.wrong[f"{name}: {answer.status}"] += 1
            except (OSError, http.client.HTTPException) as exc:
                self.wrong[f"{name}: {type(exc).__name__}"] += 1


class SlowClients(threading.Thread):
    """Connections that send their headers or bodies a byte a second (reopened when the server cuts
    them off, as it should after its header read timeout)."""

    def __init__(self, base: str, stop: threading.Event, headers: int, bodies: int) -> None:
        super().__init__(daemon=True)
        parts = urlsplit(base)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.stop_event = stop
        self.counts = {"headers": headers, "bodies": bodies}
        self.opened = 0

    def _open(self, kind: str) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=5)
        self.opened += 1
        if kind == "headers":
            sock.sendall(f"POST {PREDICT} HTTP/1.1\r\nX-Slow: ".encode())
        else:
            head = f"POST {PREDICT} HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
            sock.sendall(head.encode() + b"Content-Length: 1000000\r\n\r\n{")
        return sock

    def run(self) -> None:
        sockets = [(kind, None) for kind, count in self.counts.items() for _ in range(count)]
        live: list[tuple[str, socket.socket | None]] = list(sockets)
        try:
            while not self.stop_event.wait(1.0):
                for index, (kind, sock) in enumerate(live):
                    try:
                        if sock is None:
                            sock = self._open(kind)
                        sock.send(b"a" if kind == "headers" else b" ")
                        live[index] = (kind, sock)
                    except OSError:
                        if sock is not None:
                            sock.close()
                        live[index] = (kind, None)
        finally:
            for _, sock in live:
                if sock is not None:
                    sock.close()


# -- faults ---------------------------------------------------------------------------------


@dataclass
class Soak:
    stack: LocalStack
    store: ModelStore
    routing_file: Path
    timeline: Timeline
    clients: int
    say: Say
    notes: list[str] = field(default_factory=list)
    restarting: threading.Thread | None = None

    def event(self, name: str) -> None:
        self.timeline.begin(name, time.monotonic())
        self.say(f"  [{self._elapsed():6.1f} s] {name}")

    def _elapsed(self) -> float:
        return time.monotonic() - self.timeline.phases[0].start if self.timeline.phases else 0.0

    def kill_torchserve(self) -> None:
        record = self.stack.records["torchserve"]
        os.killpg(record.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process_group_alive(record.pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    def start_torchserve(self) -> None:
        settings = self.stack.serving
        record = torchserve.start(settings)
        self.stack.records["torchserve"] = record
        torchserve.wait_until_ready(settings, record, 180)

    def wait_for_circuits(self, prefix: str, timeout_s: float) -> None:
        """Until ``gateway_circuit_state`` says every ``prefix*`` backend is closed in every worker."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not open_circuits(self.stack.endpoints.gateway_url, prefix):
                return
            time.sleep(0.5)
        self.notes.append(f"{prefix} circuits still not closed after {timeout_s:g} s")

    def signal_tfserving(self, signum: signal.Signals) -> None:
        os.killpg(self.stack.records["tfserving"].pid, signum)

    def rotate_key(self) -> None:
        endpoints = self.stack.endpoints
        TokenSource(
            Path(endpoints.torchserve_key_file), endpoints.torchserve_management_url
        ).renew_inference_key()

    def write_routing(self, document: dict[str, Any] | str) -> None:
        text = document if isinstance(document, str) else json.dumps(document, indent=2)
        staging = self.routing_file.with_suffix(".tmp")
        staging.write_text(text)
        os.replace(staging, self.routing_file)

    def publish_version(self) -> int:
        """A new version: the latest one's artifacts under the next number (a re-export, in effect)."""
        latest = self.store.latest_version()
        assert latest is not None, "the store copy has no version"
        source = self.store.version_dir(latest)
        record = self.store.record(latest)
        with self.store.draft() as draft:
            for item in source.iterdir():
                if item.name == "version.json":
                    continue
                target = draft.path / item.name
                (shutil.copytree if item.is_dir() else shutil.copy2)(item, target)
            data = record.to_dict()
            data.update(version=draft.version, created_at=dt.datetime.now(dt.UTC).isoformat())
            self.store.publish(draft, VersionRecord.from_dict(data))
            return draft.version


def schedule(seconds: float) -> list[tuple[float, str]]:
    """(fraction of the run, action) pairs, in order."""
    return [
        (0.10, "baseline"),
        (0.15, "kill torchserve"),
        (0.22, "restart torchserve"),
        (0.36, "torchserve back"),
        (0.40, "stop tfserving"),
        (0.47, "continue tfserving"),
        (0.55, "rotate torchserve key"),
        (0.62, "edit routing"),
        (0.68, "break routing"),
        (0.74, "fix routing"),
        (0.82, "publish version"),
        (0.95, "cool-down"),
    ]


def _run_action(soak: Soak, action: str) -> None:
    if action == "kill torchserve":
        soak.kill_torchserve()
    elif action == "restart torchserve":
        soak.restarting = threading.Thread(target=_guarded(soak, soak.start_torchserve), daemon=True)
        soak.restarting.start()
    elif action == "torchserve back":
        pass  # the schedule waited for the restart (one server down at a time: failover needs the other)
    elif action == "stop tfserving":
        soak.signal_tfserving(signal.SIGSTOP)
    elif action == "continue tfserving":
        soak.signal_tfserving(signal.SIGCONT)
    elif action == "rotate torchserve key":
        _guarded(soak, soak.rotate_key)()
    elif action == "edit routing":
        soak.write_routing(routing(EDITED_WEIGHTS, soak.clients))
    elif action == "break routing":
        soak.write_routing("models: {mnist: {backends: {no-such-backend: [}\n")
    elif action == "fix routing":
        soak.write_routing(routing(WEIGHTS, soak.clients))
    elif action == "publish version":
        version = soak.publish_version()
        soak.notes.append(f"published version {version}")


def _guarded(soak: Soak, action: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            action()
        except Exception as exc:  # a fault step that fails is reported, not fatal
            soak.notes.append(f"{getattr(action, '__name__', 'step')} failed: {exc}")
            soak.say(f"  error: {getattr(action, '__name__', 'step')} failed: {exc}")

    return run


# -- the command ----------------------------------------------------------------------------


@contextlib.contextmanager
def _traffic(base: str, clients: int, slow: tuple[int, int]) -> Iterator[tuple[list[Outcome], Hostile]]:
    stop = threading.Event()
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    threads: list[threading.Thread] = [Client(base, stop, outcomes, lock) for _ in range(clients)]
    hostile = Hostile(base, stop)
    threads += [hostile, SlowClients(base, stop, *slow)]
    for thread in threads:
        thread.start()
    try:
        yield outcomes, hostile
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)


@dataclass(frozen=True)
class SoakConfig:
    """The soak's command line, typed (``python -m gatewaybench soak --help``)."""

    seconds: float = 600.0
    clients: int = 4
    slow: int = 20
    """Slow header senders, and as many slow body senders."""
    gateway_workers: int = 2
    store: Path | None = None
    out: Path = Path("reports")


def soak(config: SoakConfig, say: Say) -> int:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = config.out / f"soak-{stamp}"
    out.mkdir(parents=True)
    source = ModelStore(config.store or default_root(), MODEL_NAME)
    if source.latest_version() is None:
        say(f"error: no model in {source.model_dir}; run `make demo` or `make export` first")
        return 1
    store_root = out / "store"
    shutil.copytree(source.root, store_root)  # published versions land in this copy, not in yours
    say(f"Soak for {config.seconds:g} s -> {out}")
    say("Starting TorchServe, TF Serving and the gateway on free loopback ports...")
    options = StackOptions(
        store_root=store_root,
        run_dir=out / "servers",
        gateway_workers=config.gateway_workers,
        gateway_threads=256,
        components=("torchserve", "tfserving", "gateway"),
    )
    stack: LocalStack | None = None
    try:
        with terminate_as_interrupt():
            stack = start_stack(options, say)
            return _soak(config, stack, ModelStore(store_root, MODEL_NAME), out, say)
    except KeyboardInterrupt:
        say("\ninterrupted: stopping everything this run started")
        return 130
    finally:
        with uninterruptible():
            _clean_up(stack, out, store_root, say)


def _clean_up(stack: LocalStack | None, out: Path, store_root: Path, say: Say) -> None:
    if stack is not None:
        say("Stopping what this run started...")
        leftovers = stack.stop()
        say(
            f"  error: processes remain: {', '.join(leftovers)}"
            if leftovers
            else "  stopped (nothing remains)"
        )
    scrub_report(out)
    shutil.rmtree(store_root, ignore_errors=True)


def _soak(config: SoakConfig, stack: LocalStack, store: ModelStore, out: Path, say: Say) -> int:
    missing = {"torchserve", "tfserving", "gateway"} - set(stack.records)
    if missing:
        say(f"error: {', '.join(sorted(missing))} did not start: {stack.failures}")
        return 1
    routing_file = stack.run_dir / "routing.yaml"
    soak_state = Soak(stack, store, routing_file, Timeline(), config.clients, say)
    soak_state.write_routing(routing(WEIGHTS, config.clients))
    time.sleep(3)  # every worker polls the routing file every 2 s
    gateway_pid = stack.records["gateway"].pid
    total = float(config.seconds)
    say(
        f"Load: {config.clients} clients, bad requests every 50 ms, "
        f"{config.slow} slow header and body senders"
    )
    soak_state.event("warm-up")
    with _traffic(stack.endpoints.gateway_url, config.clients, (config.slow, config.slow)) as (
        outcomes,
        hostile,
    ):
        started = time.monotonic()
        warm = Footprint(0, 0)
        for fraction, action in schedule(total):
            time.sleep(max(started + fraction * total - time.monotonic(), 0))
            if action == "baseline":
                warm = footprint(gateway_pid)
            if action == "torchserve back" and soak_state.restarting is not None:
                soak_state.restarting.join(180)
                # One fault at a time: the gateway must be routing to TorchServe again (every
                # worker's circuits closed) before the other framework is taken away.
                soak_state.wait_for_circuits("torchserve", 60)
                late = time.monotonic() - (started + fraction * total)
                started += max(late, 0.0)  # later steps keep their spacing (the run gets longer)
            soak_state.event(action)
            _run_action(soak_state, action)
        time.sleep(max(started + total - time.monotonic(), 0))
        soak_state.timeline.begin("end", time.monotonic())
    end = footprint(gateway_pid)
    table = [row for row in phase_table(outcomes, soak_state.timeline) if row["phase"] != "end"]
    checks = targets(table, warm, end)
    if hostile.wrong:
        checks.append(("bad requests answered 4xx with an envelope", False, dict(hostile.wrong).__repr__()))
    else:
        checks.append(("bad requests answered 4xx with an envelope", True, f"{hostile.sent} sent"))
    report = {
        "seconds": total,
        "clients": config.clients,
        "phases": table,
        "footprint": {"warm": warm.__dict__, "end": end.__dict__},
        "bad_requests": {"sent": hostile.sent, "wrong": dict(hostile.wrong)},
        "targets": [{"target": t, "met": m, "measured": v} for t, m, v in checks],
        "notes": soak_state.notes,
        "servers": stack.describe(),
    }
    write_saved(out / "soak.json", "soak", report)
    text = render(report)
    (out / "soak.md").write_text(text)
    say("")
    say(text)
    say(f"Report: {out / 'soak.md'}")
    return 0 if all(met for _, met, _ in checks) else 1


def render(report: dict[str, Any]) -> str:
    """soak.md (``templates/soak.md``) from the soak's report alone."""
    return template_environment(TEMPLATES).get_template("soak.md").render(report=report)


def main(argv: list[str] | None = None, say: Say = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m gatewaybench soak", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=600, help="length of the run (default 600)")
    parser.add_argument("--clients", type=int, default=4, help="closed-loop clients sending valid requests")
    parser.add_argument("--slow", type=int, default=20, help="slow header senders, and as many slow bodies")
    parser.add_argument("--gateway-workers", type=int, default=2, help="gateway worker processes")
    parser.add_argument(
        "--store", type=Path, default=None, help="model store root (default: the store's default)"
    )
    parser.add_argument("--out", type=Path, default=Path("reports"), help="report root (default reports/)")
    args = parser.parse_args(argv)
    if args.seconds < 30:
        parser.error("--seconds must be at least 30 (TorchServe alone needs ~15 s to restart)")
    return soak(SoakConfig(**vars(args)), say)


if __name__ == "__main__":
    sys.exit(main())
