"""The pre-warm loop's two stopping rules, on a call that does nothing (no server)."""

from __future__ import annotations

from loadtests.prewarm import _hammer


def test_a_request_count_stops_the_warm_up_before_its_time_cap() -> None:
    sent = _hammer(lambda: lambda i: None, seconds=60.0, threads=4, requests=500)
    assert 500 <= sent < 500 + 4  # each thread stops at the next check: at most one request over each


def test_without_a_count_the_time_cap_stops_it() -> None:
    assert _hammer(lambda: lambda i: None, seconds=0.2, threads=2) > 0
