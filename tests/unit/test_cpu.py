"""CPU-time accounting of processes, process groups and the machine (this test process, no fakes)."""

from __future__ import annotations

import os
import threading
import time

from serving.cpu import cpu_seconds, process_cpu_seconds, system_busy_seconds


def _spin(seconds: float) -> None:
    until = time.process_time() + seconds
    while time.process_time() < until:
        pass


def test_a_process_s_cpu_time_grows_with_its_work_and_a_gone_process_has_none() -> None:
    before, machine_before = process_cpu_seconds(os.getpid()), system_busy_seconds()
    _spin(0.3)
    assert process_cpu_seconds(os.getpid()) - before >= 0.25
    assert system_busy_seconds() - machine_before >= 0.25
    assert process_cpu_seconds(2**22 + 12345) == 0.0  # above the kernel's pid limit: never a process


def test_a_group_counts_every_thread_of_its_members() -> None:
    group = os.getpgid(0)
    before = cpu_seconds(group)
    worker = threading.Thread(target=_spin, args=(0.3,))
    worker.start()
    worker.join()
    assert cpu_seconds(group) - before >= 0.25  # the thread's time is in its process's, and so the group's
