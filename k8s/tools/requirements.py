"""Print the requirements of the project (plus extras) that an image installs, minus named exclusions.

Used by the Dockerfile so that pyproject.toml stays the one list of dependencies: the gateway image
installs the base dependencies and the ``gateway`` extra except the frameworks it does not run
(``--exclude``); the project itself is then installed with ``--no-deps``. Naming an exclusion that is
not a requirement is an error, so a stale exclusion list fails the build instead of going unnoticed.

    python requirements.py pyproject.toml --extras gateway --exclude "tensorflow torch" > requirements.txt
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if match is None:
        raise ValueError(f"cannot read a project name from requirement {requirement!r}")
    return canonical(match.group(1))


def select(pyproject: Path, extras: Sequence[str], exclude: Sequence[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    unknown_extras = sorted(set(extras) - set(optional))
    if unknown_extras:
        raise ValueError(f"{pyproject}: no extra(s) {unknown_extras}")
    requirements = list(project.get("dependencies", []))
    for extra in extras:
        requirements += optional[extra]
    excluded = {canonical(name) for name in exclude}
    names = {requirement_name(requirement) for requirement in requirements}
    if stale := sorted(excluded - names):
        raise ValueError(f"excluded but not required: {stale} (update the exclusion list)")
    chosen: dict[str, str] = {}
    for requirement in requirements:
        name = requirement_name(requirement)
        if name not in excluded:
            chosen.setdefault(name, requirement)  # the first mention wins (base before extras)
    return list(chosen.values())


def _words(text: str) -> list[str]:
    return text.replace(",", " ").split()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="requirements.py", description=__doc__.split("\n")[0])
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--extras", default="", help="extras to include, separated by spaces or commas")
    parser.add_argument(
        "--exclude",
        default="",
        help="project names to leave out, separated by spaces or commas (one argument)",
    )
    args = parser.parse_args(argv)
    try:
        lines = select(args.pyproject, _words(args.extras), _words(args.exclude))
    except ValueError as exc:
        print(f"requirements.py: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
