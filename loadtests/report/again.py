"""``python -m loadtests report RUN``: write a saved run's report again from its JSON alone.

Every report is drawn from the JSON its run saved, so an older run can be read in today's layout, or a
report that was lost or edited can be had back without measuring again. RUN is the run's folder or
that JSON file: a comparison (``results.json``: report.md, report.html, charts), a ``bench-gateway``
run (``results.json``: summary.txt), a soak (``soak.json``: soak.md) or a sweep (``sweep.json``:
sweep.md, sweep.html).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "render_again"]

_FILES = ("results.json", "soak.json", "sweep.json")


def _saved(run: Path) -> Path:
    """The JSON file a run saved: ``run`` itself, or the one file of :data:`_FILES` in the folder."""
    if run.is_file():
        return run
    if not run.is_dir():
        raise ValueError(f"{run} does not exist")
    found = [run / name for name in _FILES if (run / name).is_file()]
    if not found:
        raise ValueError(f"{run} holds none of {', '.join(_FILES)}: not the folder of a saved run")
    return found[0]


def render_again(run: Path) -> list[Path]:
    """Write the report of the run saved at ``run`` beside its JSON; returns the files written."""
    saved = _saved(run)
    try:
        data: Any = json.loads(saved.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{saved} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{saved} is not a saved run (its JSON is not an object)")
    folder = saved.parent
    kind = data.get("format") or data.get("schema") or ("soak" if "footprint" in data else "")
    if kind == "loadtests-results/1":
        from loadtests.report import write_report

        paths = write_report(data, folder)
        return [paths["markdown"], paths["html"]]
    if kind == "gateway-bench/1":
        from loadtests.gateway_bench import summary_text

        (folder / "summary.txt").write_text(summary_text(data))
        return [folder / "summary.txt"]
    if kind == "soak":
        from loadtests.soak import render

        (folder / "soak.md").write_text(render(data))
        return [folder / "soak.md"]
    if str(kind).startswith("loadtests-sweep/"):
        from loadtests.report.sweep import write_sweep_report

        paths = write_sweep_report(data, folder)
        return [paths["markdown"], paths["html"]]
    raise ValueError(f"{saved}: unknown kind of run {kind!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests report", description=__doc__)
    parser.add_argument("run", type=Path, help="a run's folder under reports/, or its JSON file")
    args = parser.parse_args(argv)
    try:
        written = render_again(args.run)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(f"wrote {path}" for path in written))
    return 0
