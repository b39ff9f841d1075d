"""TorchServe key renewal: before expiry, once, and never in a loop when keys live shorter than the margin.

A fake management API (``PUT /token?type=inference``, on 127.0.0.1) rewrites ``key_file.json`` the way
TorchServe does: a new inference key that expires ``lifetime`` after the (injected) clock's now.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.backends.torchserve_keys import TokenError, TokenSource
from tests.support import served_in_thread

START = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def _java_time(moment: dt.datetime) -> str:
    """TorchServe (Java) prints nanoseconds and a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def write_key_file(path: Path, inference: str, expires: dt.datetime) -> None:
    path.write_text(
        json.dumps(
            {
                "management": {"key": "mgmt", "expiration time": _java_time(START + dt.timedelta(days=1))},
                "inference": {"key": inference, "expiration time": _java_time(expires)},
                "API": {"key": "api-key"},
            }
        )
    )


class FakeManagement(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, key_file: Path, clock: Clock, lifetime_s: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.key_file = key_file
        self.clock = clock
        self.lifetime = dt.timedelta(seconds=lifetime_s)
        self.renewals = 0
        self.refuse = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeManagement

    def do_PUT(self) -> None:
        fake = self.server
        allowed = self.headers.get("Authorization") == "Bearer api-key" and not fake.refuse
        if self.path != "/token?type=inference" or not allowed:
            self.send_response(400)
            self.end_headers()
            return
        fake.renewals += 1
        write_key_file(fake.key_file, f"key-{fake.renewals}", fake.clock() + fake.lifetime)
        body = b'{"message": "renewed"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _serve(fake: FakeManagement) -> Iterator[FakeManagement]:
    with served_in_thread(fake):
        yield fake


@pytest.fixture
def management(tmp_path: Path, clock: Clock, request: pytest.FixtureRequest) -> Iterator[FakeManagement]:
    lifetime = float(getattr(request, "param", 3600))
    key_file = tmp_path / "key_file.json"
    write_key_file(key_file, "key-0", START + dt.timedelta(seconds=lifetime))
    yield from _serve(FakeManagement(key_file, clock, lifetime))


def test_the_key_is_renewed_once_when_it_enters_the_margin(management: FakeManagement, clock: Clock) -> None:
    source = TokenSource(management.key_file, management.url, renew_margin_s=300, now=clock)
    assert source.token() == "key-0" and management.renewals == 0
    clock.advance(3600 - 301)  # 301 s left: not yet
    assert source.token() == "key-0" and management.renewals == 0
    clock.advance(2)  # 299 s left: inside the margin, still valid: renewed before it expires
    assert source.token() == "key-1" and management.renewals == 1
    for _ in range(5):
        assert source.token() == "key-1"
    assert management.renewals == 1  # the new key lives an hour: no second renewal


@pytest.mark.parametrize("management", [60], indirect=True)
def test_a_key_lifetime_shorter_than_the_margin_does_not_renew_in_a_loop(
    management: FakeManagement, clock: Clock
) -> None:
    """Keys live 60 s, the margin is 300 s: every key is 'about to expire' from birth."""
    source = TokenSource(management.key_file, management.url, renew_margin_s=300, now=clock)
    assert source.token() == "key-1" and management.renewals == 1  # one renewal, then it returns
    clock.advance(10)
    assert source.token() == "key-1" and management.renewals == 1  # not renewed on every call
    clock.advance(25)  # 25 s left of 60: inside half the lifetime -> renewed, still before expiry
    assert source.token() == "key-2" and management.renewals == 2
    clock.advance(20)
    assert source.token() == "key-2" and management.renewals == 2


def test_a_refused_renewal_is_an_error_not_a_loop(management: FakeManagement, clock: Clock) -> None:
    source = TokenSource(management.key_file, management.url, renew_margin_s=300, now=clock)
    management.refuse = True
    clock.advance(3600 - 10)
    with pytest.raises(TokenError, match="refused to renew"):
        source.token()
    assert management.renewals == 0


def test_without_a_management_url_the_key_is_only_read(management: FakeManagement, clock: Clock) -> None:
    source = TokenSource(management.key_file, renew_margin_s=300, now=clock)
    clock.advance(3600 - 10)
    assert source.token() == "key-0" and management.renewals == 0


def test_the_key_file_is_checked_at_most_every_recheck_interval(tmp_path: Path, clock: Clock) -> None:
    """The gateway asks for the key on every request: the file is looked at again only after
    ``recheck_s``, or at once after ``invalidate()`` (TorchServe refused the key)."""
    key_file = tmp_path / "key_file.json"
    write_key_file(key_file, "key-0", START + dt.timedelta(hours=1))
    source = TokenSource(key_file, recheck_s=1.0, now=clock)
    assert source.token() == "key-0"
    write_key_file(key_file, "key-1", START + dt.timedelta(hours=1))
    clock.advance(0.5)
    assert source.token() == "key-0"  # within the interval: the key read before
    clock.advance(0.6)
    assert source.token() == "key-1"  # past it: read again
    write_key_file(key_file, "key-2", START + dt.timedelta(hours=1))
    source.invalidate()
    assert source.token() == "key-2"  # a refused key is re-read at once
    key_file.unlink()
    clock.advance(1.1)
    assert source.token() == ""  # no file: authorization off
