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


def test_targets_pass_and_miss_at_their_bounds_and_say_when_unmeasured() -> None:
    steps = [
        step("direct/tfserving-rest", 1, 1.0, 2.0, 900),
        step("gateway/tfserving-rest", 1, 1.5, 3.0, 600),  # added p50 0.5: exactly at the bound
        step("direct/tfserving-rest", 8, 5.0, 9.0, 1000),
        step("gateway/tfserving-rest", 8, 7.0, 12.0, 640, gw_cpu=0.41),  # ratio 0.64, CPU 0.41: misses
        step("gateway/embedded-pytorch", 8, 2.0, 4.0, 2000, gw_cpu=0.3),
        step("alone/tfserving-rest", 32, 20.0, 40.0, 1000),
        step("batched/tfserving-rest", 32, 15.0, 39.0, 1600),
        step("batched/tfserving-rest", 1, 1.56, 3.0, 590),
        step("unbatched/tfserving-rest", 1, 1.48, 3.0, 600),
        step("unbatched/tfserving-rest", 1, 1.52, 3.0, 600),
    ]
    figures = [backend_figures(steps, b, 1, 8) for b in ("tfserving-rest", "embedded-pytorch")]
    lines = {
        (line.figure, line.where): line for line in evaluate_targets(figures, steps, "tfserving-rest", 32)
    }
    verdicts = {figure: line.passed for (figure, _), line in lines.items()}
    assert verdicts["gateway CPU per proxied request, unbatched"] is False
    assert verdicts["added p50 at 1 client"] is True
    assert verdicts["throughput via gateway / direct, unbatched"] is False
    assert verdicts["embedded PyTorch, CPU per request end to end"] is True
    assert verdicts["gateway batching, 32 clients: throughput / direct unbatched"] is True  # 1.6
    assert verdicts["gateway batching, 32 clients: p99 minus direct p99"] is True  # -1 ms
    assert verdicts["gateway batching, 1 client: p50 on minus off"] is False  # 1.56 - 1.50: +0.06 ms
    [noise] = [where for (figure, where) in lines if figure.endswith("on minus off")]
    assert (
        noise
        == "tfserving-rest; A B B A windows through the gateway: +0.060 ms, off windows differ by 0.040 ms"
    )
    lone = {"pairs": 2000.0, "median_difference_ms": 0.012}  # the per-request alternation decides the line
    decided = evaluate_targets(figures, steps, "tfserving-rest", 32, None, lone)
    [line] = [line for line in decided if line.figure.endswith("on minus off")]
    assert line.passed is True and line.measured == 0.012
    assert line.where.endswith(
        "+0.060 ms, off windows differ by 0.040 ms; decided by 2000 pairs alternating per request"
    )
    no_batching = evaluate_targets(figures, steps[:5], "tfserving-rest", 32)
    assert [line.passed for line in no_batching if "batching" in line.figure] == [None, None, None]


def test_floor_figures_stand_beside_the_lines_they_bound() -> None:
    """The floor proxy's CPU, added p50 and throughput ratio, and the generator's ceiling at the batching
    point, each next to its line; "misses too" where the floor itself fails the target."""
    steps = [
        step("direct/tfserving-rest", 1, 1.0, 2.0, 900),
        step("gateway/tfserving-rest", 1, 3.0, 5.0, 300),
        step("direct/tfserving-rest", 8, 5.0, 9.0, 1000),
        step("gateway/tfserving-rest", 8, 9.0, 15.0, 350, gw_cpu=2.0),
        step("alone/tfserving-rest", 32, 20.0, 40.0, 1000),
        step("batched/tfserving-rest", 32, 25.0, 45.0, 900),
    ]
    figures = [backend_figures(steps, "tfserving-rest", 1, 8)]
    floor = Floor(
        p50_ms_1_client=1.4,
        cpu_ms_per_request=1.07,
        rps=610.0,
        answer_cpu_ms_per_request=0.25,
        model_cpu_ms_per_request=0.41,
        generator_rps=1200.0,
    )
    notes = {
        line.figure: line.floor_note for line in evaluate_targets(figures, steps, "tfserving-rest", 32, floor)
    }
    proxy = "plain WSGI proxy to tfserving-rest"
    assert notes["gateway CPU per proxied request, unbatched"] == f"{proxy}: 1.070 ms, misses too"
    assert notes["added p50 at 1 client"] == f"{proxy}: 0.400 ms"  # 1.4 - 1.0: the floor passes
    assert notes["throughput via gateway / direct, unbatched"] == f"{proxy}: 0.610, misses too"
    ceiling = notes["gateway batching, 32 clients: throughput / direct unbatched"]
    assert ceiling == "load generator against null endpoints: 1.200, misses too"
    assert (
        notes["embedded PyTorch, CPU per request end to end"]
        == "plain WSGI app answering without a model: 0.250 ms; "
        "plain WSGI app running the same TorchScript: 0.410 ms, misses too"
    )
    assert Floor.from_dict({"rps": 5.0, "unknown": 1}) == Floor(rps=5.0)
    assert all(line.floor_note == "" for line in evaluate_targets(figures, steps, "tfserving-rest", 32))


def test_the_floor_is_compared_with_its_own_direct_windows_when_it_has_them() -> None:
    """Measured as direct, floor, floor, direct, the floor's added p50 and ratio use those direct
    windows, not the gateway's (minutes away, on a machine that drifts by a millisecond)."""
    steps = [
        step("direct/tfserving-rest", 1, 1.0, 2.0, 900),
        step("gateway/tfserving-rest", 1, 3.0, 5.0, 300),
        step("direct/tfserving-rest", 8, 5.0, 9.0, 1000),
        step("gateway/tfserving-rest", 8, 9.0, 15.0, 350, gw_cpu=2.0),
    ]
    figures = [backend_figures(steps, "tfserving-rest", 1, 8)]
    floor = Floor(p50_ms_1_client=1.4, direct_p50_ms_1_client=0.6, rps=610.0, direct_rps=800.0)
    notes = {
        line.figure: line.floor_note for line in evaluate_targets(figures, steps, "tfserving-rest", 32, floor)
    }
    proxy = "plain WSGI proxy to tfserving-rest"
    assert notes["added p50 at 1 client"] == f"{proxy}: 0.800 ms, misses too"  # 1.4 - 0.6, not 1.4 - 1.0
    assert notes["throughput via gateway / direct, unbatched"] == f"{proxy}: 0.762"  # 610 / 800


def test_grpc_backends_are_read_against_the_grpc_proxy_floor() -> None:
    """With a gRPC floor measured, gRPC backends' lines carry it; REST backends keep the REST floor;
    results.json's nested form reads back."""
    steps = [
        *measured_pair("tfserving-rest", (1.0, 1.4), (1000, 400), gw_cpu=0.42),
        *measured_pair("tfserving-grpc", (1.2, 1.9), (1000, 380), gw_cpu=0.51),
        *measured_pair("torchserve-grpc", (2.0, 2.8), (500, 300), gw_cpu=0.55),
    ]
    backends = ("tfserving-rest", "tfserving-grpc", "torchserve-grpc")
    figures = [backend_figures(steps, b, 1, 8) for b in backends]
    raw: dict[str, object] = {
        "cpu_ms_per_request": 0.22,
        "p50_ms_1_client": 1.25,
        "direct_p50_ms_1_client": 1.0,
    }
    raw["grpc"] = {"cpu_ms_per_request": 0.31, "p50_ms_1_client": 1.5, "direct_p50_ms_1_client": 1.2}
    floor = Floor.from_dict(raw)
    assert floor.grpc == Floor(cpu_ms_per_request=0.31, p50_ms_1_client=1.5, direct_p50_ms_1_client=1.2)
    notes = {
        (line.figure, line.where): line.floor_note
        for line in evaluate_targets(figures, steps, "tfserving-rest", 32, floor)
    }
    cpu, added = "gateway CPU per proxied request, unbatched", "added p50 at 1 client"
    rest, grpc = "plain WSGI proxy to tfserving-rest", "plain WSGI proxy to tfserving-grpc"
    assert notes[(cpu, "tfserving-rest")] == f"{rest}: 0.220 ms"
    assert notes[(cpu, "tfserving-grpc")] == f"{grpc}: 0.310 ms"
    assert notes[(cpu, "torchserve-grpc")] == f"{grpc}: 0.310 ms"
    assert notes[(added, "tfserving-grpc")] == f"{grpc}: 0.300 ms"  # 1.5 - 1.2
    assert notes[(added, "tfserving-rest")] == f"{rest}: 0.250 ms"


def test_torchserve_rest_is_read_against_the_proxy_in_front_of_torchserve() -> None:
    """With the proxy measured in front of TorchServe too, TorchServe REST's lines carry that floor
    (a slower server adds its own cost to any proxy); TF Serving REST keeps its own."""
    steps = [
        *measured_pair("tfserving-rest", (1.0, 1.4), (1000, 400), gw_cpu=0.42),
        *measured_pair("torchserve-rest", (3.0, 4.1), (300, 200), gw_cpu=0.50),
    ]
    figures = [backend_figures(steps, b, 1, 8) for b in ("tfserving-rest", "torchserve-rest")]
    raw: dict[str, object] = {
        "cpu_ms_per_request": 0.22,
        "p50_ms_1_client": 1.25,
        "direct_p50_ms_1_client": 1.0,
    }
    raw["torchserve"] = {
        "cpu_ms_per_request": 0.28,
        "p50_ms_1_client": 3.7,
        "direct_p50_ms_1_client": 3.1,
        "rps": 180.0,
        "direct_rps": 300.0,
    }
    floor = Floor.from_dict(raw)
    assert floor.torchserve is not None and floor.grpc is None
    notes = {
        (line.figure, line.where): line.floor_note
        for line in evaluate_targets(figures, steps, "tfserving-rest", 32, floor)
    }
    added, ratio = "added p50 at 1 client", "throughput via gateway / direct, unbatched"
    torchserve, rest = "plain WSGI proxy to torchserve-rest", "plain WSGI proxy to tfserving-rest"
    assert notes[(added, "torchserve-rest")] == f"{torchserve}: 0.600 ms, misses too"  # 3.7 - 3.1
    assert notes[(ratio, "torchserve-rest")] == f"{torchserve}: 0.600, misses too"  # 180 / 300
    assert notes[(added, "tfserving-rest")] == f"{rest}: 0.250 ms"


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
