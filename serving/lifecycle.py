"""One way to start a set of servers and wait until each answers: ``up(settings, launchers, ...)``.

``python -m serving up``, the comparison, the gateway bench and the soak all start what they need
through it. Each component is a :class:`Launcher` — the servers' launcher modules
(``serving.<server>.launcher``), or a :class:`CommandLauncher` for a plain process with a readiness
URL (the gateway, the load tests' null endpoints). Every component is started first (they boot in
parallel), then each is waited for; one that cannot start or never gets ready is stopped and its reason
kept. A component named in ``required`` failing stops everything this call started and raises.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from serving.errors import ServingError
from serving.process import ServerRecord, process_group_alive, start_server, stop_server, tail
from serving.settings import REPO_ROOT, ServingSettings

__all__ = ["SERVERS", "CommandLauncher", "Launcher", "ServerLauncher", "Stack", "up", "wait_http"]

Say = Callable[[str], None]


class Launcher(Protocol):
    """What starts one component and tells when it is ready (``serving.<server>.launcher`` modules)."""

    def check_ports(self, settings: ServingSettings) -> None:
        """Raise when a port the component needs is taken."""

    def start(self, settings: ServingSettings) -> ServerRecord:
        """Start it in a process group of its own; return its record (pid, log, what runs)."""

    def wait_until_ready(self, settings: ServingSettings, server: ServerRecord, timeout_s: float) -> Any:
        """Return once it answers (what it serves, e.g. versions); raise when it never will."""


class ServerLauncher(Launcher, Protocol):
    """A model server's launcher module: it also reports each version's state (``status``)."""

    def version_states(self, settings: ServingSettings) -> dict[str, str]:
        """Each served version and its state, read from the running server."""


def _servers() -> dict[str, ServerLauncher]:
    from serving.tfserving import launcher as tfserving
    from serving.torchserve import launcher as torchserve
    from serving.triton import launcher as triton

    return {"torchserve": torchserve, "tfserving": tfserving, "triton": triton}


SERVERS: dict[str, ServerLauncher] = _servers()
"""The model servers, in the order they are started."""


@dataclass(frozen=True)
class CommandLauncher:
    """A plain process (``command`` with ``env``, from the checkout) ready when ``ready_url`` answers
    200 (any status with ``any_status``)."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str]
    ready_url: str
    implementation: str
    any_status: bool = False

    def check_ports(self, settings: ServingSettings) -> None:
        return None

    def start(self, settings: ServingSettings) -> ServerRecord:
        return start_server(
            self.name,
            list(self.command),
            run_dir=settings.run_dir,
            log_file=settings.run_dir / self.name / f"{self.name}.log",
            cwd=REPO_ROOT,
            env=dict(self.env),
            info={"implementation": self.implementation, "command": list(self.command)},
        )

    def wait_until_ready(self, settings: ServingSettings, server: ServerRecord, timeout_s: float) -> None:
        wait_http(self.ready_url, server, timeout_s, any_status=self.any_status)


@dataclass
class Stack:
    """What ``up`` started: the running components' records, what each serves, and why any other
    did not start."""

    records: dict[str, ServerRecord] = field(default_factory=dict)
    serves: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def up(
    settings: ServingSettings,
    launchers: Mapping[str, Launcher],
    say: Say,
    *,
    required: Collection[str] = (),
    timeout_s: float | None = None,
    on_give_up: Callable[[str, str], None] | None = None,
) -> Stack:
    """Start every launcher, then wait for each; see the module's docstring. ``on_give_up(name, why)``
    hears of each component left out (after it was stopped), before the others go on."""
    stack = Stack()
    timeout = settings.startup_timeout_s if timeout_s is None else timeout_s

    def give_up(name: str, why: str) -> None:
        if name in stack.records:
            stop_server(settings.run_dir, name)
            del stack.records[name]
        stack.failures[name] = why
        if name in required:
            for started in reversed(list(stack.records)):
                stop_server(settings.run_dir, started)
            stack.records.clear()
            raise ServingError(f"{name}: {why}")
        if on_give_up is not None:
            on_give_up(name, why)
        say(f"  {name}: {why.splitlines()[0]}; the others go on")

    try:
        for name, launcher in launchers.items():
            try:
                launcher.check_ports(settings)
                record = launcher.start(settings)
            except (ServingError, OSError, RuntimeError, ValueError, subprocess.SubprocessError) as exc:
                give_up(name, f"could not start: {exc}")
                continue
            stack.records[name] = record
            say(f"  started {record.info.get('implementation', name)} (pid {record.pid})")
        for name in list(stack.records):
            began = time.monotonic()
            try:
                stack.serves[name] = launchers[name].wait_until_ready(settings, stack.records[name], timeout)
            except (ServingError, OSError, TimeoutError) as exc:
                give_up(name, f"not ready: {exc}")
                continue
            say(f"  {name}: ready ({time.monotonic() - began:.1f} s more)")
    except BaseException:
        for name in reversed(list(stack.records)):
            stop_server(settings.run_dir, name)
        stack.records.clear()
        raise
    return stack


def wait_http(
    url: str, record: ServerRecord, timeout_s: float, any_status: bool = False, poll_s: float = 0.3
) -> None:
    """Poll ``url`` every ``poll_s`` until it answers 200 (any HTTP status with ``any_status``); fail
    fast with the log's last lines when the process group has exited."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        if not process_group_alive(record.pid):
            raise ServingError(f"{record.name} exited:\n" + "\n".join(tail(Path(record.log), 15)))
        try:
            with urllib.request.urlopen(url, timeout=2.0) as answer:  # nosec B310  # readiness URL of a server this process started
                if answer.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if any_status:
                return
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(poll_s)
    raise TimeoutError(f"{url} not ready within {timeout_s:.0f} s ({last})")
