"""``python -m gatewaybench report RUN``: a bench's summary and a soak's report, again from their JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatewaybench.__main__ import main as gatewaybench_main
from gatewaybench.again import render_again
from gatewaybench.bench import summary_text
from tests.unit.gatewaybench.test_soak import SOAK_REPORT

DATA = Path(__file__).parent / "data"


def test_a_bench_saved_before_its_settings_were_recorded_reads_them_from_its_command(tmp_path: Path) -> None:
    recorded = json.loads((DATA / "bench_results.json").read_text())
    older = {key: value for key, value in recorded.items() if key != "settings"}
    older["argv"] = ["bench-gateway", "--clients", "4"]
    (tmp_path / "results.json").write_text(json.dumps(older))
    assert render_again(tmp_path / "results.json") == [tmp_path / "summary.txt"]
    summary = (tmp_path / "summary.txt").read_text()
    assert summary == summary_text({**recorded, "settings": {**recorded["settings"], "clients": 4}})
    assert "(4 s windows, 4 clients for throughput" in summary


def test_a_soak_gets_its_report_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "soak.json").write_text(json.dumps(SOAK_REPORT))
    assert gatewaybench_main(["report", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == ["wrote", str(tmp_path / "soak.md")]
    assert (tmp_path / "soak.md").read_text().startswith("# Fault soak: 60 s, 4 clients")


def test_a_comparison_is_sent_to_its_own_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "results.json").write_text(json.dumps({"format": "loadtests-results/1"}))
    assert gatewaybench_main(["report", str(tmp_path)]) == 2
    assert "python -m loadtests report" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]
