"""Run the plan in Locust (headless; standalone, or a master with local or external workers).

Locust runs in its own process group (gevent patches everything it imports; it must not share a
process with the runner), pinned to the load generator's cores. Its stdout carries the shape's
``LOADTEST_EVENT`` lines, handed to ``on_event`` as they come (progress, CPU accounting); everything
else goes to ``locust.log``. Ctrl-C or a deadline stops it gracefully (SIGINT, which still writes the
samples) and then hard.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from loadtests.plan import EVENT_PREFIX
from serving.cpu import pinned
from serving.ports import free_port
from serving.process import stop_group

__all__ = ["LocustLaunch", "run_locust"]

LOCUSTFILE = Path(__file__).resolve().parent / "comparison_locustfile.py"
OnEvent = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class LocustLaunch:
    plan_file: Path
    events_file: Path
    samples_file: Path
    payload_file: Path
    log_file: Path
    address_args: tuple[str, ...]
    """Target address options (``Endpoints.locust_args``)."""
    deadline_s: float
    local_workers: int = 0
    """0: one standalone process; N: a master and N local worker processes."""
    expect_workers: int = 0
    """External workers to wait for (they run ``locust -f loadtests/comparison_locustfile.py --worker``)."""
    master_bind_host: str = "127.0.0.1"
    master_port: int = 0
    generator_cpus: tuple[int, ...] | None = None
    request_timeout_s: float = 10.0
    extra_env: tuple[tuple[str, str], ...] = ()

    def base_command(self) -> list[str]:
        return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]

    def master_command(self, port: int) -> list[str]:
        # Failed requests are results (counted and reported), not a crash: Locust's exit code is 0 for them.
        command = [*self.base_command(), "--headless", "--only-summary", "--loglevel", "WARNING"]
        command += ["--exit-code-on-error", "0"]
        command += ["--plan-file", str(self.plan_file), "--events-file", str(self.events_file)]
        command += ["--samples-file", str(self.samples_file), "--payload-file", str(self.payload_file)]
        command += ["--request-timeout", f"{self.request_timeout_s:g}", *self.address_args]
        workers = self.local_workers + self.expect_workers
        if workers:
            command += [
                "--master",
                "--master-bind-host",
                self.master_bind_host,
                "--master-bind-port",
                str(port),
            ]
            command += ["--expect-workers", str(workers), "--expect-workers-max-wait", "120"]
        return command

    def worker_command(self, port: int) -> list[str]:
        return [
            *self.base_command(),
            "--worker",
            "--master-host",
            "127.0.0.1" if self.master_bind_host in ("0.0.0.0", "*") else self.master_bind_host,  # nosec B104  # a comparison, nothing binds here
            "--master-port",
            str(port),
            "--loglevel",
            "WARNING",
        ]


@dataclass
class LocustProcesses:
    master: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]

    @property
    def pids(self) -> list[int]:
        return [self.master.pid, *(w.pid for w in self.workers)]


def _spawn(
    command: list[str], env: dict[str, str], stdout: Any, stderr: IO[bytes]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, start_new_session=True
    )


@contextlib.contextmanager
def _started(launch: LocustLaunch, log: IO[bytes]) -> Iterator[LocustProcesses]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **dict(launch.extra_env)}
    port = launch.master_port or free_port()
    with pinned(launch.generator_cpus):
        master = _spawn(launch.master_command(port), env, subprocess.PIPE, log)
        workers = [_spawn(launch.worker_command(port), env, log, log) for _ in range(launch.local_workers)]
    processes = LocustProcesses(master, workers)
    try:
        yield processes
    finally:
        for process in [master, *workers]:
            _stop(process)
        if master.stdout is not None:
            master.stdout.close()


def _stop(process: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    if process.poll() is None:
        stop_group(process.pid, grace_s, first=signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


def _pump(stream: IO[bytes], lines: queue.Queue[bytes | None]) -> None:
    for line in iter(stream.readline, b""):
        lines.put(line)
    lines.put(None)


def run_locust(launch: LocustLaunch, on_event: OnEvent, on_start: Callable[[list[int]], None]) -> int:
    """Run Locust until the plan ends; returns its exit code (non-zero also when the deadline hit)."""
    launch.log_file.parent.mkdir(parents=True, exist_ok=True)
    launch.events_file.unlink(missing_ok=True)
    with launch.log_file.open("ab") as log, _started(launch, log) as processes:
        on_start(processes.pids)
        lines: queue.Queue[bytes | None] = queue.Queue()
        assert processes.master.stdout is not None
        reader = threading.Thread(target=_pump, args=(processes.master.stdout, lines), daemon=True)
        reader.start()
        deadline = time.monotonic() + launch.deadline_s
        while True:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                if time.monotonic() > deadline:
                    log.write(b"loadtests: deadline reached, stopping Locust\n")
                    _stop(processes.master)
                    return 124
                continue
            if line is None:
                break
            text = line.decode(errors="replace")
            if text.startswith(EVENT_PREFIX):
                with contextlib.suppress(ValueError):
                    on_event(json.loads(text[len(EVENT_PREFIX) :]))
            else:
                log.write(line)
        return processes.master.wait(30)
