"""``python -m loadtests report RUN``: a comparison and a sweep written again from their JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loadtests.__main__ import main as loadtests_main
from loadtests.report.again import render_again
from tests.unit.loadtests.test_sweep import _sweep

DATA = Path(__file__).parent / "data"


def test_a_comparison_gets_its_report_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(DATA / "results.json", tmp_path / "results.json")
    assert loadtests_main(["report", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [
        "wrote",
        str(tmp_path / "report.md"),
        "wrote",
        str(tmp_path / "report.html"),
    ]
    markdown = (tmp_path / "report.md").read_text()
    assert (
        markdown.startswith("# MNIST serving comparison") and "| target | step | req/s [95% CI]" in markdown
    )
    assert len(list((tmp_path / "charts").glob("*.png"))) == 4
    again = json.loads((tmp_path / "results.json").read_text())
    assert again["kind"] == "comparison" and again["data"]["steps"], (
        "a run saved before the envelope gets one"
    )
    assert loadtests_main(["report", str(tmp_path)]) == 0  # and reads back the same
    assert (tmp_path / "report.md").read_text() == markdown


def test_a_sweep_gets_its_report_back(tmp_path: Path) -> None:
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.json").write_text(json.dumps(_sweep()))
    written = render_again(tmp_path / "sweep")
    assert [path.name for path in written] == ["sweep.md", "sweep.html"]
    assert (tmp_path / "sweep" / "charts" / "sweep.png").stat().st_size > 0


def test_a_bench_run_is_sent_to_its_own_command(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"format": "gateway-bench/1"}))
    with pytest.raises(ValueError, match="python -m gatewaybench report"):
        render_again(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "does not exist"),
        ("", "holds none of results.json, sweep.json"),
        ("{not json", "is not readable JSON"),
        ("[1, 2]", "not a saved run"),
        ('{"format": "something-else/3"}', "unknown kind of run 'something-else/3'"),
        ('{"kind": "weather", "version": 1, "environment": {}, "data": {}}', "unknown kind of run 'weather'"),
    ],
)
def test_what_is_not_a_saved_run_is_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, fragment: str
) -> None:
    run = tmp_path / "run"
    if content is not None:
        run.mkdir()
        if content:
            (run / "results.json").write_text(content)
    assert loadtests_main(["report", str(run)]) == 2
    assert fragment in capsys.readouterr().err
    assert not run.exists() or sorted(p.name for p in run.iterdir()) == (["results.json"] if content else [])
