"""``python -m serving up | down | status`` — TorchServe, TF Serving and Triton on the model store,
and a Prometheus that scrapes them and the gateway."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from serving.errors import ServerStartError, ServingError
from serving.lifecycle import SERVERS, up
from serving.process import all_records, group_members, process_group_alive, stop_server
from serving.prometheus import launcher as prometheus_launcher
from serving.settings import ServingSettings, settings_from_env
from serving.triton import launcher as triton_launcher

LAUNCHERS = SERVERS
OPTIONAL = {"triton"}
"""Servers `up` starts when it can: where one cannot start, `up` says why and runs the others."""
MONITORS = {"prometheus": prometheus_launcher}
"""Started by `up` after the servers are ready (optional too), stopped by `down`, shown by `status`."""


def _say(message: str = "") -> None:
    print(message, flush=True)


def cmd_up(settings: ServingSettings, args: argparse.Namespace) -> int:
    wanted = {name: launcher for name, launcher in LAUNCHERS.items() if name not in args.skip}

    def warn(name: str, why: str) -> None:
        print(f"warning: {name} not started: {why}", file=sys.stderr, flush=True)

    required = [name for name in wanted if name not in OPTIONAL]
    try:
        stack = up(settings, wanted, _say, required=required, on_give_up=warn)
    except (ServingError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("stopped what had started", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; stopped what had started", file=sys.stderr)
        return 130
    given_up = dict(stack.failures)
    if not stack.records:
        print("error: no server started", file=sys.stderr)
        return 1
    for name, versions in stack.serves.items():
        _say(f"{name}: serving versions {versions}")
    if settings.prometheus and "prometheus" not in args.skip:
        try:
            _start_prometheus(settings)
        except (ServingError, OSError, subprocess.SubprocessError) as exc:
            stop_server(settings.run_dir, "prometheus")
            given_up["prometheus"] = str(exc)
            print(f"warning: prometheus not started: {exc}", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            for name in (*stack.records, "prometheus"):
                stop_server(settings.run_dir, name)
            print("interrupted; stopped what had started", file=sys.stderr)
            return 130
    _say()
    print_status(settings)
    for name, reason in given_up.items():
        _say(f"{name}: NOT STARTED: {reason.splitlines()[0]}")
    _say()
    _say("Stop everything with: python -m serving down   (or make serve-down)")
    return 0


def _start_prometheus(settings: ServingSettings) -> None:
    """Prometheus on 127.0.0.1, scraping the servers recorded now and the gateway address."""
    prometheus_launcher.find_binary(settings)
    prometheus_launcher.check_ports(settings)
    record = prometheus_launcher.start(settings)
    prometheus_launcher.wait_until_ready(settings, record, 30.0)
    for target, state in sorted(prometheus_launcher.wait_for_targets(settings).items()):
        _say(f"prometheus: target {target}: {state}")
    _say(
        f"prometheus: ready at {prometheus_launcher.url(settings)}, scraping {', '.join(record.info['jobs'])}"
    )


def cmd_triton_setup(settings: ServingSettings, args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        env = triton_launcher.ensure_environment(settings, _say, rebuild=args.rebuild)
    except ServingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _say(f"Triton environment: {env.venv} ({time.monotonic() - started:.0f}s)")
    _say(f"  {triton_launcher.implementation(env)}")
    _say(f"  Python {env.python_version} from {env.base_python}; libpython from {env.libdir}")
    _say(f"  backend stub: {env.stub}")
    return 0


def cmd_down(settings: ServingSettings, args: argparse.Namespace) -> int:
    records = all_records(settings.run_dir)
    if not records:
        _say(f"nothing to stop (no servers recorded in {settings.run_dir / 'pids'})")
        return 0
    leftovers = []
    for record in records:
        was_running, killed = stop_server(settings.run_dir, record.name)
        state = "stopped" if was_running else "was not running"
        hard = f" (SIGKILL needed for {killed})" if killed else ""
        _say(f"{record.name}: {state}{hard}")
        if process_group_alive(record.pid):
            leftovers.append(f"{record.name}: {group_members(record.pid)}")
    if leftovers:
        print(f"error: processes remain: {leftovers}", file=sys.stderr)
        return 1
    return 0


def cmd_compose_config(settings: ServingSettings, args: argparse.Namespace) -> int:
    from serving.compose import write_compose_configs

    try:
        files = write_compose_configs(settings, args.out)
    except ServingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _say(f"Wrote compose configs for versions {files.versions} into {args.out}:")
    for path in (
        files.tfserving_dir,
        files.torchserve_config,
        files.torchserve_model_store,
        files.torchserve_keys,
    ):
        _say(f"  {path}")
    _say("Next: docker compose up   (GPU: docker compose --profile gpu up tfserving-gpu torchserve-gpu)")
    return 0


def _server_rows(settings: ServingSettings) -> list[dict[str, Any]]:
    rows = []
    for record in all_records(settings.run_dir):
        launcher = LAUNCHERS.get(record.name) or MONITORS.get(record.name)
        alive = process_group_alive(record.pid)
        versions: Any = "-"
        if alive and launcher is not None:
            try:
                versions = launcher.version_states(settings)
            except (OSError, ServerStartError, ValueError) as exc:
                versions = f"unreachable ({exc})"
        rows.append({"record": record, "alive": alive, "versions": versions})
    return rows


def print_status(settings: ServingSettings) -> int:
    rows = _server_rows(settings)
    if not rows:
        _say("no servers running (start them with `python -m serving up` or `make serve`)")
        return 1
    healthy = True
    for row in rows:
        record = row["record"]
        ready = (
            row["alive"]
            and isinstance(row["versions"], dict)
            and row["versions"]
            and all(state in ("AVAILABLE", "READY") for state in row["versions"].values())
        )
        healthy &= bool(ready)
        state = "READY" if ready else "NOT READY"
        _say(f"{record.name}: {state}  pid {record.pid}  {record.info['implementation']}")
        _say(f"  versions: {row['versions']}")
        for purpose, address in record.info.get("endpoints", {}).items():
            _say(f"  {purpose:<15} {address}")
        _say(f"  log: {record.log}")
        if record.info.get("note"):
            _say(f"  note: {record.info['note']}")
        if record.name == prometheus_launcher.NAME and ready:
            _print_targets(settings)
    return 0 if healthy else 1


def _print_targets(settings: ServingSettings) -> None:
    """Each scrape target's health (a gateway not started yet shows as down; it does not fail status)."""
    try:
        health = prometheus_launcher.target_health(settings)
    except (OSError, ServingError, KeyError) as exc:
        _say(f"  targets: unreadable ({exc})")
        return
    for target, state in sorted(health.items()):
        _say(f"  target {target}: {state}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    parser.add_argument(
        "--store", type=Path, help="model store root (default: $MODEL_STORE_DIR or the repo's)"
    )
    parser.add_argument("--run-dir", type=Path, help="configs, logs, PID files (default: ./run)")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up", help="start the servers (Triton where it can run) and wait until the model is ready"
    )
    up.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=sorted([*LAUNCHERS, *MONITORS]),
        help="do not start this one (SERVING_PROMETHEUS=0 also leaves Prometheus out)",
    )
    up.add_argument("--versions", help='"latest" (default), "all", or e.g. "1,2"')
    up.add_argument("--host", help="bind address of the inference endpoints (default 127.0.0.1)")
    up.add_argument(
        "--no-token-auth",
        action="store_true",
        help="turn TorchServe's token authorization off (benchmarks on a closed machine only)",
    )
    up.add_argument("--ts-batch-size", type=int, help="TorchServe batchSize (default 1)")
    up.add_argument("--ts-workers", type=int, help="TorchServe workers per version (default 1)")
    up.add_argument("--threads", type=int, help="intra-op threads for both frameworks (default: framework's)")
    up.add_argument("--timeout", type=float, help="seconds to wait for readiness (default 120)")
    up.add_argument(
        "--triton-dynamic-batching",
        action="store_true",
        help="turn Triton's dynamic batcher on (SERVING_TRITON_DYNAMIC_BATCHING; default off)",
    )
    up.add_argument("--triton-max-batch", type=int, help="Triton max_batch_size (default 256)")
    up.add_argument("--triton-queue-delay-us", type=int, help="dynamic batcher max delay (default 1000)")
    setup = commands.add_parser(
        "triton-setup", help="build Triton's environment (build/triton-venv; `up` does it at first use)"
    )
    setup.add_argument("--rebuild", action="store_true", help="rebuild it even if it is in place")
    commands.add_parser("down", help="stop every server `up` started, workers included")
    compose = commands.add_parser("compose-config", help="write the configs docker-compose.yml mounts")
    compose.add_argument("--out", type=Path, default=Path("run/compose"), help="default %(default)s")
    compose.add_argument("--versions", help='"latest" (default), "all", or e.g. "1,2"')
    commands.add_parser("status", help="each server's versions and readiness (exit 1 if not all ready)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {"store_root": args.store, "run_dir": args.run_dir}
    if args.command in ("up", "compose-config"):
        overrides["versions"] = args.versions
    if args.command == "up":
        overrides.update(
            host=args.host,
            ts_token_auth=False if args.no_token_auth else None,
            ts_batch_size=args.ts_batch_size,
            ts_workers=args.ts_workers,
            threads=args.threads,
            startup_timeout_s=args.timeout,
            triton_dynamic_batching=True if args.triton_dynamic_batching else None,
            triton_max_batch=args.triton_max_batch,
            triton_max_queue_delay_us=args.triton_queue_delay_us,
        )
    try:
        settings = settings_from_env(**overrides)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "up":
        return cmd_up(settings, args)
    if args.command == "down":
        return cmd_down(settings, args)
    if args.command == "compose-config":
        return cmd_compose_config(settings, args)
    if args.command == "triton-setup":
        return cmd_triton_setup(settings, args)
    return print_status(settings)


if __name__ == "__main__":
    sys.exit(main())
