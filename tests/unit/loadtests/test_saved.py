"""The envelope every saved run is written in, and runs saved before it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.saved import KINDS, read_saved, write_saved


def test_a_run_is_written_in_the_envelope_and_read_back(tmp_path: Path) -> None:
    results = {"format": "loadtests-results/1", "environment": {"cpus": 2}, "headline": {"rounds": 7}}
    write_saved(tmp_path / "results.json", "comparison", results)
    raw = json.loads((tmp_path / "results.json").read_text())
    assert set(raw) == {"kind", "version", "environment", "data"}
    assert raw["data"] == {"headline": {"rounds": 7}}, "the kind replaces the old format field"
    saved = read_saved(tmp_path, ("results.json",))
    assert (saved.kind, saved.version, saved.environment) == ("comparison", KINDS["comparison"], {"cpus": 2})
    assert saved.flat() == {"headline": {"rounds": 7}, "environment": {"cpus": 2}}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"], "no partial file is left"


@pytest.mark.parametrize(
    ("former", "kind"),
    [
        ({"format": "loadtests-results/1", "steps": []}, "comparison"),
        ({"schema": "loadtests-sweep/1", "rows": []}, "sweep"),
        ({"format": "gateway-bench/1", "steps": []}, "gateway-bench"),
        ({"footprint": {}, "phases": []}, "soak"),
    ],
)
def test_runs_saved_before_the_envelope_are_read_as_version_one(
    tmp_path: Path, former: dict[str, object], kind: str
) -> None:
    (tmp_path / "old.json").write_text(json.dumps({**former, "environment": {"cpus": 2}}))
    saved = read_saved(tmp_path / "old.json", ())
    assert (saved.kind, saved.version, saved.environment) == (kind, 1, {"cpus": 2})
    assert "environment" not in saved.data


def test_an_unknown_kind_is_not_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kind of saved run 'weather'"):
        write_saved(tmp_path / "x.json", "weather", {})
    assert not (tmp_path / "x.json").exists()
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_saved(tmp_path / "x.json", "soak", {"when": object()})
    assert list(tmp_path.iterdir()) == [], "a run that cannot be written leaves nothing behind"
