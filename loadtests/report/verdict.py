"""The report's opening: capacity under the latency SLO per target, one chart and a few plain sentences.

Read from ``results["slo_capacity"]`` (``loadtests.capacity_results``); rendered as Markdown with the
jinja2 templates in ``templates/`` (report.html is made from that Markdown).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from loadtests.backends import BACKEND_NAMES, spec
from loadtests.records import Results
from loadtests.report.labels import fmt_ms, fmt_rps, number, official, target_label
from loadtests.report.templating import template_environment

__all__ = [
    "Verdict",
    "VerdictRow",
    "capacity_chart",
    "render_verdict",
    "sentences",
    "verdict",
]

GREY = "#7f7f7f"


@dataclass(frozen=True)
class VerdictRow:
    target: str
    label: str
    value: float
    low: float
    high: float
    interval: str
    at_least: bool
    via_gateway: bool
    color: str
    server_cpu: float
    """CPU-seconds per 1,000 requests of the server behind the target (NaN: not measured)."""
    gateway_cpu: float
    """The same for the gateway's processes (NaN: not through the gateway)."""
    statuses: tuple[str, ...]

    @property
    def shown(self) -> str:
        """The capacity as read: "≥ N" for a lower bound, "< N" when even the lowest rate tried failed."""
        if not self.value > 0 and math.isfinite(self.high) and self.high > 0:
            return "< " + fmt_rps(self.high)
        return ("≥ " if self.at_least else "") + fmt_rps(self.value)


@dataclass(frozen=True)
class Verdict:
    slo_ms: float
    quantile: float
    machine: str
    direct: list[VerdictRow]
    gateway: list[VerdictRow]
    calibration: list[VerdictRow]
    repetitions: int

    @property
    def rows(self) -> list[VerdictRow]:
        return self.direct + self.gateway

    def direct_of(self, row: VerdictRow) -> VerdictRow | None:
        name = row.target.removeprefix("gateway/")
        return next((r for r in self.direct if r.target == name), None)


def _server_group(target: str) -> str:
    backend = target.removeprefix("gateway/")
    return spec(backend).server if backend in BACKEND_NAMES else "nullserver"


def _row(name: str, data: Mapping[str, Any], tf_official: bool | None) -> VerdictRow:
    backend = name.removeprefix("gateway/")
    cpu = data.get("cpu_s_per_1000") or {}
    server = _server_group(name)
    nan = float("nan")
    return VerdictRow(
        target=name,
        label=target_label(name, tf_official),
        value=number(data.get("value")),
        low=number(data.get("low")),
        high=number(data.get("high")),
        interval=str(data.get("interval", "")),
        at_least=bool(data.get("at_least")),
        via_gateway=name.startswith("gateway/"),
        color=spec(backend).color if backend in BACKEND_NAMES else GREY,
        server_cpu=number(cpu.get(server)) if server else nan,
        gateway_cpu=number(cpu.get("gateway")) if name.startswith("gateway/") else nan,
        statuses=tuple(dict.fromkeys(str(run.get("status")) for run in data.get("runs", []))),
    )


def verdict(results: Results) -> Verdict | None:
    """The rows, best first, or None when the run made no capacity search."""
    capacity = results.get("slo_capacity") or {}
    if not capacity.get("targets"):
        return None
    rows = [_row(name, data, official(results)) for name, data in capacity["targets"].items()]
    rows.sort(key=lambda r: -r.value if math.isfinite(r.value) else math.inf)
    env = results.get("environment", {})
    slo = capacity.get("slo", {})
    return Verdict(
        slo_ms=float(slo.get("slo_ms", 10.0)),
        quantile=float(slo.get("quantile", 99.0)),
        machine=f"{env.get('cores')} x {env.get('cpu_model')}",
        direct=[r for r in rows if not r.via_gateway and not r.target.startswith("null-")],
        gateway=[r for r in rows if r.via_gateway],
        calibration=[r for r in rows if r.target.startswith("null-")],
        repetitions=max((len(d.get("runs", [])) for d in capacity["targets"].values()), default=0),
    )


def _bounded(a: VerdictRow, b: VerdictRow) -> str | None:
    """How ``a / b`` reads when a search ended before any rate failed (its figure is only a lower
    bound): "at least" over an exact figure, "at most" under one; None when both are lower bounds."""
    if a.at_least and b.at_least:
        return None
    return "at least " if a.at_least else "at most " if b.at_least else ""


def _ratio(a: VerdictRow, b: VerdictRow) -> str:
    """``a`` as a multiple of ``b`` ("" when nothing follows from the two figures)."""
    bound = _bounded(a, b)
    return f"{bound}{a.value / b.value:.1f}x" if b.value > 0 and bound is not None else ""


def _share(a: VerdictRow, b: VerdictRow) -> str:
    """``a`` as a percentage of ``b`` ("" when nothing follows from the two figures)."""
    bound = _bounded(a, b)
    return f"{bound}{100 * a.value / b.value:.0f}%" if b.value > 0 and bound is not None else ""


def _apart(a: VerdictRow, b: VerdictRow) -> bool:
    """Whether a's interval lies above b's (so 'more' is a finding, not noise)."""
    return math.isfinite(a.low) and math.isfinite(b.high) and a.low > b.high


def capacity_chart(view: Verdict) -> bytes:
    """Horizontal bars: capacity under the SLO per target, 95% intervals as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rows = view.direct + view.gateway  # the null endpoint (the generator's own ceiling) is in the table
    figure = Figure(figsize=(8.5, 0.42 * len(rows) + 1.3))
    axes = figure.subplots()
    positions = list(range(len(rows)))[::-1]
    values = [r.value if math.isfinite(r.value) else 0.0 for r in rows]
    low = [max(0.0, v - r.low) if math.isfinite(r.low) else 0.0 for v, r in zip(values, rows, strict=True)]
    high = [max(0.0, r.high - v) if math.isfinite(r.high) else 0.0 for v, r in zip(values, rows, strict=True)]
    bars = axes.barh(positions, values, color=[r.color for r in rows], xerr=[low, high], capsize=3)
    for bar, row in zip(bars, rows, strict=True):
        if row.via_gateway:
            bar.set_hatch("//")
            bar.set_edgecolor("white")
        end = max(bar.get_width(), row.high if math.isfinite(row.high) else 0.0)
        text = f"  {row.shown}" if row.value > 0 else f"  none passed ({row.shown} req/s)"
        axes.text(end, bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=8)
    axes.set_yticks(positions, [r.label for r in rows], fontsize=8)
    axes.set_xlabel(f"highest offered req/s with p{view.quantile:g} ≤ {view.slo_ms:g} ms and errors < 0.1%")
    axes.set_xlim(0, max([*values, *(h + v for h, v in zip(high, values, strict=True)), 1.0]) * 1.22)
    axes.grid(axis="x", alpha=0.3)
    axes.set_axisbelow(True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def sentences(view: Verdict) -> list[str]:
    """The verdict in two to four plain sentences."""
    text = (
        template_environment()
        .get_template("sentences.txt")
        .render(v=view, ratio=_ratio, share=_share, apart=_apart, cpu=_cpu)
    )
    return [line.strip() for line in text.splitlines() if line.strip()]


def _cpu(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.2f}"


def render_verdict(results: Results, chart_file: str) -> str | None:
    """The opening section (Markdown), or None without a capacity search."""
    view = verdict(results)
    if view is None:
        return None
    capacity = results["slo_capacity"]
    tf_official = official(results)
    values = {
        "v": view,
        "sentences": sentences(view),
        "steps": [
            {**step, "label": target_label(step["target"], tf_official)} for step in capacity.get("steps", [])
        ],
        "arrivals": capacity.get("arrivals", ""),
        "saturation": capacity.get("slo", {}).get("saturation_cpu", 80.0),
        "fmt_rps": fmt_rps,
        "ms": fmt_ms,
        "num": lambda value: f"{value:.2f}" if isinstance(value, int | float) else "-",
        "pct": lambda value: f"{100 * value:.1f}%" if isinstance(value, int | float) else "-",
        "cpu_pct": lambda value: f"{value:.0f}%" if isinstance(value, int | float) else "-",
        "cpu": _cpu,
        "chart_file": chart_file,
    }
    return template_environment().get_template("verdict.md").render(values)
