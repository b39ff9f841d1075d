"""``python -m loadtests rerun-check RUN RUN [RUN ...]``: do saved comparisons agree?

Reads each run's ``results.json`` and prints, per headline figure, every later run against the first:
both estimates, both 95% rerun intervals, the change, whether each interval holds the other run's
estimate and whether the verdict is the same; then how many findings reproduced. It is the check
``compare --repeat N`` prints, for runs made apart (two ``make demo`` runs, yesterday's and today's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loadtests.headline import reproducibility_json
from loadtests.report.headline_text import reproducibility_text
from loadtests.saved import read_saved

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests rerun-check", description=__doc__)
    parser.add_argument("runs", type=Path, nargs="+", help="two or more runs' folders (or results.json)")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("give two runs or more")
    headlines = []
    try:
        for run in args.runs:
            saved = read_saved(run, ("results.json",))
            if saved.kind != "comparison" or not saved.data.get("headline"):
                raise ValueError(f"{saved.path} is not a comparison with a headline (kind {saved.kind!r})")
            headlines.append(saved.data["headline"])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(f"run {i}: {run}" for i, run in enumerate(args.runs, start=1)))
    print(reproducibility_text(reproducibility_json(headlines)))
    return 0
