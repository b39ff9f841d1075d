"""Hand TorchServe's inference key to the gateway through a Kubernetes Secret, and keep it fresh.

TorchServe 0.12 cannot be given a key: at start-up it draws random keys and writes them to
``key_file.json`` in its working directory (mode 0600); keys expire after ``token_expiration_min``
and ``PUT /token?type=inference`` on the management API (127.0.0.1 only, authorised with the API key)
replaces the inference key at once. This script runs beside TorchServe in the same pod, with the
same user and a shared working directory, and has two subcommands:

``publish`` (the sidecar's main loop)
    Waits until TorchServe answers ``/ping`` with the key in the file, then merge-patches the Secret
    with an *inference-only* copy of the key file (management and API keys blanked, so no key that
    can change the server leaves the pod). It renews the inference key ``--renew-before`` seconds
    before it expires and publishes the new one. Its service account may only get and patch that
    one Secret (k8s/base/torchserve/rbac.yaml).

``ping`` (TorchServe's readiness and startup probes)
    Exit 0 when ``/ping`` answers 200 with the current inference key: the frontend is up and every
    model has its minimum of ready workers. TorchServe answers /ping without a key with 400.

``alive`` (this sidecar's own probes)
    Exit 0 when the publish loop touched its heartbeat file within ``--max-age`` seconds.

It runs on the Python of the official TorchServe image (3.9), standard library only.
"""

from __future__ import annotations

import argparse
import base64
import calendar
import json
import os
import signal
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
SECRET_KEY = "key_file.json"
"""The Secret's data key; the gateway mounts the Secret and reads this file (GATEWAY_TORCHSERVE_KEY_FILE)."""


def log(message: str) -> None:
    print(f"keypublisher: {message}", file=sys.stderr, flush=True)


def read_key_file(path: Path) -> dict[str, Any]:
    """TorchServe's key file; ValueError if it is not one (yet: TorchServe may be writing it)."""
    document = json.loads(path.read_text())
    for section in ("inference", "management", "API"):
        if not isinstance(document.get(section), dict) or not document[section].get("key"):
            raise ValueError(f"{path}: no {section} key")
    return document


def inference_only(document: dict[str, Any]) -> dict[str, Any]:
    """The key file the gateway gets: same shape, but only the inference key is real."""
    inference = document["inference"]
    return {
        "management": {"key": ""},
        "inference": {"key": inference["key"], "expiration time": inference.get("expiration time", "")},
        "API": {"key": ""},
    }


def expires_at(document: dict[str, Any]) -> float | None:
    """The inference key's expiry as a Unix time (TorchServe writes ISO-8601 UTC with nanoseconds)."""
    raw = document["inference"].get("expiration time")
    if not raw:
        return None
    head = raw.rstrip("Z").split(".")[0]
    return float(calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")))


def http(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 5.0,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # nosec B310  # http(s) URLs from the pod spec and the API server's env
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def ping(inference_url: str, key: str, timeout: float = 3.0) -> tuple[int, bytes]:
    return http(f"{inference_url}/ping", headers={"Authorization": f"Bearer {key}"}, timeout=timeout)


def renew_inference_key(management_url: str, api_key: str) -> None:
    """TorchServe replaces the inference key and rewrites its key file."""
    status, body = http(
        f"{management_url}/token?type=inference",
        method="PUT",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    if status != 200:
        raise OSError(f"renewal refused ({status}): {body[:200]!r}")


class SecretClient:
    """Merge-patches one Secret through the Kubernetes API with the pod's projected token."""

    def __init__(self, api_url: str, namespace: str, token_file: Path, ca_file: Path | None) -> None:
        self.api_url = api_url.rstrip("/")
        self.namespace = namespace
        self.token_file = token_file
        self.context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None

    def patch(self, name: str, data: dict[str, bytes], annotations: dict[str, str]) -> None:
        body = {
            "metadata": {"annotations": annotations},
            "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
        }
        token = self.token_file.read_text().strip()  # re-read: the kubelet rotates projected tokens
        status, reply = http(
            f"{self.api_url}/api/v1/namespaces/{self.namespace}/secrets/{name}",
            method="PATCH",
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/merge-patch+json",
                "Accept": "application/json",
            },
            body=json.dumps(body).encode(),
            context=self.context,
        )
        if status != 200:
            raise OSError(f"patching secret {self.namespace}/{name} failed ({status}): {reply[:300]!r}")


class Publisher:
    """One pass of the loop per :meth:`step`; state is the last document published."""

    def __init__(self, args: argparse.Namespace, secrets: SecretClient) -> None:
        self.args = args
        self.secrets = secrets
        self.published: dict[str, Any] | None = None

    def step(self, now: float) -> str:
        """Do what is due; returns what happened (for logs and tests)."""
        args = self.args
        try:
            document = read_key_file(args.key_file)
        except (OSError, ValueError):
            return "waiting for the key file"
        expiry = expires_at(document)
        if expiry is not None and expiry - now < args.renew_before:
            renew_inference_key(args.management_url, document["API"]["key"])
            return "renewed"
        public = inference_only(document)
        if public == self.published:
            return "up to date"
        status, _ = ping(args.inference_url, public["inference"]["key"])
        if status != 200:
            return f"waiting for TorchServe to be healthy (/ping {status})"
        payload = json.dumps(public, indent=2).encode() + b"\n"
        self.secrets.patch(
            args.secret,
            {SECRET_KEY: payload},
            {
                "mnist-serving/key-published-by": os.environ.get("POD_NAME", "unknown"),
                "mnist-serving/key-expires": public["inference"]["expiration time"],
            },
        )
        self.published = public
        return "published"


def publish(args: argparse.Namespace, stop: threading.Event) -> int:
    namespace = args.namespace or os.environ.get("POD_NAMESPACE") or ""
    if not namespace and (SERVICE_ACCOUNT_DIR / "namespace").is_file():
        namespace = (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip()
    api_url = args.api_url
    if not api_url:
        host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
        api_url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    secrets = SecretClient(api_url, namespace, args.token_file, args.ca_file)
    publisher = Publisher(args, secrets)
    log(f"publishing {args.key_file} (inference key only) to secret {namespace}/{args.secret}")
    last = ""
    while not stop.is_set():
        try:
            outcome = publisher.step(time.time())
        except OSError as exc:
            outcome = f"error: {exc}"
        args.heartbeat.touch()
        if outcome != last or outcome == "renewed":
            log(outcome)
            last = outcome
        stop.wait(args.interval)
    return 0


def probe(args: argparse.Namespace) -> int:
    try:
        key = read_key_file(args.key_file)["inference"]["key"]
        status, body = ping(args.inference_url, key, timeout=args.timeout)
    except (OSError, ValueError) as exc:
        print(f"not ready: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"not ready: /ping answered {status}: {body[:200]!r}", file=sys.stderr)
        return 1
    return 0


def alive(args: argparse.Namespace) -> int:
    try:
        age = time.time() - args.heartbeat.stat().st_mtime
    except OSError as exc:
        print(f"no heartbeat: {exc}", file=sys.stderr)
        return 1
    if age > args.max_age:
        print(f"the publish loop last ran {age:.0f}s ago", file=sys.stderr)
        return 1
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="keypublisher.py", description=__doc__.split("\n")[0])
    main.add_argument("--key-file", type=Path, default=Path("/home/model-server/work/key_file.json"))
    main.add_argument("--inference-url", default="http://127.0.0.1:8080")
    main.add_argument("--heartbeat", type=Path, default=Path("/tmp/keypublisher.heartbeat"))  # nosec B108  # /tmp is this container's own emptyDir
    commands = main.add_subparsers(dest="command", required=True)
    run = commands.add_parser("publish", help="the sidecar loop")
    run.add_argument("--secret", default="torchserve-inference-key")
    run.add_argument("--namespace", default="", help="default: $POD_NAMESPACE or the service account's")
    run.add_argument("--management-url", default="http://127.0.0.1:8081")
    run.add_argument("--renew-before", type=float, default=3600.0, help="seconds before expiry")
    run.add_argument("--interval", type=float, default=5.0)
    run.add_argument("--api-url", default="", help="default: from KUBERNETES_SERVICE_HOST/PORT")
    run.add_argument("--token-file", type=Path, default=SERVICE_ACCOUNT_DIR / "token")
    run.add_argument("--ca-file", type=Path, default=SERVICE_ACCOUNT_DIR / "ca.crt")
    check = commands.add_parser("ping", help="exit 0 when /ping answers 200 with the current key")
    check.add_argument("--timeout", type=float, default=3.0)
    beat = commands.add_parser("alive", help="exit 0 when the publish loop ran recently")
    beat.add_argument("--max-age", type=float, default=60.0)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "ping":
        return probe(args)
    if args.command == "alive":
        return alive(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return publish(args, stop)


if __name__ == "__main__":
    sys.exit(main())
