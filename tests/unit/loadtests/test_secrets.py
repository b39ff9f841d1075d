"""Report scrubbing: TorchServe's key file goes, its keys are redacted everywhere else."""

from __future__ import annotations

import json
from pathlib import Path

from loadtests.secrets import KEY_FILE_NAME, REDACTED, scrub_report, secrets_in

KEYS = {"management": "Mgmt7xQz", "inference": "Infr9kLp", "API": "ApiK3yWv"}


def make_report(root: Path) -> None:
    run = root / "servers" / "torchserve"
    run.mkdir(parents=True)
    (run / KEY_FILE_NAME).write_text(
        json.dumps({name: {"key": key, "expiration time": ""} for name, key in KEYS.items()})
    )
    (run / "ts_log.log").write_text(f"token renewed: {KEYS['inference']}\nmanagement {KEYS['management']}\n")
    (root / "results.json").write_text(json.dumps({"note": f"Bearer {KEYS['inference']}", "n": 1}))
    (root / "report.md").write_text("nothing secret here\n")


def test_key_files_are_deleted_and_keys_redacted_everywhere(tmp_path: Path) -> None:
    make_report(tmp_path)
    changed = scrub_report(tmp_path)
    assert not list(tmp_path.rglob(KEY_FILE_NAME))
    assert secrets_in(tmp_path, set(KEYS.values())) == []
    assert {p.name for p in changed} == {KEY_FILE_NAME, "ts_log.log", "results.json"}
    assert REDACTED in (tmp_path / "servers" / "torchserve" / "ts_log.log").read_bytes()
    assert json.loads((tmp_path / "results.json").read_text())["n"] == 1  # still valid JSON
    assert (tmp_path / "report.md").read_text() == "nothing secret here\n"


def test_a_report_without_keys_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "report.md").write_text("x")
    assert scrub_report(tmp_path) == [] and (tmp_path / "report.md").read_text() == "x"
    assert scrub_report(tmp_path / "missing") == []
