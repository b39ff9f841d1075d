"""``python -m loadtests report RUN``: each kind of saved run written again from its JSON (recorded runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loadtests.__main__ import main as loadtests_main
from loadtests.gateway_bench import summary_text
from loadtests.report.again import render_again
from tests.unit.loadtests.test_soak import SOAK_REPORT
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


def test_a_bench_saved_before_its_settings_were_recorded_reads_them_from_its_command(tmp_path: Path) -> None:
    recorded = json.loads((DATA / "gateway_bench_results.json").read_text())
    older = {key: value for key, value in recorded.items() if key != "settings"}
    older["argv"] = ["bench-gateway", "--clients", "4"]
    (tmp_path / "results.json").write_text(json.dumps(older))
    assert render_again(tmp_path / "results.json") == [tmp_path / "summary.txt"]
    summary = (tmp_path / "summary.txt").read_text()
    assert summary == summary_text({**recorded, "settings": {**recorded["settings"], "clients": 4}})
    assert "(4 s windows, 4 clients for throughput" in summary


def test_a_soak_and_a_sweep_get_theirs(tmp_path: Path) -> None:
    (tmp_path / "soak").mkdir()
    (tmp_path / "soak" / "soak.json").write_text(json.dumps(SOAK_REPORT))
    assert render_again(tmp_path / "soak") == [tmp_path / "soak" / "soak.md"]
    assert (tmp_path / "soak" / "soak.md").read_text().startswith("# Fault soak: 60 s, 4 clients")
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.json").write_text(json.dumps(_sweep()))
    written = render_again(tmp_path / "sweep")
    assert [path.name for path in written] == ["sweep.md", "sweep.html"]
    assert (tmp_path / "sweep" / "charts" / "sweep.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "does not exist"),
        ("", "holds none of results.json, soak.json, sweep.json"),
        ("{not json", "is not readable JSON"),
        ("[1, 2]", "not a saved run"),
        ('{"format": "something-else/3"}', "unknown kind of run 'something-else/3'"),
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
