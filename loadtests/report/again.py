"""``python -m loadtests report RUN``: write a saved run's report again from its JSON alone.

Every report is drawn from the JSON its run saved, so an older run can be read in today's layout, or a
report that was lost or edited can be had back without measuring again. RUN is the run's folder or
that JSON file: a comparison (``results.json``: report.md, report.html, charts) or a sweep
(``sweep.json``: sweep.md, sweep.html). The gateway bench and the soak have their own
(``python -m gatewaybench report RUN``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

from loadtests.saved import read_saved

__all__ = ["main", "render_again", "run_again"]

_FILES = ("results.json", "sweep.json")


def render_again(run: Path) -> list[Path]:
    """Write the report of the comparison or sweep saved at ``run`` beside its JSON; returns the files
    (the JSON is written again too, in today's envelope)."""
    saved = read_saved(run, _FILES)
    folder = saved.path.parent
    if saved.kind == "comparison":
        from loadtests.records import Results
        from loadtests.report import write_report

        paths = write_report(cast("Results", saved.flat()), folder)  # the JSON edge: as compare wrote it
        return [paths["markdown"], paths["html"]]
    if saved.kind == "sweep":
        from loadtests.report.sweep import write_sweep_report

        paths = write_sweep_report(saved.flat(), folder)
        return [paths["markdown"], paths["html"]]
    if saved.kind in ("soak", "gateway-bench"):
        raise ValueError(
            f"{saved.path} is a gateway bench or soak run: `python -m gatewaybench report {run}`"
        )
    raise ValueError(f"{saved.path}: unknown kind of run {saved.kind!r}")


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
