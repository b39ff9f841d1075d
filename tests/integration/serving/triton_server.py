"""Triton started through its launcher for a test module, and always stopped with nothing left behind."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from serving.errors import ServingError
from serving.process import group_members, stop_server
from serving.settings import ServingSettings
from serving.triton import launcher as triton


@contextlib.contextmanager
def running_triton(settings: ServingSettings) -> Iterator[ServingSettings]:
    """Start Triton; always stop it and check its whole process group, shared memory and model copies
    are gone. A Triton that cannot start here fails the test (it is not skipped)."""
    pgid = None
    try:
        triton.check_ports(settings)
        try:
            record = triton.start(settings)
        except ServingError as exc:
            pytest.fail(f"Triton could not be started here (not skipped: this is a failure): {exc}")
        pgid = record.pid
        triton.wait_until_ready(settings, record, 120)
        yield settings
    finally:
        stop_server(settings.run_dir, triton.NAME)
        if pgid is not None:
            assert group_members(pgid) == [], "Triton's processes outlived `stop_server`"
            leftovers = [name for name in os.listdir("/dev/shm") if name.startswith(f"pytrtion{pgid}-")]
            assert leftovers == [], f"shared memory left behind: {leftovers}"
            copies = triton.stale_model_copies(settings.triton_dir / "workspace")
            assert copies == [], f"Triton's model copies left in /tmp: {copies}"
