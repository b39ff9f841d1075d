"""``python -m loadtests report RUN``: write a saved run's report again from its JSON alone.

Every report is drawn from the JSON its run saved, so an older run can be read in today's layout, or a
report that was lost or edited can be had back without measuring again. RUN is the run's folder or
that JSON file: a comparison (``results.json``: report.md, report.html, charts) or a sweep
(``sweep.json``: sweep.md, sweep.html). The gateway bench and the soak have their own
(``python -m gatewaybench report RUN``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "read_saved", "render_again", "run_again"]

_FILES = ("results.json", "sweep.json")


def read_saved(run: Path, files: Sequence[str]) -> tuple[Path, dict[str, Any], str]:
    """The JSON a run saved (``run`` itself, or the first of ``files`` in the folder), its content
    and its kind (the ``format`` or ``schema`` it names; "soak" for a soak's report)."""
    if run.is_file():
        saved = run
    elif not run.is_dir():
        raise ValueError(f"{run} does not exist")
    else:
        found = [run / name for name in files if (run / name).is_file()]
        if not found:
            raise ValueError(f"{run} holds none of {', '.join(files)}: not the folder of a saved run")
        saved = found[0]
    try:
        data: Any = json.loads(saved.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{saved} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{saved} is not a saved run (its JSON is not an object)")
    kind = str(data.get("format") or data.get("schema") or ("soak" if "footprint" in data else ""))
    return saved, data, kind


def render_again(run: Path) -> list[Path]:
    """Write the report of the comparison or sweep saved at ``run`` beside its JSON; returns the files."""
    saved, data, kind = read_saved(run, _FILES)
    folder = saved.parent
    if kind == "loadtests-results/1":
        from loadtests.report import write_report

        paths = write_report(data, folder)
        return [paths["markdown"], paths["html"]]
    if kind.startswith("loadtests-sweep/"):
        from loadtests.report.sweep import write_sweep_report

        paths = write_sweep_report(data, folder)
        return [paths["markdown"], paths["html"]]
    if kind == "soak" or kind.startswith("gateway-bench/"):
        raise ValueError(f"{saved} is a gateway bench or soak run: `python -m gatewaybench report {run}`")
    raise ValueError(f"{saved}: unknown kind of run {kind!r}")


def run_again(
    prog: str, description: str, render: Callable[[Path], list[Path]], argv: list[str] | None
) -> int:
    """The ``report RUN`` command of a package: parse, render, say what was written."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("run", type=Path, help="a run's folder under reports/, or its JSON file")
    args = parser.parse_args(argv)
    try:
        written = render(args.run)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(f"wrote {path}" for path in written))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_again("python -m loadtests report", __doc__ or "", render_again, argv)
