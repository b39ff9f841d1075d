"""``python -m gatewaybench report RUN``: a saved gateway bench's summary.txt (from its
``results.json``) or a soak's soak.md (from its ``soak.json``) written again from the JSON alone."""

from __future__ import annotations

from pathlib import Path

from loadtests.report.again import run_again
from loadtests.saved import read_saved

__all__ = ["main", "render_again"]


def render_again(run: Path) -> list[Path]:
    saved = read_saved(run, ("results.json", "soak.json"))
    folder = saved.path.parent
    if saved.kind == "gateway-bench":
        from gatewaybench.bench import summary_text

        (folder / "summary.txt").write_text(summary_text(saved.flat()))
        return [folder / "summary.txt"]
    if saved.kind == "soak":
        from gatewaybench.soak import render

        (folder / "soak.md").write_text(render(saved.flat()))
        return [folder / "soak.md"]
    raise ValueError(
        f"{saved.path} is not a gateway bench or soak run (kind {saved.kind!r}); comparisons and sweeps: "
        f"`python -m loadtests report {run}`"
    )


def main(argv: list[str] | None = None) -> int:
    return run_again("python -m gatewaybench report", __doc__ or "", render_again, argv)
