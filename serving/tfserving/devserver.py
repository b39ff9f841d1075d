"""The project's TF-Serving-compatible development server, a stand-in for ``tensorflow_model_server``.

    python -m serving.tfserving.devserver --model-name mnist --model-base-path STORE/mnist \\
        --host 127.0.0.1 --rest-port 8501 --grpc-port 8500 [--poll-seconds 2] \\
        [--version-labels stable=1,canary=2] [--version-policy latest --num-versions 1]

It serves TF Serving's REST and gRPC APIs over the same SavedModel version directories, and says
what it is (the startup log line, an ``X-Served-By`` header on every REST answer) so that it is
never reported as TensorFlow Serving. SIGTERM or SIGINT stops both servers; the exit status is 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from model_store.contract import MODEL_NAME
from serving.tfserving.identity import STANDIN_NAME
from serving.tfserving.versioning import POLICY_KINDS, VersionPolicy, parse_version_labels, parse_versions

logger = logging.getLogger("serving.tfserving.devserver")

DEFAULT_GRPC_PORT = 8500
DEFAULT_REST_PORT = 8501
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
SHUTDOWN_GRACE_S = 5.0


@dataclass(frozen=True)
class DevServerSettings:
    model_name: str
    base_path: Path
    host: str
    rest_port: int
    grpc_port: int
    poll_seconds: float
    policy: VersionPolicy
    labels: dict[str, int]
    intra_op_threads: int
    inter_op_threads: int
    rest_threads: int
    grpc_threads: int
    max_body_bytes: int


def _default_threads() -> int:
    return 4 * (os.cpu_count() or 1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.tfserving.devserver",
        description=f"{STANDIN_NAME}: TF Serving's REST and gRPC APIs over a SavedModel version store.",
    )
    parser.add_argument("--model-name", default=MODEL_NAME, help="name clients use (default %(default)s)")
    parser.add_argument("--model-base-path", required=True, type=Path, help="folder of numeric version dirs")
    parser.add_argument("--host", default="127.0.0.1", help="address both servers bind (default %(default)s)")
    parser.add_argument(
        "--rest-port", type=int, default=DEFAULT_REST_PORT, help="REST port; 0 turns REST off"
    )
    parser.add_argument(
        "--grpc-port", type=int, default=DEFAULT_GRPC_PORT, help="gRPC port; 0 turns gRPC off"
    )
    parser.add_argument(
        "--poll-seconds",
        type=float,
        default=2.0,
        help="poll for new versions this often; 0 = only at startup",
    )
    parser.add_argument("--version-labels", default="", help="e.g. stable=1,canary=2")
    parser.add_argument("--version-policy", choices=POLICY_KINDS, default="latest")
    parser.add_argument("--num-versions", type=int, default=1, help="how many versions 'latest' serves")
    parser.add_argument("--versions", default="", help="versions 'specific' serves, e.g. 1,2")
    parser.add_argument(
        "--intra-op-threads", type=int, default=0, help="TF intra-op threads (0 = TF default)"
    )
    parser.add_argument(
        "--inter-op-threads", type=int, default=0, help="TF inter-op threads (0 = TF default)"
    )
    parser.add_argument(
        "--rest-threads", type=int, default=_default_threads(), help="concurrent REST predictions"
    )
    parser.add_argument("--grpc-threads", type=int, default=_default_threads(), help="gRPC worker threads")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="largest request")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def settings_from_args(args: argparse.Namespace) -> DevServerSettings:
    """Validate the parsed flags (``ValueError`` names the bad one)."""
    policy = VersionPolicy(args.version_policy, args.num_versions, parse_versions(args.versions))
    for flag in ("rest_port", "grpc_port"):
        if not 0 <= getattr(args, flag) <= 65535:
            raise ValueError(f"--{flag.replace('_', '-')} must be 0..65535")
    if min(args.rest_threads, args.grpc_threads, args.max_body_bytes) < 1:
        raise ValueError("--rest-threads, --grpc-threads and --max-body-bytes must be positive")
    if min(args.intra_op_threads, args.inter_op_threads, args.poll_seconds) < 0:
        raise ValueError("thread counts and --poll-seconds cannot be negative")
    return DevServerSettings(
        model_name=args.model_name,
        base_path=args.model_base_path.expanduser().resolve(),
        host=args.host,
        rest_port=args.rest_port,
        grpc_port=args.grpc_port,
        poll_seconds=args.poll_seconds,
        policy=policy,
        labels=parse_version_labels(args.version_labels),
        intra_op_threads=args.intra_op_threads,
        inter_op_threads=args.inter_op_threads,
        rest_threads=args.rest_threads,
        grpc_threads=args.grpc_threads,
        max_body_bytes=args.max_body_bytes,
    )


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve(settings: DevServerSettings, stop: threading.Event) -> None:
    """Load, serve until ``stop`` is set, then stop both servers and the poller."""
    import tensorflow as tf  # heavy: imported only once the flags are known to be good

    from serving.tfserving.grpc_api import make_grpc_server
    from serving.tfserving.metrics import Metrics
    from serving.tfserving.repository import ModelRepository
    from serving.tfserving.rest import RestApi, make_http_server

    tf.config.threading.set_intra_op_parallelism_threads(settings.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(settings.inter_op_threads)

    repository = ModelRepository(settings.model_name, settings.base_path, settings.policy, settings.labels)
    repository.refresh()
    if not repository.available_versions():
        logger.warning("no loadable version under %s yet; polling for one", settings.base_path)
    repository.start_polling(settings.poll_seconds)

    metrics = Metrics(settings.model_name)
    grpc_server = None
    http_server = None
    http_thread = None
    try:
        if settings.grpc_port:
            grpc_server = make_grpc_server(
                _address(settings.host, settings.grpc_port),
                repository,
                metrics,
                max_workers=settings.grpc_threads,
                max_message_bytes=settings.max_body_bytes,
            )
            grpc_server.start()
        if settings.rest_port:
            api = RestApi(repository, metrics, settings.rest_threads)
            http_server = make_http_server(settings.host, settings.rest_port, api, settings.max_body_bytes)
            http_thread = threading.Thread(target=http_server.serve_forever, name="rest", daemon=True)
            http_thread.start()
        logger.info(
            "%s serving model %r versions %s from %s: gRPC %s, REST %s",
            STANDIN_NAME,
            settings.model_name,
            repository.available_versions(),
            settings.base_path,
            _address(settings.host, settings.grpc_port) if settings.grpc_port else "off",
            f"http://{_address(settings.host, settings.rest_port)}" if settings.rest_port else "off",
        )
        while not stop.wait(0.25):
            pass
        logger.info("stopping the stand-in")
    finally:
        if http_server is not None:
            http_server.shutdown()
            http_server.server_close()
        if http_thread is not None:
            http_thread.join(SHUTDOWN_GRACE_S)
        if grpc_server is not None:
            grpc_server.stop(SHUTDOWN_GRACE_S).wait(SHUTDOWN_GRACE_S + 1)
        repository.stop()
        logger.info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if not settings.base_path.is_dir():
        parser.error(f"--model-base-path {settings.base_path} is not a directory")

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        serve(settings, stop)
    except OSError as exc:
        logger.error("%s could not start: %s", STANDIN_NAME, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
