"""The batching sweep's report: one chart of every setting's capacity and a few sentences (jinja2)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadtests.backends import spec
from loadtests.report.labels import fmt_rps, number
from loadtests.report.page import html_page
from loadtests.report.templating import template_environment
from loadtests.report.verdict import Verdict, VerdictRow, capacity_chart

__all__ = ["sweep_view", "write_sweep_report"]


def _row(row: Mapping[str, Any]) -> VerdictRow:
    found = row.get("capacity") or {}
    cpu = (found.get("cpu_s_per_1000") or {}).get(row["stack"])
    return VerdictRow(
        target=row["target"],
        label=row["label"],
        value=number(found.get("value")),
        low=number(found.get("low")),
        high=number(found.get("high")),
        interval=str(found.get("interval", "not measured")),
        at_least=bool(found.get("at_least")),
        via_gateway=False,
        color=spec(row["target"]).color,
        server_cpu=number(cpu),
        gateway_cpu=math.nan,
        statuses=tuple(dict.fromkeys(str(run.get("status")) for run in found.get("runs", []))),
    )


def sweep_view(results: Mapping[str, Any]) -> Verdict:
    """Every setting as a row (in sweep order); slo and machine from the first measured run."""
    rows = [_row(row) for row in results.get("rows", [])]
    first: Mapping[str, Any] = next((r["capacity"] for r in results.get("rows", []) if r.get("capacity")), {})
    env = first.get("environment", {})
    slo = first.get("slo", {})
    return Verdict(
        slo_ms=float(slo.get("slo_ms", 10.0)),
        quantile=float(slo.get("quantile", 99.0)),
        machine=f"{env.get('cores')} x {env.get('cpu_model')}",
        direct=rows,
        gateway=[],
        calibration=[],
        repetitions=max(
            (len((r.get("capacity") or {}).get("runs", [])) for r in results.get("rows", [])), default=0
        ),
    )


def _best_per_stack(view: Verdict, results: Mapping[str, Any]) -> list[tuple[VerdictRow, VerdictRow]]:
    """(best setting, the stack's first setting: its baseline) per stack, best stacks first."""
    stacks: dict[str, list[VerdictRow]] = {}
    for row, raw in zip(view.direct, results.get("rows", []), strict=True):
        stacks.setdefault(raw["stack"], []).append(row)
    pairs = [
        (max(rows, key=lambda r: r.value if math.isfinite(r.value) else -1.0), rows[0])
        for rows in stacks.values()
    ]
    return sorted(pairs, key=lambda pair: -pair[0].value if math.isfinite(pair[0].value) else math.inf)


def write_sweep_report(results: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """sweep.md, sweep.html and charts/sweep.png in ``folder``; returns their paths and the sentences."""
    view = sweep_view(results)
    png = capacity_chart(view)
    (folder / "charts").mkdir(exist_ok=True)
    (folder / "charts" / "sweep.png").write_bytes(png)
    values = {
        "v": view,
        "best": _best_per_stack(view, results),
        "runs": list(zip(view.direct, results.get("rows", []), strict=True)),
        "fmt_rps": fmt_rps,
        "cpu": lambda value: "-" if not math.isfinite(value) else f"{value:.2f}",
    }
    text = template_environment().get_template("sweep_sentences.txt").render(values)
    values["sentences"] = [line.strip() for line in text.splitlines() if line.strip()]
    markdown = template_environment().get_template("sweep.md").render(values)
    paths = {"html": folder / "sweep.html", "markdown": folder / "sweep.md"}
    paths["markdown"].write_text(markdown)
    title = markdown.splitlines()[0].lstrip("# ")
    paths["html"].write_text(html_page(markdown, title, {"charts/sweep.png": png}))
    return {**paths, "sentences": values["sentences"]}
