"""The locustfiles load in Locust itself (as `locust -f` would) and offer one User class per target."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loadtests.targets import ALL_TARGETS
from tests.integration.loadtests.conftest import REPO

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("locustfile", ["loadtests/locustfile.py", "loadtests/comparison_locustfile.py"])
def test_one_user_class_per_target(locustfile: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", locustfile, "--list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    listed = {line.strip() for line in done.stdout.splitlines() if line.strip()}
    assert {target.user_class for target in ALL_TARGETS} <= listed


def test_target_options_are_accepted() -> None:
    # Locust lists custom options in its web UI, not in --help; an unknown option would fail here.
    options = ["--tfserving-rest-url", "http://127.0.0.1:1", "--torchserve-grpc-target", "127.0.0.1:1"]
    options += ["--gateway-url", "http://127.0.0.1:1", "--payload-file", "", "--request-timeout", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", *options, "--list"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
