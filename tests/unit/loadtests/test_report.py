"""The report rendered from a recorded results.json (tests/unit/loadtests/data, a real smoke run)."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loadtests.analysis import analyse
from loadtests.headline import headline_json
from loadtests.report import write_report
from loadtests.report.labels import fmt_estimate, target_label
from loadtests.report.summary import summary_text
from tests.unit.loadtests.test_analysis import SETTINGS, synthetic_run

RECORDED = Path(__file__).parent / "data" / "results.json"
LATENCIES = {"null-rest": 0.25, "tfserving-rest": 2.0, "gateway/tfserving-rest": 3.0}


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return json.loads(RECORDED.read_text())


@pytest.fixture(scope="module")
def report(results: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_report(results, tmp_path_factory.mktemp("report"))


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.sources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag in ("img", "script"):
            self.sources.append(values.get("src") or "")
        if tag == "link":
            self.links.append(values.get("href") or "")


def test_html_is_self_contained_with_every_chart_embedded(report: dict[str, Path]) -> None:
    page = report["html"].read_text()
    parser = _Collector()
    parser.feed(page)
    assert parser.tags.count("img") == 4 and not parser.links
    for source in parser.sources:
        assert source.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))
        assert image.format == "PNG" and image.width > 600
    assert parser.tags.count("table") >= 5


def test_the_stand_in_is_named_as_such_everywhere(results: dict[str, Any], report: dict[str, Path]) -> None:
    assert results["tfserving"]["official"] is False
    for text in (report["html"].read_text(), report["markdown"].read_text(), summary_text(results)):
        assert "stand-in" in text
        assert "TF Serving, REST" not in text  # never the bare name for the stand-in's figures


def _markdown_table(markdown: str, header_start: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose header row starts with ``header_start``, as dicts."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))

    def cells(line: str) -> list[str]:
        return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]

    headers = cells(lines[start])
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(headers, cells(line), strict=True)))
    return rows


def test_markdown_tables_list_every_target_and_step(results: dict[str, Any], report: dict[str, Path]) -> None:
    markdown = report["markdown"].read_text()
    rows = _markdown_table(markdown, "| target | step | req/s [95% CI]")
    serving = [r for r in results["summary"] if not r["target"].startswith("null-")]
    assert len(rows) == len(serving) > 0  # one row per (target, step), in the summary's order
    for cells, row in zip(rows, serving, strict=True):
        assert cells["target"] == target_label(row["target"], results["tfserving"]["official"])
        assert cells["step"] == row["step"]
        assert cells["req/s [95% CI]"] == fmt_estimate(row["rps"], "rps")
        for q in (50, 95, 99):
            assert cells[f"p{q} ms [95% CI]"] == fmt_estimate(row[f"p{q}_ms"])
        assert cells["requests"] == f"{row['requests']:,}" and cells["errors"] == str(row["errors"])
        # The printed figures are the summary's: value inside its printed interval.
        value, low, high = (
            float(x.replace(",", "")) for x in re.findall(r"[\d,.]+", cells["req/s [95% CI]"])
        )
        assert low <= value <= high
        assert value == pytest.approx(row["rps"]["value"], rel=0.01)
    grpc_rows = [r for r in rows if r["target"] == "TorchServe, gRPC"]
    assert len(grpc_rows) >= 3
    assert [r["step"] for r in grpc_rows] == [
        r["step"] for r in serving if r["target"] == "torchserve-grpc"
    ]  # one row per step
    for chart in ("latency_vs_throughput", "throughput_vs_users", "latency_cdf", "gateway_breakdown"):
        assert f"](charts/{chart}.png)" in markdown
        assert (report["markdown"].parent / "charts" / f"{chart}.png").stat().st_size > 10_000


def test_results_json_is_rewritten_as_strict_json(report: dict[str, Path]) -> None:
    saved = json.loads(report["json"].read_text(), parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert (saved["kind"], saved["version"]) == ("comparison", 2), "the envelope every saved run has"
    assert saved["environment"]["pinning"]["mode"] in ("auto", "manual", "off")
    data = saved["data"]
    assert {"steps", "summary", "gateway_added", "comparisons", "calibration"} <= set(data)
    assert "environment" not in data and "format" not in data


def _estimate(value: float, low: float, high: float) -> dict[str, float]:
    return {"value": value, "low": low, "high": high}


def _summary_row(target: str, p50: dict[str, float], rps: dict[str, float]) -> dict[str, Any]:
    return {
        "target": target,
        "step": "1 user",
        "saturated": False,
        "rps": rps,
        "p50_ms": p50,
        "p95_ms": p50,
        "p99_ms": p50,
    }


def test_the_analysis_names_winners_from_samples() -> None:
    """Raw samples through the whole analysis: separated latencies get a winner, equal ones do not."""
    apart = analyse(*synthetic_run({**LATENCIES, "torchserve-rest": 4.0}), {}, SETTINGS)
    same = analyse(*synthetic_run({**LATENCIES, "torchserve-rest": 2.0}), {}, SETTINGS)

    def headline(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {c["metric"]: c for c in results["comparisons"] if c["pair"].startswith("REST, direct")}

    separated, overlapping = headline(apart), headline(same)
    for metric in ("p50_ms", "rps"):
        a, b = separated[metric]["a_value"], separated[metric]["b_value"]
        assert a["high"] < b["low"] or b["high"] < a["low"]
    assert (
        separated["p50_ms"]["winner"] == "tfserving-rest" and separated["rps"]["winner"] == "tfserving-rest"
    )
    a, b = overlapping["p50_ms"]["a_value"], overlapping["p50_ms"]["b_value"]
    assert not (a["high"] < b["low"] or b["high"] < a["low"])
    assert overlapping["p50_ms"]["winner"] is None


def test_summary_text_has_the_table_the_gateway_and_the_winners(
    results: dict[str, Any], tmp_path: Path
) -> None:
    text = summary_text(results)
    assert "req/s [95% CI]" in text and "Gateway-added latency" in text
    assert "Per metric, TensorFlow side vs PyTorch side" in text
    assert "Headline" not in text, "a results file from before the headline renders without one"
    with_headline = {**results, "headline": headline_json(results["steps"])}
    text = summary_text(with_headline)
    assert "Headline (2 rounds, each target once per round in a random order" in text
    assert "too few rounds" in text, "2 rounds: no interval, no winner"
    markdown = write_report(with_headline, tmp_path)["markdown"].read_text()
    assert "## Headline" in markdown and "95% rerun interval" in markdown
    assert "](charts/headline.png)" in markdown and (tmp_path / "charts" / "headline.png").stat().st_size
    assert "Locust ceiling (null endpoints): REST" in text
    assert "TF Serving = the project's stand-in, NOT TensorFlow Serving" in text
    assert "speed changed during the run" not in text
    shifted = {
        **with_headline,
        "headline": {**with_headline["headline"], "machine_speed": {"slowest_over_fastest": 2.3}},
    }
    assert "took 2.3x as long in the slowest round as in the fastest" in summary_text(shifted)


def test_skipped_targets_and_missing_figures_render(results: dict[str, Any], tmp_path: Path) -> None:
    changed = json.loads(json.dumps(results))
    changed["targets"]["torchserve-grpc"] = {
        "available": False,
        "skipped_reason": "unreachable at x: refused",
    }
    changed["summary"][0]["p99_ms"] = {"value": None, "low": None, "high": None}
    paths = write_report(changed, tmp_path)
    assert "unreachable at x: refused" in paths["markdown"].read_text()
    assert "Skipped: torchserve-grpc (unreachable at x: refused)" in summary_text(changed)


def test_a_run_with_only_direct_targets_renders(results: dict[str, Any], tmp_path: Path) -> None:
    direct = {"tfserving-rest", "torchserve-rest"}
    changed = json.loads(json.dumps(results))
    changed["summary"] = [r for r in changed["summary"] if r["target"] in direct]
    changed["steps"] = [s for s in changed["steps"] if s["target"] in direct]
    changed["gateway_added"], changed["crosscheck"] = [], []
    paths = write_report(changed, tmp_path)  # warnings are errors here: no empty legends
    assert "no target measured" not in paths["markdown"].read_text()
    assert len(list((tmp_path / "charts").glob("*.png"))) == 3  # no gateway split without gateway targets


def test_a_failure_text_with_a_bar_stays_in_its_cell(results: dict[str, Any], tmp_path: Path) -> None:
    changed = json.loads(json.dumps(results))
    changed["summary"][0]["error_reasons"] = {"HTTP 503 | upstream\nreset": 2}
    markdown = write_report(changed, tmp_path)["markdown"].read_text()
    rows = _markdown_table(markdown, "| target | step | failure | count")
    assert rows == [
        {
            "target": target_label(changed["summary"][0]["target"], False),
            "step": changed["summary"][0]["step"],
            "failure": "HTTP 503 | upstream reset",
            "count": "2",
        }
    ]


def test_results_without_the_run_details_still_render(results: dict[str, Any], tmp_path: Path) -> None:
    changed = {key: value for key, value in results.items() if key not in ("environment", "plan", "config")}
    markdown = write_report(changed, tmp_path)["markdown"].read_text()
    assert "- Machine: None x None" in markdown  # what is missing reads as missing, nothing is invented
    assert "| target | step | req/s [95% CI]" in markdown


def test_the_printed_summary_flags_a_step_taken_while_the_machine_was_busy(results: dict[str, Any]) -> None:
    changed = json.loads(json.dumps(results))
    changed["summary"][0]["other_cpu_percent"] = 31.0
    changed["summary"][1]["other_cpu_percent"] = 24.0
    lines = summary_text(changed).splitlines()
    first, second = (
        next(
            line
            for line in lines
            if line.startswith(target_label(row["target"], False)) and row["step"] in line
        )
        for row in changed["summary"][:2]
    )
    assert first.endswith("machine busy") and "machine busy" not in second
