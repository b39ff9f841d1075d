"""Start servers in their own process group, record them in the run directory, stop them all.

Each server runs as the leader of a new session, so stopping its process group also stops
the children it spawned (TorchServe's Python workers). A JSON record per server in
``<run_dir>/pids/`` lets ``python -m serving down`` find them from another shell.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ServerRecord:
    name: str
    pid: int
    command: list[str]
    log: str
    started_at: float
    info: dict[str, Any]


# Servers started by this process: kept so they are reaped (not left as zombies) when stopped,
# and so a Popen object is never collected while its server still runs.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def _pid_dir(run_dir: Path) -> Path:
    return run_dir / "pids"


def record_path(run_dir: Path, name: str) -> Path:
    return _pid_dir(run_dir) / f"{name}.json"


def start_server(
    name: str,
    command: Sequence[str],
    *,
    run_dir: Path,
    log_file: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    info: dict[str, Any] | None = None,
) -> ServerRecord:
    """Launch ``command`` detached in a new session, output appended to ``log_file``."""
    existing = read_record(run_dir, name)
    if existing and process_group_alive(existing.pid):
        raise RuntimeError(
            f"{name} is already running (pid {existing.pid}); run `python -m serving down` first"
        )
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _CHILDREN[process.pid] = process
    record = ServerRecord(name, process.pid, list(command), str(log_file), time.time(), info or {})
    _pid_dir(run_dir).mkdir(parents=True, exist_ok=True)
    record_path(run_dir, name).write_text(json.dumps(asdict(record), indent=2))
    return record


def read_record(run_dir: Path, name: str) -> ServerRecord | None:
    path = record_path(run_dir, name)
    try:
        return ServerRecord(**json.loads(path.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def all_records(run_dir: Path) -> list[ServerRecord]:
    if not _pid_dir(run_dir).is_dir():
        return []
    records = [read_record(run_dir, path.stem) for path in sorted(_pid_dir(run_dir).glob("*.json"))]
    return [record for record in records if record is not None]


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in {"Z", "X"}


def group_members(pgid: int) -> list[int]:
    """Live processes whose process group is ``pgid`` (read from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError, PermissionError):
            continue
        if int(fields[2]) == pgid and fields[0] not in {"Z", "X"}:
            members.append(int(entry.name))
    return members


def process_group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def stop_group(pgid: int, grace_s: float = 15.0, first: signal.Signals = signal.SIGTERM) -> list[int]:
    """The one way a process group is stopped: ``first`` (SIGTERM; Locust takes SIGINT to write its last
    figures) to the whole group, SIGKILL to what is left after ``grace_s``; returns killed-hard pids."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, first)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        _reap(pgid)
        if not process_group_alive(pgid):
            _reap(pgid, wait_s=5.0)
            return []
        time.sleep(0.1)
    leftovers = group_members(pgid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while process_group_alive(pgid) and time.monotonic() < deadline:
        _reap(pgid)
        time.sleep(0.05)
    _reap(pgid, wait_s=5.0)
    return leftovers


def _reap(pid: int, wait_s: float = 0.0) -> None:
    """Collect our own exited child so it does not linger as a zombie."""
    child = _CHILDREN.get(pid)
    if child is None:
        return
    try:
        child.wait(timeout=wait_s) if wait_s else child.poll()
    except subprocess.TimeoutExpired:
        return
    if child.returncode is not None:
        del _CHILDREN[pid]


def stop_server(run_dir: Path, name: str, grace_s: float = 15.0) -> tuple[bool, list[int]]:
    """Stop a recorded server; returns (was running, pids that needed SIGKILL)."""
    record = read_record(run_dir, name)
    if record is None:
        return False, []
    was_running = process_group_alive(record.pid)
    killed = stop_group(record.pid, grace_s) if was_running else []
    record_path(run_dir, name).unlink(missing_ok=True)
    return was_running, killed


def tail(path: Path, lines: int = 30, match: Sequence[str] = ()) -> list[str]:
    """The last ``lines`` lines of a log, or of its lines containing any of ``match``."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    if match:
        text = [line for line in text if any(needle in line for needle in match)]
    return text[-lines:]
