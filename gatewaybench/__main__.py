"""``python -m gatewaybench {bench,soak,report}``: see each command's ``--help``."""

from __future__ import annotations

import sys

USAGE = (
    "usage: python -m gatewaybench bench [options]   (what the gateway costs per backend; --help)\n"
    "       python -m gatewaybench soak [options]    (steady load while faults happen; --help)\n"
    "       python -m gatewaybench report RUN        (a saved bench or soak's report again, from its JSON)"
)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "bench":
        from gatewaybench.bench import main as bench

        return bench(rest)
    if command == "soak":
        from gatewaybench.soak import main as soak

        return soak(rest)
    if command == "report":
        from gatewaybench.again import main as again

        return again(rest)
    print(f"unknown command {command!r}; the commands are `bench`, `soak` and `report`", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
