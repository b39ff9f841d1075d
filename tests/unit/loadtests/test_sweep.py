"""The batching sweep: which settings run, the environment each one starts with, its report (templates)."""

from __future__ import annotations

import copy
import json
import os
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from loadtests.report.sweep import write_sweep_report
from loadtests.sweep import SETTINGS, _environment, settings_for

RECORDED = Path(__file__).parent / "data" / "capacity_results.json"


def test_the_stand_in_gets_one_setting_and_the_official_server_its_batching() -> None:
    stand_in = settings_for(["torchserve", "tfserving"], 0, official_tf=False)
    assert [s.label for s in stand_in if s.stack == "tfserving"] == ["TF Serving stand-in (no batching)"]
    assert len([s for s in stand_in if s.stack == "torchserve"]) == 3
    official = settings_for(["tfserving"], 0, official_tf=True)
    assert [dict(s.env)["SERVING_TF_BATCHING"] for s in official] == ["0", "1"]
    assert [s.stack for s in settings_for(["triton", "torchserve"], 1, official_tf=False)] == [
        "triton",
        "torchserve",
    ]
    assert len({s.label for s in SETTINGS}) == len(SETTINGS)


def test_a_settings_environment_is_undone_afterwards() -> None:
    os.environ.pop("SERVING_TS_BATCH_SIZE", None)
    with _environment({"SERVING_TS_BATCH_SIZE": "8"}):
        assert os.environ["SERVING_TS_BATCH_SIZE"] == "8"
    assert "SERVING_TS_BATCH_SIZE" not in os.environ


def _sweep() -> dict[str, Any]:
    """Three settings whose capacity blocks are the recorded run's, with a quiet machine's figures put in."""
    recorded = json.loads(RECORDED.read_text())
    base = recorded["slo_capacity"]["targets"]
    rows = []
    for setting, value in zip(
        settings_for(["torchserve", "triton"], 2, official_tf=False), (200, 400, 150, 0), strict=True
    ):
        capacity = copy.deepcopy(base[setting.target])
        capacity.update(value=float(value), low=value * 0.9, high=value * 1.1 or 5.0)
        capacity.update(
            cpu_s_per_1000={setting.stack: 2.0}, report="r.html", environment=recorded["environment"]
        )
        capacity["slo"] = recorded["slo_capacity"]["slo"]
        rows.append(
            {
                "stack": setting.stack,
                "target": setting.target,
                "label": setting.label,
                "env": [],
                "exit_code": 0,
                "capacity": capacity,
            }
        )
    rows.append(
        {
            "stack": "triton",
            "target": "v2-rest",
            "label": "Triton, broken",
            "env": [],
            "exit_code": 1,
            "capacity": None,
        }
    )
    return {"schema": "loadtests-sweep/1", "rows": rows}


def test_the_sweep_report_names_the_best_configuration(tmp_path: Path) -> None:
    paths = write_sweep_report(_sweep(), tmp_path)
    assert paths["sentences"][0] == (
        "On this machine (2 x AMD EPYC), the configuration that served the most within p99 ≤ 10 ms was "
        "TorchServe, batchSize 4, maxBatchDelay 2 ms: 400 req/s, 2.0x its stack's TorchServe, batchSize 1."
    )
    assert paths["sentences"][1] == "Best of Triton: Triton, no dynamic batcher, 150 req/s."
    page = paths["html"].read_text()
    HTMLParser().feed(page)
    assert page.count("<tr>") == 1 + 5 and "failed (exit 1)" in page
    assert (tmp_path / "charts" / "sweep.png").read_bytes().startswith(b"\x89PNG")
    assert paths["markdown"].read_text().count("\n| ") == 2 + 5
