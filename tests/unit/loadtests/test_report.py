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

from loadtests.report import write_report
from loadtests.report.summary import summary_text

RECORDED = Path(__file__).parent / "data" / "results.json"


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


def test_markdown_tables_list_every_target_and_step(results: dict[str, Any], report: dict[str, Path]) -> None:
    markdown = report["markdown"].read_text()
    assert "| target | step | req/s [95% CI]" in markdown
    for row in results["summary"]:
        assert row["step"] in markdown
    assert markdown.count("TorchServe, gRPC |") >= 3  # one row per step
    assert re.search(r"\| \d[\d,.]* \[\d[\d,.]*, \d[\d,.]*\] \|", markdown)  # figures with intervals
    for chart in ("latency_vs_throughput", "throughput_vs_users", "latency_cdf", "gateway_breakdown"):
        assert f"](charts/{chart}.png)" in markdown
        assert (report["markdown"].parent / "charts" / f"{chart}.png").stat().st_size > 10_000


def test_results_json_is_rewritten_as_strict_json(report: dict[str, Path]) -> None:
    data = json.loads(report["json"].read_text(), parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert data["environment"]["pinning"]["mode"] in ("auto", "manual", "off")
    assert {"steps", "summary", "gateway_added", "comparisons", "calibration"} <= set(data)


def test_winners_only_where_intervals_are_apart(results: dict[str, Any]) -> None:
    for row in results["comparisons"]:
        if row["winner"] is None:
            continue
        a, b = row["a_value"], row["b_value"]
        assert a["high"] < b["low"] or b["high"] < a["low"]
        better = min if row["metric"] != "rps" else max
        assert row["winner"] == (row["a"] if better(a["value"], b["value"]) == a["value"] else row["b"])


def test_summary_text_has_the_table_the_gateway_and_the_winners(results: dict[str, Any]) -> None:
    text = summary_text(results)
    assert "req/s [95% CI]" in text and "Gateway-added latency" in text and "Winners" in text
    assert "Locust ceiling (null endpoints): REST" in text
    assert "TF Serving = the project's stand-in, NOT TensorFlow Serving" in text


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
