"""The headline figures and the rerun check as text: the cells of the summary's and report's tables."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from loadtests.headline import NO_DIFFERENCE, SPEED_CHANGE_WARNING, HeadlineFigure
from loadtests.records import Results
from loadtests.report.templating import text_table

__all__ = ["figure_cells", "headline_rows", "headline_sentences", "method_text", "reproducibility_text"]

Label = Callable[[str], str]


def _number(figure: HeadlineFigure, value: float) -> str:
    if value != value:
        return "-"
    return f"{value:.2f}x" if figure.kind == "ratio" else f"{value:+.2f} ms"


def figure_cells(figure: HeadlineFigure) -> tuple[str, str]:
    """The estimate and its 95% rerun interval."""
    interval = (
        "-"
        if figure.low != figure.low
        else f"[{_number(figure, figure.low)}, {_number(figure, figure.high)}]"
    )
    return _number(figure, figure.value), interval


def _what(figure: HeadlineFigure, label: Label) -> str:
    if figure.pair.startswith("harness check"):
        return "Locust / independent client"
    if figure.kind == "difference":
        return f"{label(figure.b)} - {label(figure.a)}"
    return f"{label(figure.b)} / {label(figure.a)}"


def _verdict(figure: HeadlineFigure, label: Label) -> str:
    if figure.pair.startswith("gateway cost") and figure.winner in (figure.a, figure.b):
        return "the gateway costs" if figure.winner == figure.a else "faster via the gateway"
    if figure.winner in (figure.a, figure.b):
        return f"{label(figure.winner)} better"
    return figure.winner


def headline_rows(results: Results, label: Label) -> list[list[str]]:
    rows = []
    for figure in _figures(results):
        value, interval = figure_cells(figure)
        rows.append(
            [figure.pair, f"{figure.figure} at {figure.step}", _what(figure, label), value, interval,
             str(figure.rounds), _verdict(figure, label)]
        )  # fmt: skip
    return rows


def _figures(results: Results) -> list[HeadlineFigure]:
    headline = results.get("headline") or {}
    return [HeadlineFigure.from_json(f) for f in headline.get("figures", [])]


def headline_sentences(results: Results, label: Label) -> list[str]:
    """One plain sentence per headline figure."""
    out = []
    rounds = int((results.get("headline") or {}).get("rounds") or 0)
    for figure in _figures(results):
        value, interval = figure_cells(figure)
        what = f"{figure.figure} at {figure.step}"
        if figure.pair.startswith("gateway cost"):
            subject = f"Through the gateway to {label(figure.a)}, {what}"
            measured = (
                f"{value} vs direct {interval}"
                if figure.kind == "difference"
                else f"{value} of direct {interval}"
            )
        elif figure.pair.startswith("harness check"):
            subject = f"Harness check, {label(figure.a.removesuffix(' (independent client)'))}"
            measured = f"{figure.figure} at {figure.step} = {value} {interval}"
        else:
            subject = f"{figure.pair}, {what}"
            measured = f"{label(figure.b)} / {label(figure.a)} = {value} {interval}"
        if figure.pair.startswith("harness check"):
            tail = figure.winner
        elif figure.pair.startswith("gateway cost") and figure.winner in (figure.a, figure.b):
            tail = _verdict(figure, label) + " (the interval excludes no difference)"
        elif figure.winner in (figure.a, figure.b):
            tail = f"{label(figure.winner)} is better"
        elif figure.winner == NO_DIFFERENCE:
            tail = "indistinguishable here (the interval includes no difference)"
        else:
            tail = f"not judged ({figure.winner})"
        if figure.rounds < rounds:
            tail += f" Only {figure.rounds} of {rounds} rounds had correct answers from both (see the errors)"
        out.append(f"{subject}: {measured}; {tail}.")
    if warning := speed_warning(results):
        out.insert(0, warning)  # first: it bears on how to read every figure after it
    return out


def speed_warning(results: Results) -> str:
    """A sentence when the machine's speed changed much between rounds ("" when it did not)."""
    speed = (results.get("headline") or {}).get("machine_speed") or {}
    change = speed.get("slowest_over_fastest")
    if not isinstance(change, int | float) or change < SPEED_CHANGE_WARNING:
        return ""
    return (
        f"Warning: this machine's speed changed during the run; the same requests took {change:.1f}x as "
        "long in the slowest round as in the fastest (independent client, every target alike). Pairs "
        "formed inside a round cancel most of that, but a ratio between stacks can itself depend on how "
        "busy the machine is, so a rerun may land outside these intervals."
    )


def method_text(results: Results) -> str:
    """How the headline was measured, in one line: rounds, the interval, the CPUs the servers share."""
    headline = results.get("headline") or {}
    pinning = (results.get("environment") or {}).get("pinning") or {}
    servers = pinning.get("server_cpus")
    cpus = (
        f"every server on CPU(s) {servers} and Locust on {pinning.get('generator_cpus')}"
        if pinning.get("mode") != "off" and servers
        else "servers and Locust not pinned"
    )
    independent = results.get("independent") or []
    connections = max((int(r.get("users", 1)) for r in independent), default=1)
    alone = (
        "; 1-user p50 from an independent client that ends each round measuring every REST target, "
        "interleaved in blocks of ten requests"
        if independent
        else ""
    )
    if connections > 1:
        alone += (
            f", and throughput from the same client at {connections} connections per target, the targets "
            "interleaved in time slots of about 0.2 s"
        )
    visits = (
        "Locust taking every REST target in turn, in blocks of ten requests, in one window per round"
        if (results.get("config") or {}).get("interleave_locust")
        else "each target once per round in a random order"
    )
    return (
        f"{headline.get('rounds', 0)} rounds, {visits}{alone}; ratios "
        "formed inside each round; estimate: the Hodges-Lehmann centre of the rounds; 95% interval for a "
        f"rerun, from the spread between rounds; {cpus}"
    )


def reproducibility_text(section: Mapping[str, Any]) -> str:
    """Each headline figure of every later pass against the first: estimates, intervals, containment."""
    lines = [f"Rerun check: {section['passes']} runs of the same plan"]
    for number, rows in enumerate(section["against_first"], start=2):
        table = []
        for row in rows:
            first, second = HeadlineFigure.from_json(row["first"]), HeadlineFigure.from_json(row["second"])
            change = row["relative_change"]
            table.append(
                [
                    row["id"],
                    " ".join(figure_cells(first)),
                    " ".join(figure_cells(second)),
                    f"{change:+.0%}" if first.kind == "ratio" else f"{change:+.2f} ms",
                    "yes" if row["each_contains_the_other"] else "NO",
                    "yes" if row["same_winner"] else f"NO ({first.winner} / {second.winner})",
                ]
            )
        headers = [
            "figure",
            "pass 1 [95% rerun]",
            f"pass {number}",
            "change",
            "each holds other",
            "same verdict",
        ]
        lines += ["", text_table(table, headers)]
    contained, same = section.get("contained_share"), section.get("same_winner_share")
    if contained is not None:
        lines += [
            "",
            f"Findings ({section.get('figures')} figures, the harness checks apart): {contained:.0%} of the "
            f"intervals each contain the other run's estimate; {same:.0%} reach the same verdict; "
            f"{section.get('ratios_within_15_percent')} of {section.get('ratios')} ratios moved by 15% or "
            "less.",
        ]
    harness = section.get("harness") or {}
    if harness.get("figures"):
        lines.append(
            f"Harness checks ({harness['figures']}): {harness['contained_share']:.0%} contained, "
            f"{harness['same_winner_share']:.0%} the same verdict."
        )
    return "\n".join(lines)
