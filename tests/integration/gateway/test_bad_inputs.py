"""The bad-input corpus (``corpus.py``) against the real server: ``python -m gateway`` under granian.

One gateway process for the module (one worker, the embedded TorchScript model of the session's real
export). Each case is sent over a raw socket; its status, its error envelope (code, non-empty message,
request id equal to ``X-Request-ID``) and the absence of traceback text are checked, and then
``GET /livez`` must still answer 200. A failure message ends with the tail of the gateway's log.
"""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from model_store import ModelStore
from tests.integration.gateway.conftest import running_gateway
from tests.integration.gateway.corpus import CASES, Case, Client, verify

pytestmark = pytest.mark.integration

TRACEBACK_MARKERS = ("Traceback", 'File "')


@dataclass
class Gateway:
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    client: Client

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 4000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        return text[-chars:]

    def alive(self) -> None:
        assert self.process.poll() is None, f"the gateway exited with {self.process.returncode}"
        with urllib.request.urlopen(self.base + "/livez", timeout=5) as response:
            assert response.status == 200, f"/livez answered {response.status}"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, exported_store: ModelStore) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("bad-inputs")
    env = {"GATEWAY_MODEL_STORE": str(exported_store.root), "GATEWAY_GRACEFUL_TIMEOUT_S": "5"}
    routing = "models: {mnist: {backends: {embedded-pytorch: 1}}}\n"
    with running_gateway(folder, routing, env) as running:
        yield Gateway(running.port, running.process, running.log, Client(running.port))


def test_corpus_is_large_and_named_uniquely() -> None:
    names = [case.name for case in CASES]
    assert len(names) >= 150
    assert len(set(names)) == len(names), sorted(n for n in names if names.count(n) > 1)
    sent = sum(len(part) for case in CASES for part in Client(0).request_bytes(case))
    assert sent < 200 * 1024 * 1024, f"the corpus would send {sent / 2**20:.0f} MiB"


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            case,
            id=case.name,
            marks=[pytest.mark.xfail(strict=True, reason=case.server_limit)] if case.server_limit else [],
        )
        for case in CASES
    ],
)
def test_bad_input(gateway: Gateway, case: Case) -> None:
    problems: list[str] = []
    try:
        reply = gateway.client.send(case)
        verify(case, reply, gateway.client)
    except (AssertionError, OSError) as exc:
        problems.append(f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc))
    try:
        gateway.alive()
    except (AssertionError, OSError) as exc:
        problems.append(f"not alive after {case.name}: {exc}")
    if problems:
        pytest.fail(
            "\n".join(problems) + f"\n--- gateway log (tail) ---\n{gateway.log_tail()}", pytrace=False
        )


def test_log_holds_no_traceback(gateway: Gateway) -> None:
    """Runs after the corpus: no request made the gateway log an unhandled error."""
    gateway.alive()
    log = gateway.log_tail(chars=1_000_000)
    assert not any(marker in log for marker in TRACEBACK_MARKERS), log[-4000:]
