"""Steer a canary from the command line: wait for the gateway pods to see a change, and judge the metrics.

``wait``
    After ``kubectl apply``: blocks until every running gateway pod has the routing file and the TorchServe
    key that the cluster holds now (the kubelet refreshes mounted ConfigMaps and Secrets within about a
    minute; the gateway re-reads both when they change) and reports every routed backend ready.

``watch``
    Reads ``/metrics`` of each running gateway pod twice, ``--interval`` seconds apart, and reports what
    changed in between, summed over the pods:

    - client error rate: 5xx share of ``gateway_requests_total``;
    - upstream failure rate per model version: non-2xx share of ``gateway_backend_attempts_total`` (the
      version label is set on every attempt, failed ones included, so the canary's failures show here);
    - p99 of ``gateway_request_duration_seconds`` over all requests and per backend (the histogram has no
      version label: compare it with the step before);
    - TF-vs-PyTorch agreement: ``gateway_shadow_items_total`` agree / (agree + disagree).

    Exit status: 0 within the thresholds, 1 outside them, 2 when there was no traffic to judge.

Both read the pods through ``kubectl exec`` (no port-forward, no NetworkPolicy change) and never print keys.

    python k8s/tools/canary.py wait
    python k8s/tools/canary.py watch --interval 300 --max-error-rate 0.01 --max-p99 0.25 --min-agreement 0.99
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
Snapshot = dict[tuple[str, Labels], float]
"""(sample name, sorted labels) -> value, for the samples this tool reads."""

_READ = (
    "gateway_requests_total",
    "gateway_backend_attempts_total",
    "gateway_request_duration_seconds_bucket",
    "gateway_shadow_items_total",
)
_FETCH = (
    "import sys, urllib.request as u; "
    "sys.stdout.write(u.urlopen('http://127.0.0.1:8000/metrics', timeout=5).read().decode())"
)


def parse(text: str) -> Snapshot:
    snapshot: Snapshot = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in _READ:
                snapshot[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return snapshot


def delta(before: Snapshot, after: Snapshot) -> Snapshot:
    """Counter increase; a counter that went down belongs to a restarted process: count it from zero."""
    return {
        key: value - before.get(key, 0.0) if value >= before.get(key, 0.0) else value
        for key, value in after.items()
    }


def add(total: Snapshot, part: Snapshot) -> None:
    for key, value in part.items():
        total[key] = total.get(key, 0.0) + value


def quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """histogram_quantile over cumulative ``le`` buckets (linear inside a bucket, as PromQL does)."""
    edges = sorted(buckets)
    if not edges or buckets[edges[-1]] <= 0:
        return None
    rank = q * buckets[edges[-1]]
    lower_edge, lower_count = 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= rank:
            if math.isinf(edge):
                return lower_edge  # beyond the largest finite bucket
            if count == lower_count:
                return edge
            return lower_edge + (edge - lower_edge) * (rank - lower_count) / (count - lower_count)
        lower_edge, lower_count = edge, count
    return edges[-1]


@dataclass
class Report:
    requests: float = 0.0
    client_errors_5xx: float = 0.0
    attempts: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    failed_attempts: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    p99_s: float | None = None
    p99_by_backend_s: dict[str, float | None] = field(default_factory=dict)
    agree: float = 0.0
    disagree: float = 0.0

    @property
    def error_rate(self) -> float:
        return self.client_errors_5xx / self.requests if self.requests else 0.0

    @property
    def agreement(self) -> float | None:
        compared = self.agree + self.disagree
        return self.agree / compared if compared else None

    def failure_rate(self, version: str) -> float:
        return self.failed_attempts[version] / self.attempts[version] if self.attempts[version] else 0.0


def summarize(change: Snapshot, model: str) -> Report:
    report = Report()
    buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for (name, labels), value in change.items():
        tags = dict(labels)
        if tags.get("model") != model:
            continue
        if name == "gateway_requests_total":
            report.requests += value
            if tags["status"].startswith("5"):
                report.client_errors_5xx += value
        elif name == "gateway_backend_attempts_total":
            report.attempts[tags["version"]] += value
            if not tags["status"].startswith("2"):
                report.failed_attempts[tags["version"]] += value
        elif name == "gateway_request_duration_seconds_bucket":
            edge = float(tags["le"])
            buckets["*"][edge] += value
            buckets[tags["backend"]][edge] += value
        elif name == "gateway_shadow_items_total":
            if tags["outcome"] == "agree":
                report.agree += value
            elif tags["outcome"] == "disagree":
                report.disagree += value
    report.p99_s = quantile(0.99, buckets.pop("*", {}))
    report.p99_by_backend_s = {backend: quantile(0.99, b) for backend, b in sorted(buckets.items())}
    return report


def verdict(report: Report, args: argparse.Namespace) -> list[str]:
    problems = []
    if report.error_rate > args.max_error_rate:
        problems.append(f"client 5xx rate {report.error_rate:.2%} > {args.max_error_rate:.2%}")
    for version in sorted(report.attempts):
        if report.failure_rate(version) > args.max_error_rate:
            rate = report.failure_rate(version)
            problems.append(
                f"version {version}: upstream failure rate {rate:.2%} > {args.max_error_rate:.2%}"
            )
    if report.p99_s is not None and report.p99_s > args.max_p99:
        problems.append(f"p99 {report.p99_s * 1000:.1f} ms > {args.max_p99 * 1000:.0f} ms")
    if report.agreement is not None and report.agreement < args.min_agreement:
        problems.append(f"TF-vs-PyTorch agreement {report.agreement:.2%} < {args.min_agreement:.2%}")
    return problems


def render(report: Report, interval: float) -> str:
    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 1000:.1f} ms"

    lines = [
        f"over {interval:.0f}s: {report.requests:.0f} requests, 5xx rate {report.error_rate:.2%}, "
        f"p99 {ms(report.p99_s)}",
        *(f"  p99 via {backend}: {ms(value)}" for backend, value in report.p99_by_backend_s.items()),
        *(
            f"  version {version}: {report.attempts[version]:.0f} upstream attempts, "
            f"failure rate {report.failure_rate(version):.2%}"
            for version in sorted(report.attempts)
        ),
        "  TF-vs-PyTorch agreement: "
        + ("n/a (no shadowed requests)" if report.agreement is None else f"{report.agreement:.2%}")
        + f" of {report.agree + report.disagree:.0f} shadowed images",
    ]
    return "\n".join(lines)


# -- reading the pods ---------------------------------------------------------------------------------

Run = Callable[[Sequence[str]], str]


def kubectl_runner(kubectl: str, namespace: str) -> Run:
    def run(args: Sequence[str]) -> str:
        done = subprocess.run(
            [kubectl, "--namespace", namespace, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    return run


def gateway_pods(run: Run, selector: str) -> list[str]:
    names = run(
        [
            "get",
            "pods",
            "-l",
            selector,
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]
    )
    return names.split()


def scrape(run: Run, pods: Iterable[str]) -> dict[str, Snapshot]:
    return {pod: parse(run(["exec", pod, "-c", "gateway", "--", "python", "-c", _FETCH])) for pod in pods}


_INSPECT = """
import hashlib, json, sys, urllib.error, urllib.request as u

def digest(path):
    try:
        return hashlib.sha256(open(path, "rb").read().rstrip()).hexdigest()
    except OSError:
        return ""

try:
    reply = u.urlopen("http://127.0.0.1:8000/readyz", timeout=5)
    status, body = reply.status, reply.read()
except urllib.error.HTTPError as error:
    status, body = error.code, error.read()
print(json.dumps({"routing": digest(sys.argv[1]), "key": digest(sys.argv[2]), "status": status,
                  "readyz": json.loads(body)}))
"""


@dataclass(frozen=True)
class PodView:
    routing_current: bool
    key_current: bool
    not_ready: list[str]

    @property
    def done(self) -> bool:
        return self.routing_current and self.key_current and not self.not_ready


def sha256(data: bytes) -> str:
    """Of the content without trailing whitespace (kubectl's jsonpath output may add or drop a newline)."""
    return hashlib.sha256(data.rstrip()).hexdigest()


def cluster_digests(
    run: Run, routing_map: str, routing_key: str, secret: str, secret_key: str
) -> tuple[str, str]:
    """SHA-256 of the routing file and of the key file as the API server holds them now."""
    escape = routing_key.replace(".", "\\.")
    routing = run(["get", "configmap", routing_map, "-o", f"jsonpath={{.data.{escape}}}"])
    escape = secret_key.replace(".", "\\.")
    key = run(["get", "secret", secret, "-o", f"jsonpath={{.data.{escape}}}"])
    return sha256(routing.encode()), sha256(base64.b64decode(key)) if key else ""


def inspect(run: Run, pod: str, routing_file: str, key_file: str, digests: tuple[str, str]) -> PodView:
    data = json.loads(
        run(["exec", pod, "-c", "gateway", "--", "python", "-c", _INSPECT, routing_file, key_file])
    )
    backends = [b for model in data["readyz"].get("models", {}).values() for b in model.get("backends", [])]
    return PodView(
        routing_current=data["routing"] == digests[0],
        key_current=bool(digests[1]) and data["key"] == digests[1],
        not_ready=sorted(b["name"] for b in backends if not b.get("ready")),
    )


def wait(run: Run, args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            digests = cluster_digests(run, args.routing_map, "routing.yaml", args.secret, "key_file.json")
            views = {
                pod: inspect(run, pod, args.routing_file, args.key_file, digests)
                for pod in gateway_pods(run, args.selector)
            }
        except RuntimeError as exc:
            views, problem = {}, str(exc)
        else:
            problem = "" if views else "no running gateway pod"
        lines = [
            f"{pod}: routing {'current' if view.routing_current else 'STALE'}, "
            f"TorchServe key {'current' if view.key_current else 'STALE or unpublished'}, "
            f"not ready: {', '.join(view.not_ready) or 'none'}"
            for pod, view in sorted(views.items())
        ]
        if views and all(view.done for view in views.values()):
            print("\n".join(lines))
            print("every gateway pod has the current routing and key, and every routed backend is ready")
            return 0
        if time.monotonic() > deadline:
            print("\n".join(lines) or problem)
            print(f"not settled after {args.timeout:.0f}s (k8s/README.md, Troubleshooting)")
            return 1
        time.sleep(args.poll)


def watch(run: Run, args: argparse.Namespace) -> int:
    try:
        pods = gateway_pods(run, args.selector)
        if not pods:
            print(f"no running gateway pod matches {args.selector} in {args.namespace}", file=sys.stderr)
            return 2
        before = scrape(run, pods)
        print(f"read {len(pods)} gateway pods; reading again in {args.interval:.0f}s ...", file=sys.stderr)
        time.sleep(args.interval)
        after = scrape(run, pods)
    except RuntimeError as exc:  # e.g. a pod replaced between the readings: run it again
        print(f"canary.py: {exc}", file=sys.stderr)
        return 2
    change: Snapshot = {}
    for pod in pods:
        add(change, delta(before[pod], after[pod]))
    report = summarize(change, args.model)
    print(render(report, args.interval))
    if report.requests == 0:
        print("verdict: no traffic in the window; send load first (k8s/README.md, Load test)")
        return 2
    problems = verdict(report, args)
    print("verdict: " + ("; ".join(problems) if problems else "within thresholds"))
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="canary.py", description=__doc__.split("\n")[0])
    parser.add_argument("--namespace", default="mnist-serving")
    parser.add_argument("--selector", default="app.kubernetes.io/name=gateway")
    parser.add_argument("--kubectl", default="kubectl")
    commands = parser.add_subparsers(dest="command", required=True)
    settle = commands.add_parser("wait", help="until every gateway pod sees the current routing and key")
    settle.add_argument("--timeout", type=float, default=300.0)
    settle.add_argument("--poll", type=float, default=10.0)
    settle.add_argument("--routing-map", default="gateway-routing")
    settle.add_argument("--routing-file", default="/etc/gateway/routing/routing.yaml")
    settle.add_argument("--secret", default="torchserve-inference-key")
    settle.add_argument("--key-file", default="/var/run/secrets/torchserve/key_file.json")
    judge = commands.add_parser("watch", help="judge a window of the gateway's metrics")
    judge.add_argument("--model", default="mnist")
    judge.add_argument("--interval", type=float, default=120.0, help="seconds between the two readings")
    judge.add_argument("--max-error-rate", type=float, default=0.01, help="5xx / failed-attempt share")
    judge.add_argument("--max-p99", type=float, default=0.25, help="seconds, whole gateway request")
    judge.add_argument("--min-agreement", type=float, default=0.99, help="TF-vs-PyTorch digit agreement")
    args = parser.parse_args(argv)
    run = kubectl_runner(args.kubectl, args.namespace)
    return wait(run, args) if args.command == "wait" else watch(run, args)


if __name__ == "__main__":
    sys.exit(main())
