"""The summary printed at the end of a run (and of ``make demo``): plain text, aligned columns
(``templates/summary.txt``; here the cells of its tables, formatted)."""

from __future__ import annotations

from loadtests.records import ComparisonRow, Results, SummaryRow
from loadtests.report.content import BUSY_OTHER_CPU
from loadtests.report.headline_text import headline_rows, headline_sentences, method_text
from loadtests.report.labels import fmt_estimate, fmt_ms, fmt_rps, official, target_label
from loadtests.report.templating import lenient, template_environment
from loadtests.report.verdict import sentences, verdict

__all__ = ["summary_text"]

METRICS = ("rps", "p50_ms", "p99_ms")


def _tfserving(results: Results) -> str:
    tf_official = official(results)
    if tf_official is False:
        return "the project's stand-in, NOT TensorFlow Serving"
    if tf_official:
        return "official tensorflow_model_server"
    return f"unverified ({results.get('tfserving', {}).get('how')})"


def _cpu(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"


def _flags(row: SummaryRow) -> str:
    other = row.get("other_cpu_percent")
    flags = (
        ("generator saturated", row.get("saturated")),
        ("short", row.get("short")),
        ("machine busy", isinstance(other, int | float) and other >= BUSY_OTHER_CPU),
    )
    return ", ".join(flag for flag, on in flags if on)


def summary_text(results: Results) -> str:
    tf_official = official(results)
    label = lambda name: target_label(name, tf_official)  # noqa: E731 - a short alias for the rows below
    env = lenient(results.get("environment", {}))
    pin = env["pinning"] or {}
    view = verdict(results)
    values = {
        "env": env,
        "device": (env["device"] or {}).get("kind", "cpu"),
        "pinning": f"servers on CPUs {pin.get('server_cpus')}, Locust on CPUs {pin.get('generator_cpus')}"
        if pin.get("mode") != "off"
        else "not pinned",
        "tfserving": _tfserving(results),
        "implementation": results.get("tfserving", {}).get("implementation"),
        "view": view,
        "sentences": sentences(view) if view is not None else [],
        "capacity": [
            [
                r.label,
                r.shown,
                f"{fmt_rps(r.low)} - {fmt_rps(r.high)}",
                _cpu(r.server_cpu),
                _cpu(r.gateway_cpu),
            ]
            for r in (view.rows + view.calibration if view is not None else [])
        ],
        "rows": [
            [
                label(row["target"]),
                row["step"],
                fmt_estimate(row["rps"], "rps"),
                fmt_estimate(row["p50_ms"]),
                fmt_ms(row["p99_ms"].get("value")),
                str(row["errors"]),
                _flags(row),
            ]
            for row in results.get("summary", [])
        ],
        "added": [
            [
                label(r["backend"]),
                r["step"],
                fmt_estimate(r["added_p50_ms"], signed=True),
                fmt_estimate(r["added_p99_ms"], signed=True).split(" [")[0],
                fmt_estimate(r["throughput_ratio"], "ratio"),
            ]
            for r in results.get("gateway_added", [])
        ],
        "ceilings": [
            f"{p.upper()} {fmt_rps(c['ceiling_rps'])} req/s at {c['at_step']}"
            for p, c in results.get("calibration", {}).items()
        ],
        "crosschecks": [
            f"{label(c['target'])} {fmt_ms(c.get('p50_ms'))} ({fmt_ms(c.get('locust_p50_ms'))})"
            for c in results.get("crosscheck", [])
        ],
        "skipped": [
            f"{name} ({info.get('skipped_reason')})"
            for name, info in results.get("targets", {}).items()
            if not info.get("available")
        ],
        "winners": _winner_rows(results),
        "headline": headline_rows(results, label),
        "headline_sentences": headline_sentences(results, label),
        "method": method_text(results),
    }
    return template_environment().get_template("summary.txt").render(values)


def _cell(row: ComparisonRow) -> str:
    if not row["winner"]:
        return "generator saturated" if row["saturated"] and row["metric"] == "rps" else "no difference"
    ratio = row.get("ratio_b_over_a")
    value = ratio.get("value") if isinstance(ratio, dict) else ratio
    if not isinstance(value, int | float) or value <= 0:  # fall back to the medians' ratio
        a, b = row["a_value"]["value"], row["b_value"]["value"]
        if not a or not b:
            return "-"
        value = b / a
    factor = max(value, 1 / value)  # within-run ratio PyTorch / TF, as "how many times better"
    side = "TF" if row["winner"] == row["a"] else "PyTorch"
    return f"{side} {factor:.2f}x"


def _winner_rows(results: Results) -> list[list[str]]:
    """One row per pair and step: who wins on throughput, p50, p99 (and by what factor)."""
    comparisons = results.get("comparisons", [])
    keys = list(dict.fromkeys((c["pair"], c["step"]) for c in comparisons))
    by_key = {(c["pair"], c["step"], c["metric"]): c for c in comparisons}
    return [
        [pair, step, *(_cell(by_key[(pair, step, m)]) if (pair, step, m) in by_key else "-" for m in METRICS)]
        for pair, step in keys
    ]
