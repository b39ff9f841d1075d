"""CPU pinning (servers vs load generator) and CPU-time accounting of process groups (psutil).

Pinning follows docs/benchmarking.md (step 1): the servers and the load generator get disjoint cores where
the machine has at least two. Children inherit the affinity of the thread that forks them, so the
runner sets its own affinity around each launch (:func:`pinned`) and also re-pins every thread of an
already running group (:func:`pin_group`), which covers threads and workers started before.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import psutil

__all__ = [
    "Pinning",
    "cpu_seconds",
    "parse_cpus",
    "pin_group",
    "pinned",
    "plan_pinning",
    "process_cpu_seconds",
    "system_busy_seconds",
]


@dataclass(frozen=True)
class Pinning:
    servers: tuple[int, ...]
    generator: tuple[int, ...]
    mode: str
    """``auto``, ``manual`` or ``off``."""
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "server_cpus": list(self.servers),
            "generator_cpus": list(self.generator),
            "note": self.note,
        }

    @property
    def active(self) -> bool:
        return self.mode != "off"


def parse_cpus(text: str) -> tuple[int, ...]:
    """``0-2,5`` -> (0, 1, 2, 5)."""
    cpus: list[int] = []
    for part in (item.strip() for item in text.split(",")):
        if not part:
            continue
        low, _, high = part.partition("-")
        cpus.extend(range(int(low), int(high or low) + 1))
    if not cpus:
        raise ValueError(f"no CPUs in {text!r}")
    return tuple(sorted(set(cpus)))


def available_cpus() -> tuple[int, ...]:
    if hasattr(os, "sched_getaffinity"):
        return tuple(sorted(os.sched_getaffinity(0)))
    return tuple(range(os.cpu_count() or 1))


def plan_pinning(spec: str, cpus: tuple[int, ...] | None = None) -> Pinning:
    """``auto``: a quarter of the cores (at least one) for Locust, the rest for the servers;
    ``off``; or ``SERVER_CPUS:GENERATOR_CPUS`` such as ``1-3:0``."""
    cpus = cpus if cpus is not None else available_cpus()
    if spec == "off" or not hasattr(os, "sched_setaffinity"):
        return Pinning(cpus, cpus, "off", "not pinned" if spec == "off" else "no sched_setaffinity here")
    if spec == "auto":
        if len(cpus) < 2:
            return Pinning(cpus, cpus, "off", "one core: servers and load generator share it")
        generator = cpus[: max(1, len(cpus) // 4)]
        servers = tuple(cpu for cpu in cpus if cpu not in generator)
        return Pinning(servers, generator, "auto")
    server_text, sep, generator_text = spec.partition(":")
    if not sep:
        raise ValueError(f"--pin {spec!r}: expected auto, off or SERVER_CPUS:GENERATOR_CPUS (e.g. 1:0)")
    servers, generator = parse_cpus(server_text), parse_cpus(generator_text)
    unknown = sorted(set(servers + generator) - set(cpus))
    if unknown:
        raise ValueError(f"--pin {spec!r}: CPUs {unknown} are not available (have {list(cpus)})")
    note = "servers and load generator overlap" if set(servers) & set(generator) else ""
    return Pinning(servers, generator, "manual", note)


@contextlib.contextmanager
def pinned(cpus: Iterable[int] | None) -> Iterator[None]:
    """Run the block with this thread pinned to ``cpus`` (what it forks inherits them)."""
    if cpus is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(cpus))
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _group_pids(pgid: int) -> list[int]:
    from serving.process import group_members

    return group_members(pgid)


def pin_group(pgid: int, cpus: Iterable[int]) -> int:
    """Pin every thread of every process in group ``pgid``; returns how many threads were pinned."""
    wanted = set(cpus)
    pinned_threads = 0
    for pid in _group_pids(pgid):
        for task in _tasks(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
                os.sched_setaffinity(task, wanted)
                pinned_threads += 1
    return pinned_threads


def _tasks(pid: int) -> list[int]:
    try:
        return [thread.id for thread in psutil.Process(pid).threads()]
    except psutil.Error:
        return []


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads), 0.0 if it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


def cpu_seconds(pgid: int) -> float:
    """CPU seconds used so far by the live members of process group ``pgid``."""
    return sum(process_cpu_seconds(pid) for pid in _group_pids(pgid))


def system_steal_seconds() -> float:
    """CPU seconds the hypervisor gave to other guests while this machine wanted them, all cores."""
    return float(getattr(psutil.cpu_times(), "steal", 0.0))


def system_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine so far, all cores (guest time is inside user time already)."""
    times = psutil.cpu_times()
    busy = ("user", "nice", "system", "irq", "softirq", "steal")
    return float(sum(getattr(times, name, 0.0) for name in busy))
