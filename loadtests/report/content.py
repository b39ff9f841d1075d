"""The report's content, built from results.json alone (so a recorded run can be re-rendered)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loadtests.report.document import Block, Heading, Paragraph, Table
from loadtests.report.labels import fmt_estimate, fmt_ms, fmt_rps, official, target_label

__all__ = ["blocks", "headline_lines", "title"]

BUSY_OTHER_CPU = 25.0
"""CPU (% of one core) used by processes outside the comparison from which a step is marked noisy."""
METRIC_NAMES = {"rps": "throughput (req/s)", "p50_ms": "p50 (ms)", "p95_ms": "p95 (ms)", "p99_ms": "p99 (ms)"}


def title(results: Mapping[str, Any]) -> str:
    return f"MNIST serving comparison, {results.get('created', '')}"


def _label(results: Mapping[str, Any], name: str) -> str:
    return target_label(name, official(results))


def _pct(value: Any) -> str:
    return "-" if not isinstance(value, int | float) or value != value else f"{value:.0f}%"


def _tfserving_text(results: Mapping[str, Any]) -> str:
    tf = results.get("tfserving", {})
    if tf.get("official") is False:
        return (
            f"**TF Serving here is the project's TF-Serving-compatible stand-in, not TensorFlow Serving** "
            f"(`{tf.get('implementation')}`): same REST/gRPC protocol and SavedModel, but a Python server; "
            "its figures say nothing about `tensorflow_model_server` itself."
        )
    if tf.get("official") is True:
        return f"TF Serving: the official binary (`{tf.get('implementation')}`)."
    return f"TF Serving: {tf.get('implementation')} — {tf.get('how', 'unverified')}."


def _run_paragraph(results: Mapping[str, Any]) -> Paragraph:
    env = results.get("environment", {})
    libs = env.get("libraries", {})
    pin = env.get("pinning", {})
    device = env.get("device", {})
    config = results.get("config", {})
    settings = results.get("plan", {}).get("settings", {})
    started = results.get("servers", {}).get("started", {})
    torchserve = started.get("torchserve", {}).get("implementation", "TorchServe (not started by this run)")
    pinning = (
        f"servers on CPUs {pin.get('server_cpus')}, Locust on CPUs {pin.get('generator_cpus')}"
        if pin.get("mode") != "off"
        else f"not pinned ({pin.get('note') or 'off'})"
    )
    payloads = results.get("payloads", {})
    generator = results.get("generator", {})
    token = results.get("endpoints", {}).get("torchserve_key_file")
    gpus = ", ".join(device.get("gpu_names", []))
    rates = settings.get("rates")
    lines = [
        f"- Machine: {env.get('cores')} x {env.get('cpu_model')} (usable CPUs {env.get('usable_cpus')}), "
        f"{env.get('memory_gib')} GiB, {env.get('os')}, device: {device.get('kind', 'cpu')} {gpus}".rstrip()
        + ".",
        f"- Load average at start {env.get('load_average_at_start')}, "
        f"at end {env.get('load_average_at_end')} (other work on a shared machine shows up here).",
        f"- {_tfserving_text(results)}",
        f"- TorchServe: {torchserve}; token auth "
        + (
            "on (bearer key on every request, direct and via the gateway)."
            if token
            else "off or static token."
        ),
        f"- Pinning: {pinning}. Load generator: {generator.get('tool')}, {generator.get('mode')}; "
        f"Locust {libs.get('locust')}, grpcio {libs.get('grpcio')}.",
        f"- Libraries: TensorFlow {libs.get('tensorflow')}, torch {libs.get('torch')}, "
        f"torchserve {libs.get('torchserve')}, Flask {libs.get('flask')}, granian {libs.get('granian')}; "
        f"Python {env.get('python')}, Java {env.get('java')}.",
        f"- Load: preset `{config.get('preset')}`, {settings.get('repetitions')} repetition(s) interleaved, "
        f"closed-loop steps {settings.get('users')} users"
        + (f", fixed rates {rates} req/s" if rates else "")
        + f"; each step >= {settings.get('min_requests')} measured requests and "
        f">= {settings.get('step_s')} s "
        f"(at most {settings.get('max_step_s')} s) after {settings.get('settle_s')} s of settling; "
        f"warm-up {settings.get('warmup_requests')} requests or {settings.get('warmup_s')} s per target, "
        "discarded.",
        f"- Payload: {payloads.get('digits')} real MNIST test digits that both models of version "
        f"{payloads.get('reference_version')} classify correctly, one per request; every answer checked "
        "(status, shape, digit; through the gateway also the serving backend).",
    ]
    return Paragraph("\n".join(lines))


def headline_lines(results: Mapping[str, Any]) -> list[str]:
    """One line per pair: the metrics with a winner (intervals apart), or "no clear winner"."""
    out = []
    for pair in dict.fromkeys(c["pair"] for c in results.get("comparisons", [])):
        rows = [c for c in results["comparisons"] if c["pair"] == pair]
        wins = [c for c in rows if c["winner"]]
        if not wins:
            out.append(f"{pair}: no clear winner (95% intervals overlap on every metric and step)")
            continue
        parts = []
        for c in wins:
            kind = "rps" if c["metric"] == "rps" else "ms"
            fmt = fmt_rps if kind == "rps" else fmt_ms
            mine, other = ("a_value", "b_value") if c["winner"] == c["a"] else ("b_value", "a_value")
            best, rest = c[mine]["value"], c[other]["value"]
            ratio = c.get("ratio_b_over_a")
            within = ratio.get("value") if isinstance(ratio, dict) else ratio
            if isinstance(within, int | float) and within > 0:  # within-run ratio, as the protocol asks
                factor = max(within, 1 / within)
            else:
                factor = max(best, rest) / min(best, rest) if min(best, rest) > 0 else float("nan")
            verb = "higher" if kind == "rps" else "lower"
            parts.append(
                f"{METRIC_NAMES[c['metric']]} at {c['step']}: {_label(results, c['winner'])} "
                f"({fmt(best)} vs {fmt(rest)}, {factor:.2f}x {verb})"
            )
        out.append(f"{pair}: " + "; ".join(parts))
    return out


def _ratio(value: Any) -> str:
    """The within-run ratio with its interval (older results hold a bare number)."""
    if isinstance(value, int | float):
        return f"{value:.2f}"
    return fmt_estimate(value, "ratio") if isinstance(value, dict) else "-"


def _verdict(results: Mapping[str, Any]) -> list[Block]:
    rows = [
        [
            c["pair"],
            c["step"],
            METRIC_NAMES[c["metric"]],
            fmt_estimate(c["a_value"], "rps" if c["metric"] == "rps" else "ms"),
            fmt_estimate(c["b_value"], "rps" if c["metric"] == "rps" else "ms"),
            _ratio(c.get("ratio_b_over_a")),
            _label(results, c["winner"])
            if c["winner"]
            else ("- (saturated)" if c["saturated"] else "- (overlap)"),
        ]
        for c in results.get("comparisons", [])
    ]
    text = "\n".join(f"- {line}" for line in headline_lines(results)) or "No pair of targets was measured."
    return [
        Heading("Verdict: TensorFlow side vs PyTorch side"),
        Paragraph(
            "A winner is named only where the two 95% intervals do not overlap; throughput is not compared "
            "at steps where the load generator was saturated. REST vs REST, direct, is the headline; gRPC is "
            "reported separately."
        ),
        Paragraph(text),
        Table(
            [
                "pair",
                "step",
                "metric",
                "TensorFlow side [95% CI]",
                "PyTorch side [95% CI]",
                "PyTorch / TF",
                "winner",
            ],
            rows,
            numeric=(False, False, False, True, True, True, False),
        ),
    ]


def _flags(row: Mapping[str, Any]) -> str:
    flags = []
    if row.get("saturated"):
        flags.append("SATURATED generator: " + "; ".join(row.get("saturation", [])))
    if row.get("short"):
        flags.append("short (< min requests)")
    if row.get("requests", 0) < 662:
        flags.append("p99 from < 662 samples")
    other = row.get("other_cpu_percent")
    if isinstance(other, int | float) and other >= BUSY_OTHER_CPU:
        flags.append(f"machine busy: other processes used {other:.0f}% CPU")
    return ", ".join(flags)


def _server_cpu(row: Mapping[str, Any]) -> str:
    cost = row.get("server_cpu_ms_per_request")
    share = _pct(row.get("target_server_cpu_percent"))
    return f"{share} ({cost:.2f})" if isinstance(cost, int | float) and cost == cost else share


def _results_table(results: Mapping[str, Any], calibration: bool) -> Table:
    rows = []
    for row in results.get("summary", []):
        if row["target"].startswith("null-") != calibration:
            continue
        rows.append(
            [
                _label(results, row["target"]),
                row["step"],
                fmt_estimate(row["rps"], "rps"),
                fmt_estimate(row["p50_ms"]),
                fmt_estimate(row["p95_ms"]),
                fmt_estimate(row["p99_ms"]),
                f"{row['requests']:,}",
                str(row["errors"]),
                _server_cpu(row),
                _pct(row.get("generator_cpu_peak")),
                _pct(row.get("other_cpu_percent")),
                _flags(row),
            ]
        )
    return Table(
        [
            "target",
            "step",
            "req/s [95% CI]",
            "p50 ms [95% CI]",
            "p95 ms [95% CI]",
            "p99 ms [95% CI]",
            "requests",
            "errors",
            "server CPU (ms/req)",
            "Locust CPU",
            "other CPU",
            "flags",
        ],
        rows,
        caption="medians over repetitions; intervals: two-level bootstrap (repetitions, then requests or "
        "time bins); CPU in % of one core: server = the target's server processes (gateway + backend via "
        "the gateway), with their CPU milliseconds per correct answer; Locust = busiest load generator "
        "process; other = everything else on the machine",
        numeric=(False, False, True, True, True, True, True, True, True, True, True, False),
    )


def _gateway_blocks(results: Mapping[str, Any]) -> list[Block]:
    rows = [
        [
            _label(results, row["backend"]),
            row["step"],
            fmt_estimate(row["added_p50_ms"], signed=True),
            fmt_estimate(row["added_p99_ms"], signed=True),
            fmt_estimate(row["throughput_ratio"], "ratio"),
            "generator saturated" if row["saturated"] else "",
        ]
        for row in results.get("gateway_added", [])
    ]
    timing = [
        [
            _label(results, row["target"]),
            row["step"],
            fmt_ms(row["server_timing_ms"]["client_p50"]),
            fmt_ms(row["server_timing_ms"]["backend_p50"]),
            fmt_ms(row["server_timing_ms"]["gateway_p50"]),
        ]
        for row in results.get("summary", [])
        if "server_timing_ms" in row
    ]
    blocks: list[Block] = [
        Heading("Gateway-added latency per backend"),
        Paragraph(
            "Gateway minus direct, computed within each repetition (same run, same step) and then "
            "summarised; throughput ratio = gateway / direct. The client always speaks REST to the gateway, "
            "so for the gRPC backends the difference also contains REST-vs-gRPC client costs."
        ),
        Table(
            [
                "backend",
                "step",
                "added p50 ms [95% CI]",
                "added p99 ms [95% CI]",
                "throughput gateway/direct",
                "note",
            ],
            rows,
            numeric=(False, False, True, True, True, False),
        ),
    ]
    if timing:
        blocks += [
            Heading("Where a gateway request spends its time (Server-Timing medians)", 3),
            Table(
                ["via gateway", "step", "client p50 ms", "backend call p50 ms", "gateway's own p50 ms"],
                timing,
                numeric=(False, False, True, True, True),
            ),
        ]
    return blocks


def _calibration_blocks(results: Mapping[str, Any]) -> list[Block]:
    calibration = results.get("calibration", {})
    rows = [
        [
            protocol.upper(),
            fmt_rps(c["ceiling_rps"]),
            c["at_step"],
            fmt_ms(c.get("p50_ms_at_1_user")),
            _pct(c.get("generator_cpu_peak")),
        ]
        for protocol, c in calibration.items()
    ]
    text = (
        "Locust against endpoints that do no work (`python -m loadtests.nullserver`), measured first, with "
        "the same payloads and checks. Its best throughput is the harness's ceiling on this machine: a step "
        "at "
        f">= {results.get('settings', {}).get('ceiling_fraction', 0.8):.0%} of it, or with Locust at >= "
        f"{results.get('settings', {}).get('saturation_cpu_percent', 80):.0f}% CPU, is flagged as saturated."
    )
    if not rows:
        text = "No calibration in this run (--no-calibration, or the null endpoints did not start)."
    blocks: list[Block] = [
        Heading("Load generator calibration (null endpoints)"),
        Paragraph(text),
        Table(
            ["client protocol", "ceiling req/s", "at step", "p50 ms at 1 user", "Locust CPU"],
            rows,
            numeric=(False, True, False, True, True),
        ),
    ]
    checks = results.get("crosscheck", [])
    if checks:
        blocks += [
            Heading("Cross-check with an independent client", 3),
            Paragraph(
                "The same request bytes and checks from one `http.client` keep-alive connection in one "
                "thread (no Locust, no gevent), right after the Locust run, beside Locust's 1-user step of "
                "the same target. Close figures mean the harness is not what is being measured."
            ),
            Table(
                [
                    "target",
                    "independent p50 ms",
                    "Locust p50 ms (1 user)",
                    "independent req/s",
                    "Locust req/s",
                ],
                [
                    [
                        _label(results, c["target"]),
                        fmt_ms(c.get("p50_ms")),
                        fmt_ms(c.get("locust_p50_ms")),
                        fmt_rps(c.get("rps")),
                        fmt_rps(c.get("locust_rps")),
                    ]
                    for c in checks
                ],
                numeric=(False, True, True, True, True),
            ),
        ]
    return blocks


def _problems(results: Mapping[str, Any]) -> list[Block]:
    skipped = [
        [_label(results, name), info.get("skipped_reason") or ""]
        for name, info in results.get("targets", {}).items()
        if not info.get("available")
    ]
    errors = [
        [_label(results, row["target"]), row["step"], reason, str(count)]
        for row in results.get("summary", [])
        for reason, count in row.get("error_reasons", {}).items()
    ]
    outside = results.get("failures_outside_windows", {})
    blocks: list[Block] = [Heading("Skipped targets and failures")]
    blocks.append(
        Table(["skipped target", "reason"], skipped)
        if skipped
        else Paragraph("Every selected target answered the preflight request correctly; none was skipped.")
    )
    blocks.append(
        Table(["target", "step", "failure", "count"], errors, numeric=(False, False, False, True))
        if errors
        else Paragraph("No failed request inside any measurement window.")
    )
    if outside:
        blocks.append(
            Paragraph(
                "Failures outside measurement windows (warm-up, settling, drains): "
                + ", ".join(f"{_label(results, k)}: {v}" for k, v in outside.items())
            )
        )
    return blocks


def _method(results: Mapping[str, Any]) -> list[Block]:
    settings = results.get("plan", {}).get("settings", {})
    reps = settings.get("repetitions", 1)
    lines = [
        "- Timings are raw `time.perf_counter` durations per request in float milliseconds, recorded from "
        "Locust's request events (FastHttpUser measures around the request and the body download; gRPC users "
        "time the call). Locust's own statistics round below 100 ms to whole milliseconds and are not used.",
        "- A step's window opens after the ramp and settling and closes when the step ends; only requests "
        "that started and finished inside it count. Throughput = correct answers / window length.",
        f"- {reps} repetition(s); the target order reverses every repetition (A B C, C B A, ...). Figures "
        "are medians over repetitions with 95% intervals from a two-level bootstrap; gateway-added figures "
        "are differences within the same repetition.",
        "- Closed loop: each user sends its next request when the previous answer arrives, so latency and "
        "throughput are coupled; fixed-rate steps (if any) are paced users and turn closed-loop past "
        "saturation (coordinated omission: their tail latencies are then optimistic).",
        "- Capacity under the SLO (the first section): open loop, Poisson arrivals handed to a pool of "
        "users, latency counted from each arrival; a bounded search over offered rates per target and "
        "repetition, each step judged on its p99, errors and sent rate (docs/benchmarking.md).",
    ]
    departures = [
        "- All servers run for the whole comparison (started once) instead of one stack at a time; the idle "
        "ones use little CPU (the server CPU column shows the measured target's processes).",
        "- On a machine with few cores the gateway and its backend share the servers' cores, and the machine "
        "may be shared with other work (the 'other CPU' column and the load averages show it).",
        "- The independent cross-check uses Python's `http.client` at one connection (it checks every "
        "answer's digit, which `wrk` cannot), and only for the REST servers.",
    ]
    if official(results) is False:
        departures.append(
            "- TF Serving is the project's stand-in (Python around the SavedModel), not TensorFlow Serving's "
            "C++ server: the TF-side numbers are the stand-in's."
        )
    if settings.get("min_requests", 1000) < 1000 or reps < 3:
        departures.append(
            f"- This run used {settings.get('min_requests')} requests per step and {reps} repetition(s), "
            "below "
            "the protocol's 1,000 and 3 (short demo/smoke run): intervals are wide and a p99 from fewer than "
            "662 samples is unreliable."
        )
    return [
        Heading("Method"),
        Paragraph("\n".join(lines)),
        Heading("Departures from the protocol", 3),
        Paragraph("\n".join(departures)),
        Paragraph(
            "Files: `results.json` (every figure, every raw latency per step, environment), "
            "`raw/samples.json` (every request incl. warm-up), `raw/events.jsonl` (phase windows), "
            "`raw/locust.log`, `plan.json`, "
            "`servers/` (server logs when started by this run), `charts/*.png`."
        ),
    ]


def blocks(results: Mapping[str, Any], charts: Sequence[Block], opening: Sequence[Block] = ()) -> list[Block]:
    out: list[Block] = [
        Heading(title(results), 1),
        *opening,
        Heading("This run"),
        _run_paragraph(results),
        *_verdict(results),
        Heading("Results per target"),
        _results_table(results, calibration=False),
        *_gateway_blocks(results),
        *_calibration_blocks(results),
    ]
    if any(row["target"].startswith("null-") for row in results.get("summary", [])):
        out.append(_results_table(results, calibration=True))
    out += [Heading("Charts"), *charts, *_problems(results), *_method(results)]
    return out
