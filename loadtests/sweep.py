"""``python -m loadtests sweep``: each stack's batching knobs at a few settings, each measured for capacity.

For every setting the comparison runs once on its own (``compare --start``, the stack's direct REST
target only, the setting's ``SERVING_*`` variables in force while its server starts), so every
setting gets a freshly started server; the capacity each run finds under the SLO goes into
``reports/sweep-<timestamp>/sweep.{json,md,html}`` with one chart, next to each run's own report.
Any other ``compare`` option (``--preset``, ``--slo-ms``, ``--capacity-*`` ...) is passed through;
the closed-loop steps default to one user (the search starts from it).

The TF Serving stand-in has no server-side batching; TF Serving's batching is swept only where the
official ``tensorflow_model_server`` is installed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from loadtests.saved import read_saved, write_saved

__all__ = ["SETTINGS", "Setting", "main", "settings_for"]

SCHEMA = "loadtests-sweep/1"


@dataclass(frozen=True)
class Setting:
    stack: str
    """The ``python -m serving`` stack (``torchserve``, ``tfserving``, ``triton``)."""
    target: str
    """The direct REST target that measures it."""
    label: str
    env: tuple[tuple[str, str], ...]
    """``SERVING_*`` variables of this setting."""


SETTINGS: tuple[Setting, ...] = (
    Setting("torchserve", "torchserve-rest", "TorchServe, batchSize 1", (("SERVING_TS_BATCH_SIZE", "1"),)),
    Setting(
        "torchserve",
        "torchserve-rest",
        "TorchServe, batchSize 4, maxBatchDelay 2 ms",
        (("SERVING_TS_BATCH_SIZE", "4"), ("SERVING_TS_MAX_BATCH_DELAY_MS", "2")),
    ),
    Setting(
        "torchserve",
        "torchserve-rest",
        "TorchServe, batchSize 8, maxBatchDelay 5 ms",
        (("SERVING_TS_BATCH_SIZE", "8"), ("SERVING_TS_MAX_BATCH_DELAY_MS", "5")),
    ),
    Setting("triton", "v2-rest", "Triton, no dynamic batcher", (("SERVING_TRITON_DYNAMIC_BATCHING", "0"),)),
    Setting(
        "triton",
        "v2-rest",
        "Triton, dynamic batcher, delay 0.5 ms",
        (("SERVING_TRITON_DYNAMIC_BATCHING", "1"), ("SERVING_TRITON_MAX_QUEUE_DELAY_US", "500")),
    ),
    Setting(
        "triton",
        "v2-rest",
        "Triton, dynamic batcher, delay 2 ms",
        (("SERVING_TRITON_DYNAMIC_BATCHING", "1"), ("SERVING_TRITON_MAX_QUEUE_DELAY_US", "2000")),
    ),
    Setting("tfserving", "tfserving-rest", "TF Serving, no batching", (("SERVING_TF_BATCHING", "0"),)),
    Setting("tfserving", "tfserving-rest", "TF Serving, batching", (("SERVING_TF_BATCHING", "1"),)),
)
"""The settings of ``make loadtest``; ``--stacks`` picks stacks, ``--settings N`` the first N of each."""


def settings_for(stacks: Sequence[str], per_stack: int, official_tf: bool) -> list[Setting]:
    """The settings to run: the stand-in cannot batch, so it gets its one setting without batching."""
    chosen: list[Setting] = []
    for stack in stacks:
        mine = [s for s in SETTINGS if s.stack == stack]
        if stack == "tfserving" and not official_tf:
            mine = [replace(mine[0], label="TF Serving stand-in (no batching)")]
        chosen.extend(mine[:per_stack] if per_stack > 0 else mine)
    return chosen


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _capacity(reports: Sequence[Path], target: str) -> dict[str, Any] | None:
    """The capacity the setting's run found (``reports``: the folders that run made)."""
    reports = [path for path in reports if (path / "results.json").exists()]
    if not reports:
        return None
    results = read_saved(reports[-1], ("results.json",)).data
    found = (results.get("slo_capacity") or {}).get("targets", {}).get(target)
    if found is None:
        return None
    return {
        **found,
        "report": str(reports[-1] / "report.html"),
        "slo": results["slo_capacity"].get("slo", {}),
        "environment": results.get("environment", {}),
    }


def main(argv: list[str]) -> int:
    import argparse

    from loadtests.compare import compare
    from loadtests.config import build_parser, config_from_args

    parser = argparse.ArgumentParser(
        prog="python -m loadtests sweep",
        description="Each stack's batching settings, each measured for capacity under the SLO (its own "
        "`compare --start` run); other options go to compare (python -m loadtests compare --help).",
    )
    parser.add_argument(
        "--stacks", default="torchserve,triton,tfserving", help="stacks to sweep (%(default)s)"
    )
    parser.add_argument(
        "--settings", type=int, default=0, help="the first N settings of each stack (0: all; %(default)s)"
    )
    parser.add_argument("--out", type=Path, default=Path("reports"), help="sweep-<timestamp>/ goes here")
    ours, rest = parser.parse_known_args(argv)
    official_tf = shutil.which("tensorflow_model_server") is not None
    chosen = settings_for(
        [s.strip() for s in ours.stacks.split(",") if s.strip()], ours.settings, official_tf
    )
    folder = ours.out / f"sweep-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True)
    rows: list[dict[str, Any]] = []
    for index, setting in enumerate(chosen, 1):
        print(f"== sweep {index}/{len(chosen)}: {setting.label}", flush=True)
        # Every run's report goes straight into the sweep's folder: deeper paths make the Unix socket
        # paths of Triton's Python backend (under the run's servers/) longer than the system allows.
        args = [*rest, "--start", "--targets", setting.target, "--no-calibration", "--out", str(folder)]
        if "--users" not in rest:  # the search starts from the 1-user step; more steps are compare's job
            args += ["--users", "1"]
        config = config_from_args(build_parser().parse_args(args))
        before = set(folder.iterdir())
        with _environment(dict(setting.env)):
            code = compare(config)
        made = sorted(set(folder.iterdir()) - before)
        rows.append({**asdict(setting), "exit_code": code, "capacity": _capacity(made, setting.target)})
    results = {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rows": rows,
    }
    write_saved(folder / "sweep.json", "sweep", results)
    from loadtests.report.sweep import write_sweep_report

    paths = write_sweep_report(results, folder)
    print("\n".join(paths["sentences"]))
    print(f"Sweep report: {paths['html']}")
    return 0 if all(row["exit_code"] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
