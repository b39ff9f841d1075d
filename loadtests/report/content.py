"""The report's Markdown: ``templates/report.md`` filled from results.json alone (so a recorded run can
be re-rendered). Here: the cells of its tables, formatted; the template holds the prose and the layout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loadtests.records import ComparisonRow, Results, SummaryRow
from loadtests.report.headline_text import headline_rows, headline_sentences, method_text
from loadtests.report.labels import fmt_estimate, fmt_ms, fmt_rps, official, target_label
from loadtests.report.templating import lenient, template_environment

__all__ = ["render", "title"]

BUSY_OTHER_CPU = 25.0
"""CPU (% of one core) used by processes outside the comparison from which a step is marked noisy."""
METRIC_NAMES = {"rps": "throughput (req/s)", "p50_ms": "p50 (ms)", "p95_ms": "p95 (ms)", "p99_ms": "p99 (ms)"}


def title(results: Results) -> str:
    return f"MNIST serving comparison, {results.get('created', '')}"


def _label(results: Results, name: str) -> str:
    return target_label(name, official(results))


def _pct(value: Any) -> str:
    return "-" if not isinstance(value, int | float) or value != value else f"{value:.0f}%"


def _tfserving_text(results: Results) -> str:
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


def _ratio(value: Any) -> str:
    """The within-run ratio with its interval (older results hold a bare number)."""
    if isinstance(value, int | float):
        return f"{value:.2f}"
    return fmt_estimate(value, "ratio") if isinstance(value, dict) else "-"


def _flags(row: SummaryRow) -> str:
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


def _server_cpu(row: SummaryRow) -> str:
    cost = row.get("server_cpu_ms_per_request")
    share = _pct(row.get("target_server_cpu_percent"))
    return f"{share} ({cost:.2f})" if isinstance(cost, int | float) and cost == cost else share


_TIMING = ("client_p50", "backend_p50", "gateway_p50")
_TORCHSERVE_NOT_STARTED = "TorchServe (not started by this run)"
RESULTS_HEADER = (
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
)


def _summary_row(results: Results, row: SummaryRow) -> list[str]:
    return [
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


def _comparison_row(results: Results, c: ComparisonRow) -> list[str]:
    kind = "rps" if c["metric"] == "rps" else "ms"
    unnamed = "- (saturated)" if c["saturated"] else "- (overlap)"
    winner = _label(results, c["winner"]) if c["winner"] else unnamed
    return [
        c["pair"],
        c["step"],
        METRIC_NAMES[c["metric"]],
        fmt_estimate(c["a_value"], kind),
        fmt_estimate(c["b_value"], kind),
        _ratio(c.get("ratio_b_over_a")),
        winner,
    ]


def _pinning(pin: Mapping[str, Any]) -> str:
    if pin.get("mode") == "off":
        return f"not pinned ({pin.get('note') or 'off'})"
    return f"servers on CPUs {pin.get('server_cpus')}, Locust on CPUs {pin.get('generator_cpus')}"


def _tables(results: Results) -> dict[str, Any]:
    """Every table's rows, each a list of formatted cells."""
    label = lambda name: _label(results, name)  # noqa: E731 - a short alias for the rows below
    summary = results.get("summary", [])
    return {
        "comparisons": [_comparison_row(results, c) for c in results.get("comparisons", [])],
        "serving_rows": [_summary_row(results, r) for r in summary if not r["target"].startswith("null-")],
        "null_rows": [_summary_row(results, r) for r in summary if r["target"].startswith("null-")],
        "gateway_rows": [
            [
                label(r["backend"]),
                r["step"],
                fmt_estimate(r["added_p50_ms"], signed=True),
                fmt_estimate(r["added_p99_ms"], signed=True),
                fmt_estimate(r["throughput_ratio"], "ratio"),
                "generator saturated" if r["saturated"] else "",
            ]
            for r in results.get("gateway_added", [])
        ],
        "timing_rows": [
            [label(r["target"]), r["step"], *(fmt_ms(r["server_timing_ms"][k]) for k in _TIMING)]
            for r in summary
            if "server_timing_ms" in r
        ],
        "calibration_rows": [
            [
                protocol.upper(),
                fmt_rps(c["ceiling_rps"]),
                c["at_step"],
                fmt_ms(c.get("p50_ms_at_1_user")),
                _pct(c.get("generator_cpu_peak")),
            ]
            for protocol, c in results.get("calibration", {}).items()
        ],
        "crosscheck_rows": [
            [
                label(c["target"]),
                fmt_ms(c.get("p50_ms")),
                fmt_ms(c.get("locust_p50_ms")),
                fmt_rps(c.get("rps")),
                fmt_rps(c.get("locust_rps")),
            ]
            for c in results.get("crosscheck", [])
        ],
        "skipped_rows": [
            [label(name), info.get("skipped_reason") or ""]
            for name, info in results.get("targets", {}).items()
            if not info.get("available")
        ],
        "error_rows": [
            [label(r["target"]), r["step"], reason, str(count)]
            for r in summary
            for reason, count in r.get("error_reasons", {}).items()
        ],
        "outside": [f"{label(k)}: {v}" for k, v in results.get("failures_outside_windows", {}).items()],
    }


def render(
    results: Results,
    charts: Sequence[tuple[str, str]],
    opening: str | None = None,
    headline_chart: str | None = None,
) -> str:
    """The whole report as Markdown; ``charts`` are (title, file) pairs, ``opening`` the verdict's
    section (already Markdown) when the run searched for capacity, ``headline_chart`` the headline's
    chart file."""
    env = lenient(results.get("environment", {}))
    plan = lenient(results.get("plan", {}).get("settings", {}))
    settings = results.get("settings", {})
    started = results.get("servers", {}).get("started", {})
    values = {
        "title": title(results),
        "opening": opening.rstrip() if opening else "",
        "env": env,
        "libs": lenient(env.get("libraries", {})),
        "device": lenient(env.get("device", {})),
        "gpus": ", ".join(env.get("device", {}).get("gpu_names", [])),
        "pinning": _pinning(env.get("pinning", {})),
        "tfserving_text": _tfserving_text(results),
        "torchserve": started.get("torchserve", {}).get("implementation", _TORCHSERVE_NOT_STARTED),
        "token": results.get("endpoints", {}).get("torchserve_key_file"),
        "generator": lenient(results.get("generator", {})),
        "config": lenient(results.get("config", {})),
        "plan": plan,
        "payloads": lenient(results.get("payloads", {})),
        "headline_sentences": headline_sentences(results, lambda name: _label(results, name)),
        "headline_rows": headline_rows(results, lambda name: _label(results, name)),
        "method": method_text(results),
        "headline_chart": headline_chart,
        "rounds": (results.get("headline") or {}).get("rounds", plan.get("repetitions", 1)),
        "results_header": RESULTS_HEADER,
        "results_numeric": (0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0),
        "ceiling_fraction": settings.get("ceiling_fraction", 0.8),
        "saturation_cpu": settings.get("saturation_cpu_percent", 80),
        "charts": charts,
        "stand_in": official(results) is False,
        "short_run": plan.get("repetitions", 1) < 3,
        **_tables(results),
    }
    return template_environment().get_template("report.md").render(values) + "\n"
