"""The report's charts (matplotlib, Agg), drawn only from results.json, returned as PNG bytes.

* latency p50/p95/p99 against throughput, one panel per target (the knee of each stack);
* throughput against concurrency, direct and through the gateway, with the generator's ceiling;
* the latency CDF of every target at one load;
* the gateway's Server-Timing split (backend, gateway, client + network) at that load;
* the headline's figures with their rerun intervals (a forest plot; shown in the Headline section).

Hollow markers are steps where the load generator was saturated (not server capacity).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from loadtests.backends import BACKEND_NAMES, spec
from loadtests.records import Interval, Results, SummaryRow
from loadtests.report.labels import official, target_label

__all__ = ["breakdown_chart", "cdf_chart", "headline_chart", "knee_chart", "throughput_chart"]

NULL_COLOR = "#7f7f7f"
PercentileKey = Literal["p50_ms", "p95_ms", "p99_ms"]
PERCENTILE_STYLE: dict[PercentileKey, tuple[str, str, float]] = {
    "p50_ms": ("p50", "o", 1.0),
    "p95_ms": ("p95", "s", 0.75),
    "p99_ms": ("p99", "^", 0.5),
}


def color(target: str) -> str:
    """The registry's colour of the target's backend (grey: calibration)."""
    backend = target.removeprefix("gateway/")
    return spec(backend).color if backend in BACKEND_NAMES else NULL_COLOR


def linestyle(target: str) -> str:
    return "--" if target.startswith("gateway/") and "embedded" not in target else "-"


def _plain_log(axis: Axis) -> None:
    """Log scale ticks at 1, 2, 5 x 10^k written as plain numbers (0.5, 1, 2, 5, 10 ...)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _legend(axes: Axes, **options: Any) -> None:
    """A legend when the panel has labelled lines, else a note that nothing was measured there."""
    if axes.get_legend_handles_labels()[0]:
        axes.legend(**options)
    else:
        axes.text(0.5, 0.5, "no target measured", transform=axes.transAxes, ha="center", color="#777")


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _value(estimate: Interval | None) -> float:
    value = estimate["value"] if estimate else None
    return math.nan if value is None else float(value)


def _errors(estimates: Sequence[Interval | None]) -> np.ndarray:
    """Asymmetric error bars (2, n) from estimates' intervals (0 where unknown)."""
    lows, highs = [], []
    for estimate in estimates:
        value = _value(estimate)
        low = estimate.get("low") if estimate else None
        high = estimate.get("high") if estimate else None
        lows.append(max(0.0, value - float(low)) if low is not None and not math.isnan(value) else 0.0)
        highs.append(max(0.0, float(high) - value) if high is not None and not math.isnan(value) else 0.0)
    return np.array([lows, highs])


def _serving_targets(results: Results) -> list[str]:
    return [t for t in dict.fromkeys(r["target"] for r in results["summary"]) if not t.startswith("null-")]


def _closed_rows(results: Results, target: str) -> list[SummaryRow]:
    rows = [r for r in results["summary"] if r["target"] == target and r["kind"] == "closed"]
    return sorted(rows, key=lambda r: r["users"])


def _scatter(
    axes: Axes, x: float, y: float, colour: str, marker: str, saturated: bool, alpha: float = 1.0
) -> None:
    axes.plot(
        [x],
        [y],
        marker=marker,
        linestyle="none",
        markersize=6,
        color=colour,
        markerfacecolor="white" if saturated else colour,
        alpha=alpha,
    )


def knee_chart(results: Results) -> bytes:
    """One panel per target: p50/p95/p99 (log ms) against throughput, each point a concurrency step."""
    targets = _serving_targets(results)
    columns = min(4, max(1, len(targets)))
    rows = max(1, math.ceil(len(targets) / columns))
    figure = Figure(figsize=(4.0 * columns, 3.2 * rows))
    official_tf = official(results)
    all_latencies = [
        _value(r[key]) for t in targets for r in _closed_rows(results, t) for key in PERCENTILE_STYLE
    ]
    finite = [v for v in all_latencies if v > 0 and not math.isnan(v)]
    limits = (min(finite) / 1.5, max(finite) * 1.5) if finite else (0.1, 100.0)
    for index, target in enumerate(targets):
        axes = figure.add_subplot(rows, columns, index + 1)
        closed = _closed_rows(results, target)
        paced = [r for r in results["summary"] if r["target"] == target and r["kind"] == "rate"]
        for key, (label, marker, alpha) in PERCENTILE_STYLE.items():
            for rows_, style, legend in ((closed, "-", label), (paced, "none", None)):
                if not rows_:
                    continue
                xs = [_value(r["rps"]) for r in rows_]
                ys = [_value(r[key]) for r in rows_]
                axes.errorbar(
                    xs,
                    ys,
                    yerr=_errors([r[key] for r in rows_]),
                    xerr=_errors([r["rps"] for r in rows_]) if key == "p50_ms" else None,
                    color=color(target),
                    alpha=alpha,
                    linewidth=1.2,
                    linestyle=style,
                    capsize=2,
                    label=legend,
                    marker=marker if style == "-" else "D",
                    markersize=5,
                )
                for r, x, y in zip(rows_, xs, ys, strict=True):
                    if r["saturated"]:
                        _scatter(axes, x, y, color(target), marker, True)
        for r in closed + paced:
            axes.annotate(
                r["step"].replace(" users", "u").replace(" user", "u"),
                (_value(r["rps"]), _value(r["p50_ms"])),
                textcoords="offset points",
                xytext=(3, -11),
                fontsize=7,
                color="#555",
            )
        axes.set_yscale("log")
        axes.set_ylim(*limits)
        _plain_log(axes.yaxis)
        axes.set_title(target_label(target, official_tf), fontsize=9)
        axes.set_xlabel("throughput (req/s)", fontsize=8)
        axes.set_ylabel("latency (ms, log)", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.grid(True, which="both", alpha=0.25)
        axes.set_xlim(left=0)
        if index == 0:
            _legend(axes, fontsize=7, loc="upper left")
    figure.suptitle(
        "Latency percentiles vs throughput (lines: closed-loop steps by users; diamonds: fixed-rate steps; "
        "hollow: load generator saturated; 95% intervals)",
        fontsize=11,
    )
    figure.tight_layout()
    return _png(figure)


def throughput_chart(results: Results) -> bytes:
    """Throughput against users: direct targets (left), through the gateway (right), generator ceilings."""
    figure = Figure(figsize=(12, 4.4))
    official_tf = official(results)
    panels = (
        ("direct (client -> server)", False),
        ("through the gateway (client -> gateway -> backend)", True),
    )
    ceilings = results.get("calibration", {})
    users_seen = sorted({r["users"] for r in results["summary"] if r["kind"] == "closed"})
    for index, (title, via) in enumerate(panels):
        axes = figure.add_subplot(1, 2, index + 1)
        for target in _serving_targets(results):
            if target.startswith("gateway/") != via:
                continue
            rows = _closed_rows(results, target)
            xs = [r["users"] for r in rows]
            ys = [_value(r["rps"]) for r in rows]
            axes.errorbar(
                xs,
                ys,
                yerr=_errors([r["rps"] for r in rows]),
                color=color(target),
                linestyle=linestyle(target),
                marker="o",
                markersize=5,
                capsize=2,
                label=target_label(target, official_tf),
            )
            for r, x, y in zip(rows, xs, ys, strict=True):
                if r["saturated"]:
                    _scatter(axes, x, y, color(target), "o", True)
        # The gateway is always called over REST; direct targets over REST or gRPC. A ceiling far above
        # the data would squash it: then it is written in the corner instead of drawn.
        serving = set(_serving_targets(results))
        highest = max(
            [_value(r["rps"]) for r in results["summary"] if r["kind"] == "closed" and r["target"] in serving]
            + [1.0]
        )
        far = []
        for protocol, style in (("rest", ":"), ("grpc", "-.")):
            if protocol not in ceilings or (protocol == "grpc" and via):
                continue
            ceiling = float(ceilings[protocol]["ceiling_rps"])
            if ceiling > 2.5 * highest:
                far.append(f"{protocol.upper()} {ceiling:,.0f}/s")
                continue
            axes.axhline(ceiling, color="#7f7f7f", linestyle=style, linewidth=1)
            axes.annotate(
                f"Locust ceiling, {protocol.upper()} null endpoint ({ceiling:,.0f}/s)",
                (users_seen[0] if users_seen else 1, ceiling),
                textcoords="offset points",
                xytext=(2, 3),
                fontsize=7,
                color="#555",
            )
        axes.set_xscale("log", base=2)
        if users_seen:
            axes.set_xticks(users_seen)
            axes.set_xticklabels([str(u) for u in users_seen])
        axes.set_ylim(bottom=0)
        axes.set_xlabel("concurrent users (closed loop)")
        axes.set_ylabel("throughput (req/s)")
        note = f"\nLocust ceiling (null endpoint, far above): {', '.join(far)}" if far else ""
        axes.set_title(title + note, fontsize=10)
        axes.grid(True, alpha=0.25)
        _legend(axes, fontsize=7, loc="best")
    figure.suptitle(
        "Throughput vs concurrency (hollow: load generator saturated; 95% intervals)", fontsize=11
    )
    figure.tight_layout()
    return _png(figure)


def cdf_chart(results: Results, step: str) -> bytes:
    """Latency CDF per target at ``step`` (all repetitions pooled), log-scale milliseconds."""
    figure = Figure(figsize=(12, 4.4))
    official_tf = official(results)
    for index, (title, via) in enumerate((("direct", False), ("through the gateway", True))):
        axes = figure.add_subplot(1, 2, index + 1)
        for target in _serving_targets(results):
            if target.startswith("gateway/") != via:
                continue
            samples = np.sort(
                np.concatenate(
                    [
                        np.asarray(s["latencies_ms"], dtype=float)
                        for s in results["steps"]
                        if s["target"] == target and s["step"] == step
                    ]
                    or [np.empty(0)]
                )
            )
            if not samples.size:
                continue
            fraction = np.arange(1, samples.size + 1) / samples.size
            axes.plot(
                samples,
                fraction,
                color=color(target),
                linestyle=linestyle(target),
                linewidth=1.4,
                label=f"{target_label(target, official_tf)} (n={samples.size:,})",
            )
        for level in (0.5, 0.95, 0.99):
            axes.axhline(level, color="#bbb", linewidth=0.8, linestyle=":")
        axes.set_xscale("log")
        _plain_log(axes.xaxis)
        axes.set_ylim(0, 1.0)
        axes.set_xlabel("latency (ms, log)")
        axes.set_ylabel("fraction of requests")
        axes.set_title(f"{title}, {step}", fontsize=10)
        axes.grid(True, which="both", alpha=0.25)
        _legend(axes, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    figure.suptitle(f"Latency CDF at {step} (dotted lines: p50, p95, p99)", fontsize=11)
    figure.tight_layout()
    return _png(figure)


def breakdown_chart(results: Results, step: str) -> bytes | None:
    """Median split of a gateway request: backend call, gateway's own work, client + network + HTTP."""
    rows = [
        r
        for r in results["summary"]
        if r["step"] == step and r["target"].startswith("gateway/") and "server_timing_ms" in r
    ]
    if not rows:
        return None
    official_tf = official(results)
    figure = Figure(figsize=(10, 0.55 * len(rows) + 1.4))
    axes = figure.add_subplot(1, 1, 1)
    labels = [target_label(r["target"], official_tf) for r in rows]
    backend = np.array([r["server_timing_ms"]["backend_p50"] for r in rows])
    gateway = np.array([r["server_timing_ms"]["gateway_p50"] for r in rows])
    client = np.array([r["server_timing_ms"]["client_p50"] for r in rows])
    outside = np.maximum(client - backend - gateway, 0.0)
    positions = np.arange(len(rows))
    axes.barh(positions, backend, color="#4c72b0", label="backend call (Server-Timing backend)")
    axes.barh(
        positions, gateway, left=backend, color="#dd8452", label="gateway's own work (Server-Timing gateway)"
    )
    axes.barh(
        positions,
        outside,
        left=backend + gateway,
        color="#bbbbbb",
        label="client, network, HTTP (rest of p50)",
    )
    for y, total in zip(positions, client, strict=True):
        axes.annotate(
            f"p50 {total:.2f} ms", (total, y), textcoords="offset points", xytext=(4, -3), fontsize=8
        )
    axes.set_yticks(positions)
    axes.set_yticklabels(labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(
        "milliseconds (medians; the parts are medians of each part, so they add up only approximately)"
    )
    axes.legend(fontsize=7, loc="lower right")
    axes.grid(True, axis="x", alpha=0.25)
    axes.set_title(f"Where a request through the gateway spends its time, {step}", fontsize=10)
    figure.tight_layout()
    return _png(figure)


def headline_chart(results: Results) -> bytes | None:
    """Every headline figure with its 95% rerun interval: ratios on a log scale around 1, the gateway's
    added p50 in ms around 0. Filled markers are verdicts (the interval excludes no difference)."""
    from loadtests.headline import HeadlineFigure

    figures = [HeadlineFigure.from_json(f) for f in (results.get("headline") or {}).get("figures", [])]
    panels = [
        ("ratio", "ratio (b / a; 1 = no difference)", [f for f in figures if f.kind == "ratio"], 1.0),
        (
            "difference",
            "added p50, ms (0 = no difference)",
            [f for f in figures if f.kind == "difference"],
            0.0,
        ),
    ]
    panels = [panel for panel in panels if panel[2]]
    if not panels:
        return None
    heights = [len(panel[2]) for panel in panels]
    figure = Figure(figsize=(10, 0.42 * sum(heights) + 1.6 * len(panels)))
    grid = figure.add_gridspec(len(panels), 1, height_ratios=heights)
    official_tf = official(results)
    for row, (kind, xlabel, shown, null) in enumerate(panels):
        axes = figure.add_subplot(grid[row, 0])
        positions = np.arange(len(shown))
        for y, item in zip(positions, shown, strict=True):
            decided = item.winner in (item.a, item.b)
            colour = "#4c72b0" if decided else "#999999"
            if math.isfinite(item.low) and math.isfinite(item.high):
                axes.plot([item.low, item.high], [y, y], color=colour, linewidth=2)
            axes.plot([item.value], [y], "o", color=colour, markerfacecolor=colour if decided else "white")
        axes.axvline(null, color="#c44e52", linewidth=1, linestyle="--")
        if kind == "ratio":
            axes.set_xscale("log")
            axes.xaxis.set_major_locator(LogLocator(base=2))
            axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
            axes.xaxis.set_minor_formatter(NullFormatter())
        labels = [_headline_label(item, official_tf) for item in shown]
        axes.set_yticks(positions)
        axes.set_yticklabels(labels, fontsize=7)
        axes.invert_yaxis()
        axes.set_xlabel(xlabel, fontsize=8)
        axes.grid(True, axis="x", alpha=0.25)
    figure.suptitle(
        "Headline: estimate and 95% interval for a rerun (filled: the interval excludes no difference)",
        fontsize=10,
    )
    figure.tight_layout()
    return _png(figure)


def _headline_label(item: Any, official_tf: bool | None) -> str:
    """What a headline row compares, in the report's target names."""
    name = lambda target: target_label(target, official_tf)  # noqa: E731 - a short alias
    if item.pair.startswith("harness check"):
        target = item.pair.removeprefix("harness check: ")
        measured = "throughput" if item.figure.endswith("throughput") else "p50"
        return f"{name(target)}: Locust / independent client, {measured} at {item.step}"
    if item.pair.startswith("gateway cost"):
        what = "added p50" if item.kind == "difference" else f"{item.figure}, via gateway / direct"
        return f"{name(item.a)}: {what}, {item.step}"
    return f"{name(item.b)} / {name(item.a)}: {item.figure}, {item.step}"
