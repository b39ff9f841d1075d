"""Raw samples: Server-Timing, failure reasons, worker batches, the watch counter, the file format."""

from __future__ import annotations

import json
import math
from pathlib import Path

from loadtests.recorder import SampleRecorder, failure_reason, load_samples, parse_server_timing


class CatchResponseError(Exception):
    """Same name as Locust's wrapper of ``response.failure(reason)``."""


def test_server_timing_header_is_split_into_gateway_and_backend() -> None:
    header = "gateway;dur=0.412, backend;dur=1.250, total;dur=1.662"
    assert parse_server_timing(header) == (0.412, 1.25)
    gateway, backend = parse_server_timing(None)
    assert math.isnan(gateway) and math.isnan(backend)


def test_failure_reasons_are_short_and_group_by_cause() -> None:
    assert failure_reason(None) == ""
    assert failure_reason(CatchResponseError("wrong digit: 3 for a 5")) == "wrong digit: 3 for a 5"
    assert failure_reason(ConnectionRefusedError(111, "Connection refused")) == (
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )
    assert len(failure_reason("x" * 500)) == 160


def test_worker_batches_reach_the_master_and_count_in_the_watch(tmp_path: Path) -> None:
    worker, master = SampleRecorder(), SampleRecorder()
    master.watch("tfserving-rest", since=100.0)
    worker.record("tfserving-rest", 99.0, 1.5, keep=False)
    worker.record("tfserving-rest", 100.5, 1.25, "", "gateway;dur=0.1, backend;dur=1.0", keep=False)
    worker.record("torchserve-rest", 101.0, 3.0, "HTTP 503", keep=False)
    assert worker.columns == {}
    master.add_batch(json.loads(json.dumps(worker.take_batch())))  # it travels as JSON-like data
    assert worker.take_batch() == {}
    assert master.watched == 1  # only tfserving-rest samples started at or after 100.0
    master.write(tmp_path / "samples.json")
    loaded = load_samples(tmp_path / "samples.json")
    assert loaded["tfserving-rest"].ms == [1.5, 1.25]
    assert loaded["tfserving-rest"].gateway_ms[1] == 0.1
    assert math.isnan(loaded["tfserving-rest"].gateway_ms[0])
    assert loaded["torchserve-rest"].error == ["HTTP 503"]


def test_watch_counts_what_was_already_recorded() -> None:
    recorder = SampleRecorder()
    for start in (1.0, 2.0, 3.0):
        recorder.record("null-rest", start, 0.2)
    recorder.watch("null-rest", 2.0)
    assert recorder.watched == 2
    recorder.record("null-rest", 4.0, 0.2)
    recorder.record("null-grpc", 4.0, 0.2)
    assert recorder.watched == 3


def test_window_summary_for_progress_lines() -> None:
    recorder = SampleRecorder()
    for start, ms, error in ((1.0, 2.0, ""), (1.1, 4.0, ""), (1.2, 3.0, "HTTP 500"), (9.0, 1.0, "")):
        recorder.record("t", start, ms, error)
    assert recorder.window_summary("t", 0.0, 5.0) == {"p50_ms": 4.0, "failures": 1, "requests": 2}
