"""The summary printed at the end of a run (and of ``make demo``): plain text, aligned columns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loadtests.report.labels import fmt_estimate, fmt_ms, fmt_rps, official, target_label
from loadtests.report.verdict import sentences, verdict

__all__ = ["summary_text", "text_table", "winners_table"]

METRICS = ("rps", "p50_ms", "p99_ms")


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] = ()) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            str(c).rjust(w) if i < len(right) and right[i] else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def summary_text(results: Mapping[str, Any]) -> str:
    tf_official = official(results)
    env = results.get("environment", {})
    pin = env.get("pinning", {})
    tf = results.get("tfserving", {})
    lines = [
        f"Comparison on {env.get('cores')} x {env.get('cpu_model')} "
        f"({env.get('device', {}).get('kind', 'cpu')}), "
        f"load average {env.get('load_average_at_start')} -> {env.get('load_average_at_end')}; "
        + (
            f"servers on CPUs {pin.get('server_cpus')}, Locust on CPUs {pin.get('generator_cpus')}"
            if pin.get("mode") != "off"
            else "not pinned"
        ),
        "TF Serving = "
        + (
            "the project's stand-in, NOT TensorFlow Serving"
            if tf_official is False
            else "official tensorflow_model_server"
            if tf_official
            else f"unverified ({tf.get('how')})"
        )
        + f"  [{tf.get('implementation')}]",
        "",
    ]
    view = verdict(results)
    if view is not None:
        lines += [
            f"Capacity under p{view.quantile:g} <= {view.slo_ms:g} ms (open loop):",
            *sentences(view),
            "",
        ]
        lines.append(
            text_table(
                ["target", "capacity req/s", "95% interval", "server CPU-s/1k req", "gateway CPU-s/1k req"],
                [
                    [
                        r.label,
                        r.shown,
                        f"{fmt_rps(r.low)} - {fmt_rps(r.high)}",
                        "-" if r.server_cpu != r.server_cpu else f"{r.server_cpu:.2f}",
                        "-" if r.gateway_cpu != r.gateway_cpu else f"{r.gateway_cpu:.2f}",
                    ]
                    for r in view.rows + view.calibration
                ],
                right=(False, True, True, True, True),
            )
        )
        lines.append("")
    rows = []
    for row in results.get("summary", []):
        flags = []
        if row.get("saturated"):
            flags.append("generator saturated")
        if row.get("short"):
            flags.append("short")
        rows.append(
            [
                target_label(row["target"], tf_official),
                row["step"],
                fmt_estimate(row["rps"], "rps"),
                fmt_estimate(row["p50_ms"]),
                fmt_ms(row["p99_ms"].get("value")),
                str(row["errors"]),
                ", ".join(flags),
            ]
        )
    lines.append(
        text_table(
            ["target", "step", "req/s [95% CI]", "p50 ms [95% CI]", "p99 ms", "errors", "flags"],
            rows,
            right=(False, False, True, True, True, True, False),
        )
    )
    added = results.get("gateway_added", [])
    if added:
        lines += ["", "Gateway-added latency (gateway - direct, same run):"]
        lines.append(
            text_table(
                ["backend", "step", "added p50 ms [95% CI]", "added p99 ms", "throughput gw/direct"],
                [
                    [
                        target_label(r["backend"], tf_official),
                        r["step"],
                        fmt_estimate(r["added_p50_ms"], signed=True),
                        fmt_estimate(r["added_p99_ms"], signed=True).split(" [")[0],
                        fmt_estimate(r["throughput_ratio"], "ratio"),
                    ]
                    for r in added
                ],
                right=(False, False, True, True, True),
            )
        )
    calibration = results.get("calibration", {})
    if calibration:
        lines += [
            "",
            "Locust ceiling (null endpoints): "
            + ", ".join(
                f"{p.upper()} {fmt_rps(c['ceiling_rps'])} req/s at {c['at_step']}"
                for p, c in calibration.items()
            ),
        ]
    checks = results.get("crosscheck", [])
    if checks:
        lines.append(
            "Cross-check, independent client at 1 connection (p50 ms, Locust 1-user p50 in brackets): "
            + ", ".join(
                f"{target_label(c['target'], tf_official)} {fmt_ms(c.get('p50_ms'))} "
                f"({fmt_ms(c.get('locust_p50_ms'))})"
                for c in checks
            )
        )
    skipped = [
        f"{name} ({info.get('skipped_reason')})"
        for name, info in results.get("targets", {}).items()
        if not info.get("available")
    ]
    if skipped:
        lines += ["", "Skipped: " + "; ".join(skipped)]
    lines += [
        "",
        "Winners, TensorFlow side vs PyTorch side (named only where the 95% intervals do not overlap; "
        "factor: the within-run ratio):",
    ]
    lines.append(winners_table(results) or "  (no pair measured)")
    return "\n".join(lines)


def _cell(results: Mapping[str, Any], row: Mapping[str, Any]) -> str:
    if not row["winner"]:
        return "generator saturated" if row["saturated"] and row["metric"] == "rps" else "overlap"
    ratio = row.get("ratio_b_over_a")
    value = ratio.get("value") if isinstance(ratio, dict) else ratio
    if not isinstance(value, int | float) or value <= 0:  # fall back to the medians' ratio
        value = row["b_value"]["value"] / row["a_value"]["value"]
    factor = max(value, 1 / value)  # within-run ratio PyTorch / TF, as "how many times better"
    side = "TF" if row["winner"] == row["a"] else "PyTorch"
    return f"{side} {factor:.2f}x"


def winners_table(results: Mapping[str, Any]) -> str:
    """One row per pair and step: who wins on throughput, p50, p99 (and by what factor)."""
    comparisons = results.get("comparisons", [])
    keys = list(dict.fromkeys((c["pair"], c["step"]) for c in comparisons))
    by_key = {(c["pair"], c["step"], c["metric"]): c for c in comparisons}
    rows = [
        [
            pair,
            step,
            *(_cell(results, by_key[(pair, step, m)]) if (pair, step, m) in by_key else "-" for m in METRICS),
        ]
        for pair, step in keys
    ]
    if not rows:
        return ""
    return text_table(["pair (TF side vs PyTorch side)", "step", "req/s", "p50", "p99"], rows)
