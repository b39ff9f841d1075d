"""``python -m loadtests compare [options]`` — see ``--help`` for every knob."""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


MOVED = {"bench-gateway": "bench", "soak": "soak"}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(
            "usage: python -m loadtests compare [options]   (python -m loadtests compare --help)\n"
            "       python -m loadtests sweep [options]     (capacity per batching setting; --help)\n"
            "       python -m loadtests report RUN          (a saved run's report again, from its JSON)\n"
            "       python -m loadtests rerun-check RUN RUN (do saved comparisons agree?)\n"
            "The gateway's own cost and the fault soak: python -m gatewaybench {bench,soak}."
        )
        return 0 if args else 2
    if args[0] in MOVED:
        print(f"`{args[0]}` is now `python -m gatewaybench {MOVED[args[0]]}`", file=sys.stderr)
        return 2
    if args[0] == "sweep":
        from loadtests.sweep import main as sweep

        return sweep(args[1:])
    if args[0] == "rerun-check":
        from loadtests.rerun import main as rerun_check

        return rerun_check(args[1:])
    if args[0] == "report":
        from loadtests.report.again import main as report_again

        return report_again(args[1:])
    if args[0] != "compare":
        print(
            f"unknown command {args[0]!r}; the commands are `compare`, `sweep`, `report` and `rerun-check`",
            file=sys.stderr,
        )
        return 2
    from loadtests.compare import compare
    from loadtests.config import build_parser, config_from_args
    from loadtests.targets import select_targets

    parsed = build_parser().parse_args(args[1:])
    try:
        config = config_from_args(parsed)
        config.plan_settings()
        select_targets(config.targets, config.skip)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return compare(config)


if __name__ == "__main__":
    sys.exit(main())
