"""The report's opening (capacity chart, plain sentences, CPU table) rendered from a recorded run.

``data/capacity_results.json`` is the ``results.json`` of a real ``--preset demo`` run, cut to what the
opening reads (environment, tfserving, slo_capacity); that run was on a busy machine and nothing passed,
so some tests put a quiet machine's figures into it. The other results come from ``data/results.json``.
"""

from __future__ import annotations

import copy
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
from loadtests.report.verdict import capacity_chart, render_verdict, sentences, verdict

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def recorded() -> dict[str, Any]:
    results = json.loads((DATA / "results.json").read_text())
    results.update(json.loads((DATA / "capacity_results.json").read_text()))
    return results


PASSING = {  # figures a quiet machine gives, put into the recorded run to exercise the other sentences
    "tfserving-rest": (300.0, 280.0, 320.0, {"tfserving": 1.1}),
    "torchserve-rest": (180.0, 170.0, 190.0, {"torchserve": 2.4}),
    "v2-rest": (150.0, 140.0, 160.0, {"triton": 3.0}),
    "gateway/tfserving-rest": (120.0, 110.0, 130.0, {"gateway": 4.2, "tfserving": 1.2}),
    "gateway/torchserve-rest": (100.0, 90.0, 110.0, {"gateway": 4.4, "torchserve": 2.5}),
    "gateway/v2-rest": (90.0, 80.0, 100.0, {"gateway": 4.6, "triton": 3.1}),
}


def _passing(recorded: dict[str, Any]) -> dict[str, Any]:
    changed = copy.deepcopy(recorded)
    for name, (value, low, high, cpu) in PASSING.items():
        changed["slo_capacity"]["targets"][name].update(value=value, low=low, high=high, cpu_s_per_1000=cpu)
    return changed


def test_rows_are_split_into_direct_gateway_and_calibration_best_first(recorded: dict[str, Any]) -> None:
    view = verdict(_passing(recorded))
    assert view is not None and view.slo_ms == 10.0 and view.quantile == 99.0
    assert [r.target for r in view.direct] == ["tfserving-rest", "torchserve-rest", "v2-rest"]
    assert view.gateway[0].target == "gateway/tfserving-rest" and len(view.gateway) == 3
    assert [r.target for r in view.calibration] == ["null-rest"]
    top = view.gateway[0]
    assert (top.server_cpu, top.gateway_cpu) == (1.2, 4.2) and view.direct[1].server_cpu == 2.4
    assert verdict({"summary": []}) is None  # a run without a search has no opening


def test_the_recorded_busy_run_says_nothing_passed(recorded: dict[str, Any]) -> None:
    view = verdict(recorded)
    assert view is not None and all(r.value == 0 for r in view.rows)
    text = sentences(view)
    assert text[0].startswith("On this machine (2 x AMD EPYC), no server kept p99 within 10 ms")
    assert "TorchServe, REST: < 6.0 req/s" in text[0]  # the lowest rate tried, not a capacity of 0
    assert view.direct[0].shown.startswith("< ")
    assert not any(line.startswith("Through the gateway") for line in text)
    assert any("One repetition" in line for line in text)


def test_the_sentences_name_the_best_stack_and_the_gateway(recorded: dict[str, Any]) -> None:
    text = sentences(verdict(_passing(recorded)))  # type: ignore[arg-type]
    assert 2 <= len(text) <= 4
    assert text[0] == (
        "On this machine (2 x AMD EPYC), TF Serving stand-in, REST served 300 req/s within p99 ≤ 10 ms, "
        "1.7x TorchServe, REST (180) and 2.0x Triton, REST (150)."
    )
    assert text[1] == (
        "Through the gateway, gateway -> TF Serving stand-in REST served the most, 120 req/s "
        "(40% of the same server called directly), with the gateway spending 4.20 CPU-seconds per 1,000 "
        "requests beside the server's 1.20."
    )


def test_the_sentences_say_when_intervals_overlap_or_a_bound_is_only_lower(recorded: dict[str, Any]) -> None:
    changed = _passing(recorded)
    changed["slo_capacity"]["targets"]["torchserve-rest"].update(value=290.0, low=250.0, high=330.0)
    changed["slo_capacity"]["targets"]["v2-rest"].update(at_least=True)
    text = " ".join(sentences(verdict(changed)))  # type: ignore[arg-type]
    assert "the 95% intervals of the first two overlap" in text
    assert "The search for Triton, REST ended before any rate failed" in text


def test_ratios_to_a_lower_bound_say_at_least_or_at_most(recorded: dict[str, Any]) -> None:
    """A search that ended before any rate failed gives only a lower bound (≥): a ratio over it is
    an upper bound, a ratio of it over an exact figure a lower one, and two lower bounds give none."""
    changed = _passing(recorded)
    changed["slo_capacity"]["targets"]["tfserving-rest"].update(at_least=True)
    text = sentences(verdict(changed))  # type: ignore[arg-type]
    assert "served ≥ 300 req/s within p99 ≤ 10 ms, at least 1.7x TorchServe, REST (180)" in text[0]
    assert "120 req/s (at most 40% of the same server called directly)" in text[1]
    changed["slo_capacity"]["targets"]["gateway/tfserving-rest"].update(at_least=True)
    changed["slo_capacity"]["targets"]["torchserve-rest"].update(at_least=True)
    text = sentences(verdict(changed))  # type: ignore[arg-type]
    assert "≤ 10 ms, TorchServe, REST (≥ 180) and at least 2.0x Triton, REST (150)" in text[0]
    assert "served the most, ≥ 120 req/s, with the gateway spending" in text[1]


def test_the_chart_is_a_png_with_a_bar_per_target(recorded: dict[str, Any]) -> None:
    view = verdict(_passing(recorded))
    assert view is not None
    image = Image.open(io.BytesIO(capacity_chart(view)))
    assert image.format == "PNG" and image.size[0] > 600 and image.size[1] > 200


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_opening_section_comes_from_the_template(recorded: dict[str, Any]) -> None:
    markdown = render_verdict(_passing(recorded), "charts/capacity.png")
    assert markdown is not None and markdown.startswith("## Capacity under p99 ≤ 10 ms\n")
    assert "![Capacity under the latency SLO per target](charts/capacity.png)" in markdown
    steps = len(recorded["slo_capacity"]["steps"])
    assert markdown.count("\n| ") == 2 + 7 + 2 + steps  # heads, targets + calibration, every step
    assert "gateway -> TorchServe REST" in markdown


def test_the_page_is_the_markdown_rendered_with_its_chart_embedded(
    recorded: dict[str, Any], tmp_path: Path
) -> None:
    paths = write_report(_passing(recorded), tmp_path)
    page = paths["html"].read_text()
    parser = _Text()
    parser.feed(page)
    steps = len(recorded["slo_capacity"]["steps"])
    tables = parser.tags.count("table")
    assert tables >= 2 and parser.tags.count("tr") >= 1 + 7 + 1 + steps
    assert "gateway -&gt; TorchServe REST" in page and "-> TorchServe REST" not in page  # escaped
    assert 'src="charts/' not in page and page.count('src="data:image/png;base64,') >= 2
    assert "<script" not in page


def test_the_report_opens_with_the_capacity_verdict(recorded: dict[str, Any], tmp_path: Path) -> None:
    paths = write_report(recorded, tmp_path)
    page = paths["html"].read_text()
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings[0] == "Capacity under p99 ≤ 10 ms" and headings[1] == "This run"
    assert page.index("data:image/png;base64,") < page.index("<h2>This run</h2>")
    assert (tmp_path / "charts" / "capacity.png").read_bytes().startswith(b"\x89PNG")
    markdown = paths["markdown"].read_text()
    assert markdown.index("## Capacity under p99") < markdown.index("## This run")
    assert json.loads(paths["json"].read_text())["data"]["slo_capacity"]["schema"] == "loadtests-capacity/1"


def test_the_printed_summary_starts_with_the_sentences(recorded: dict[str, Any]) -> None:
    view = verdict(recorded)
    assert view is not None
    text = summary_text(recorded)
    assert "Capacity under p99 <= 10 ms (open loop):" in text
    assert sentences(view)[0] in text
