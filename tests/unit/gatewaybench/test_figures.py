"""The gateway benchmark's arithmetic on recorded samples: percentiles, CPU per request, A B B A medians,
targets with pass/miss, and the profile summary."""

from __future__ import annotations

import pytest

from gatewaybench.bench import summarize_profile
from gatewaybench.figures import (
    Floor,
    Step,
    backend_figures,
    batching_rows,
    evaluate_targets,
    step_from_samples,
)


def step(target: str, clients: int, p50: float, p99: float, rps: float, gw_cpu: float | None = None) -> Step:
    return Step(target, clients, 4.0, int(rps * 4), 0, p50, p99, rps, gw_cpu, 0.7, 20.0)


def measured_pair(
    backend: str, p50_ms: tuple[float, float], rps: tuple[float, float], gw_cpu: float
) -> list[Step]:
    """Direct and via the gateway at 1 client (``p50_ms``) and at 8 (``rps``), as bench-gateway records."""
    (direct_p50, gateway_p50), (direct_rps, gateway_rps) = p50_ms, rps
    return [
        step(f"direct/{backend}", 1, direct_p50, 2 * direct_p50, 900),
        step(f"gateway/{backend}", 1, gateway_p50, 2 * gateway_p50, 300),
        step(f"direct/{backend}", 8, 5.0, 9.0, direct_rps),
        step(f"gateway/{backend}", 8, 9.0, 15.0, gateway_rps, gw_cpu=gw_cpu),
    ]


def test_step_from_samples_percentiles_rate_and_cpu_per_request() -> None:
    latencies = [0.001 * (i + 1) for i in range(100)]  # 1 .. 100 ms
    s = step_from_samples("gateway/tfserving-rest", 8, latencies, 2, 4.0, 0.05, 0.2, 1.0)
    assert s.requests == 100 and s.errors == 2
    assert s.p50_ms == pytest.approx(50.5)  # linear interpolation between the 50th and 51st
    assert s.p99_ms == pytest.approx(99.01)
    assert s.rps == pytest.approx(25.0)
    assert s.gateway_cpu_ms == pytest.approx(0.5)  # 50 ms of CPU over 100 requests
    assert s.server_cpu_ms == pytest.approx(2.0)
    assert s.generator_cpu_pct == pytest.approx(25.0)
    assert (s.path, s.backend) == ("gateway", "tfserving-rest")


def test_no_samples_gives_no_cpu_per_request_instead_of_a_division_error() -> None:
    s = step_from_samples("direct/x", 1, [], 5, 4.0, None, 0.1, 0.0)
    assert s.requests == 0 and s.server_cpu_ms is None and s.gateway_cpu_ms is None


def test_backend_figures_take_medians_of_the_a_b_b_a_repetitions() -> None:
    steps = [
        step("direct/tfserving-rest", 1, 1.0, 2.0, 900),
        step("gateway/tfserving-rest", 1, 1.5, 3.0, 600),
        step("gateway/tfserving-rest", 1, 1.7, 3.4, 560),
        step("direct/tfserving-rest", 1, 1.2, 2.2, 880),
        step("direct/tfserving-rest", 8, 5.0, 9.0, 1000),
        step("gateway/tfserving-rest", 8, 7.0, 12.0, 700, gw_cpu=0.35),
        step("gateway/tfserving-rest", 8, 7.0, 12.0, 660, gw_cpu=0.45),
        step("direct/tfserving-rest", 8, 5.0, 9.0, 1040),
    ]
    f = backend_figures(steps, "tfserving-rest", 1, 8)
    assert f.direct_p50_ms == pytest.approx(1.1)
    assert f.gateway_p50_ms == pytest.approx(1.6)
    assert f.added_p50_ms == pytest.approx(0.5)
    assert f.added_p99_ms == pytest.approx(3.2 - 2.1)
    assert f.throughput_ratio == pytest.approx(680 / 1020)
    assert f.gateway_cpu_ms == pytest.approx(0.4)
    assert f.server_cpu_ms == pytest.approx(0.7)


def test_each_target_is_read_against_the_floor_measured_in_the_same_run() -> None:
    steps = [
        *measured_pair("tfserving-rest", (1.0, 1.4), (1000, 400), gw_cpu=0.42),
        *measured_pair("torchserve-rest", (3.0, 4.1), (300, 200), gw_cpu=0.66),
        *measured_pair("tfserving-grpc", (1.2, 1.9), (1000, 380), gw_cpu=0.51),
    ]
    backends = ("tfserving-rest", "torchserve-rest", "tfserving-grpc")
    figures = [backend_figures(steps, b, 1, 8) for b in backends]
    floor = Floor.from_dict(
        {
            "cpu_ms_per_request": 0.3,
            "torchserve": {"cpu_ms_per_request": 0.4},
            "grpc": {"cpu_ms_per_request": 0.5},
        }
    )
    stages = {"instant_backend_us": {"gateway": 100.0, "floor": 40.0}}
    startup = {"ready_s": [1.5, 1.7, 1.6], "median_ready_s": 1.6, "max_worker_rss_mib": 130.0}
    lines = {
        (line.figure, line.where): line
        for line in evaluate_targets(figures, steps, "tfserving-rest", 32, floor, None, stages, startup)
    }
    cpu = "gateway CPU per request / floor's (8 clients)"
    assert (
        lines[(cpu, "tfserving-rest")].measured == pytest.approx(1.4)
        and lines[(cpu, "tfserving-rest")].passed
    )
    torchserve = lines[(cpu, "torchserve-rest")]  # read against the proxy in front of TorchServe
    assert torchserve.measured == pytest.approx(1.65) and torchserve.passed is False
    assert torchserve.floor_note == "gateway 0.660 ms, floor 0.400 ms"
    assert (cpu, "tfserving-grpc") not in lines  # the REST backends' line
    spread = lines[
        ("gateway CPU per request, dearest backend / cheapest", "torchserve-rest / tfserving-rest")
    ]
    assert spread.measured == pytest.approx(0.66 / 0.42) and spread.passed is False
    assert spread.floor_note == "the floor's proxies: 1.67x"  # 0.5 / 0.3
    own = lines[("gateway own work / floor's (instant backend, in process)", "tfserving-rest")]
    assert own.measured == pytest.approx(2.5) and own.passed is False
    assert lines[("gateway start to ready (2 workers, proxy routing)", "3 starts")].passed is True
    assert lines[("RSS per proxying worker (2 workers, gRPC ingress on)", "3 starts")].passed is False


def test_batching_is_read_against_the_server_alone_and_against_its_own_batching() -> None:
    steps = [
        step("alone/tfserving-rest", 32, 20.0, 40.0, 1000),
        step("batched/tfserving-rest", 32, 15.0, 39.0, 1600),
        step("alone/torchserve-rest", 32, 20.0, 40.0, 500),
        step("batched/torchserve-rest", 32, 15.0, 39.0, 700),
        step("server-batched/torchserve-rest", 32, 15.0, 39.0, 760),
        step("batched/tfserving-rest", 1, 1.56, 3.0, 590),
        step("unbatched/tfserving-rest", 1, 1.48, 3.0, 600),
        step("unbatched/tfserving-rest", 1, 1.52, 3.0, 600),
    ]
    lines = {
        (line.figure, line.where.split(";")[0]): line
        for line in evaluate_targets([], steps, "tfserving-rest", 32)
    }
    wide = "gateway batching, 32 clients: throughput / direct unbatched"
    assert (
        lines[(wide, "tfserving-rest")].measured == pytest.approx(1.6)
        and lines[(wide, "tfserving-rest")].passed
    )
    assert lines[(wide, "torchserve-rest")].measured == pytest.approx(1.4)
    assert lines[(wide, "torchserve-rest")].passed is False
    own = lines[("gateway batching / TorchServe's own batching, 32 clients", "torchserve-rest")]
    assert own.measured == pytest.approx(700 / 760) and own.passed is True
    lone = lines[("gateway batching, 1 client: p50 on minus off", "tfserving-rest")]
    assert lone.passed is False  # 1.56 - 1.50: +0.06 ms
    assert (
        lone.where
        == "tfserving-rest; A B B A windows through the gateway: +0.060 ms, off windows differ by 0.040 ms"
    )
    decided = evaluate_targets(
        [], steps, "tfserving-rest", 32, None, {"pairs": 2000.0, "median_difference_ms": 0.012}
    )
    [line] = [line for line in decided if line.figure.endswith("on minus off")]
    assert line.passed is True and line.measured == 0.012
    assert line.where.endswith("; decided by 2000 pairs alternating per request")


def test_what_was_not_measured_says_so_instead_of_passing() -> None:
    lines = evaluate_targets([], [], "tfserving-rest", 32)
    assert lines and all(line.passed is None and line.measured is None for line in lines)
    assert Floor.from_dict({"rps": 5.0, "unknown": 1}) == Floor(rps=5.0)


def test_profile_summary_counts_own_and_inclusive_samples() -> None:
    raw = "\n".join(
        [
            "run (granian/server.py:10);handle (gateway/api.py:20);send (gateway/backends/http.py:30) 6",
            "run (granian/server.py:10);handle (gateway/api.py:20);loads (gateway/codecs.py:40) 3",
            "run (granian/server.py:10);select (selectors.py:1) 1",
        ]
    )
    summary = summarize_profile(raw)
    assert summary["samples"] == 10
    assert summary["self"][0] == ["backends/http.py:send", 60.0]  # type: ignore[index]
    inclusive = dict(summary["inclusive"])  # type: ignore[arg-type]
    assert inclusive["gateway/api.py:handle"] == 90.0
    assert inclusive["granian/server.py:run"] == 100.0


def test_the_batching_blocks_server_windows_stay_out_of_the_a_b_b_a_medians() -> None:
    """The TorchServe batching comparison calls the server alone at 1 and 8 clients too, minutes after
    the A B B A; those windows must not move the backend's direct median (they once turned a ratio
    of 0.78 into 0.60)."""
    steps = [
        *measured_pair("torchserve-rest", (2.0, 2.4), (600, 450), gw_cpu=0.5),
        step("alone/torchserve-rest", 1, 1.0, 2.0, 950),
        step("alone/torchserve-rest", 8, 4.0, 8.0, 900),
    ]
    figures = backend_figures(steps, "torchserve-rest", 1, 8)
    assert figures.direct_rps == 600 and figures.throughput_ratio == pytest.approx(0.75)
    assert figures.added_p50_ms == pytest.approx(0.4)


def test_batching_rows_list_each_mode_and_point_in_order_with_medians() -> None:
    steps = [
        step("server-batched/torchserve-rest", 32, 30.0, 60.0, 400),
        step("alone/torchserve-rest", 32, 50.0, 90.0, 200),
        step("batched/torchserve-rest", 32, 40.0, 70.0, 300),
        step("batched/torchserve-rest", 32, 44.0, 74.0, 320),
        step("alone/torchserve-rest", 1, 5.0, 9.0, 190),
        step("direct/tfserving-rest", 1, 1.0, 2.0, 900),  # another backend: not in this table
    ]
    rows = batching_rows(steps, "torchserve-rest", (1, 8, 32))
    assert [(r.mode, r.clients) for r in rows] == [
        ("alone", 1),
        ("alone", 32),
        ("batched", 32),
        ("server-batched", 32),
    ]
    assert rows[2].rps == pytest.approx(310) and rows[2].p50_ms == pytest.approx(42.0)
