"""``python -m gatewaybench report RUN``: a saved gateway bench's summary.txt (from its
``results.json``) or a soak's soak.md (from its ``soak.json``) written again from the JSON alone."""

from __future__ import annotations

from pathlib import Path

from loadtests.report.again import read_saved, run_again

__all__ = ["main", "render_again"]


def render_again(run: Path) -> list[Path]:
    saved, data, kind = read_saved(run, ("results.json", "soak.json"))
    folder = saved.parent
    if kind.startswith("gateway-bench/"):
        from gatewaybench.bench import summary_text

        (folder / "summary.txt").write_text(summary_text(data))
        return [folder / "summary.txt"]
    if kind == "soak":
        from gatewaybench.soak import render

        (folder / "soak.md").write_text(render(data))
        return [folder / "soak.md"]
    raise ValueError(
        f"{saved} is not a gateway bench or soak run (kind {kind!r}); comparisons and sweeps: "
        f"`python -m loadtests report {run}`"
    )


def main(argv: list[str] | None = None) -> int:
    return run_again("python -m gatewaybench report", __doc__ or "", render_again, argv)
