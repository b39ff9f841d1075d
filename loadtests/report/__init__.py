"""The comparison report: ``results.json``, ``report.md`` and the same as a self-contained ``report.html``.

Everything is drawn from the results dict alone, so ``write_report(read_saved(run, ...).flat(), folder)``
re-renders a recorded run (``loadtests.saved``: the envelope every saved run is written in). Importing
this package does not import matplotlib until charts are drawn.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from loadtests.records import Results

__all__ = ["render_charts", "write_report"]


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: write them as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def render_charts(results: Results) -> list[tuple[str, str, bytes]]:
    """(file name, title, PNG) per chart."""
    import matplotlib

    matplotlib.use("Agg")
    from loadtests.report import charts

    out = [
        (
            "latency_vs_throughput.png",
            "Latency p50/p95/p99 vs throughput, per target",
            charts.knee_chart(results),
        ),
        ("throughput_vs_users.png", "Throughput vs concurrent users", charts.throughput_chart(results)),
    ]
    step = results.get("cdf_step")
    if step:
        out.append(("latency_cdf.png", f"Latency CDF at {step}", charts.cdf_chart(results, step)))
        breakdown = charts.breakdown_chart(results, step)
        if breakdown is not None:
            out.append(("gateway_breakdown.png", f"Gateway time split at {step}", breakdown))
    return out


def _headline_chart(results: Results) -> bytes | None:
    import matplotlib

    matplotlib.use("Agg")
    from loadtests.report.charts import headline_chart

    return headline_chart(results)


def write_report(results: Results, folder: Path) -> dict[str, Path]:
    """Write results.json, charts/*.png, report.md and report.html into ``folder``; returns their paths."""
    from loadtests.report.content import render, title
    from loadtests.report.page import html_page
    from loadtests.report.verdict import capacity_chart, render_verdict, verdict
    from loadtests.saved import write_saved

    folder.mkdir(parents=True, exist_ok=True)
    cleaned = _clean(dict(results))
    paths = {
        "json": folder / "results.json",
        "markdown": folder / "report.md",
        "html": folder / "report.html",
    }
    write_saved(paths["json"], "comparison", cleaned)
    chart_dir = folder / "charts"
    chart_dir.mkdir(exist_ok=True)
    pngs: dict[str, bytes] = {}
    charts = []
    for name, chart_title, png in render_charts(cleaned):
        pngs[f"charts/{name}"] = png
        charts.append((chart_title, f"charts/{name}"))
    headline_png = _headline_chart(cleaned)
    if headline_png is not None:
        pngs["charts/headline.png"] = headline_png
    opening = None
    view = verdict(cleaned)
    if view is not None:  # the capacity search's chart and sentences open the report
        pngs["charts/capacity.png"] = capacity_chart(view)
        opening = render_verdict(cleaned, "charts/capacity.png")
    for file, png in pngs.items():
        (folder / file).write_bytes(png)
    markdown = render(cleaned, charts, opening, "charts/headline.png" if headline_png else None)
    paths["markdown"].write_text(markdown)
    paths["html"].write_text(html_page(markdown, title(cleaned), pngs))
    return paths
