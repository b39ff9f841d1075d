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

``query``
    Judges the same figures from a Prometheus HTTP API (``/api/v1/query``) instead of the pods: the series
    recorded by k8s/monitoring/rules.yml over their 5-minute windows (agreement: 30 minutes), per model and
    per model version (its share of traffic, client 5xx ratio, failed upstream attempts), p99 overall and
    per backend, and the agreement of every shadow with its primary. Same thresholds and exit status.

``wait`` and ``watch`` read the pods through ``kubectl exec`` (no port-forward, no NetworkPolicy change) and
never print keys; ``query`` needs only the Prometheus address (e.g. after ``kubectl port-forward``).

    python k8s/tools/canary.py wait
    python k8s/tools/canary.py watch --interval 300 --max-error-rate 0.01 --max-p99 0.25 --min-agreement 0.99
    python k8s/tools/canary.py query --prometheus http://127.0.0.1:9090 --max-error-rate 0.01
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
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


# -- reading a Prometheus ------------------------------------------------------------------------------

Series = list[tuple[dict[str, str], float]]
Query = Callable[[str], Series]


def prometheus_query(base_url: str, timeout: float = 10.0) -> Query:
    """An instant query against ``base_url``'s ``/api/v1/query``; each call has ``timeout``."""
    if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
        raise ValueError(f"--prometheus: expected an http(s) URL, got {base_url!r}")

    def query(expr: str) -> Series:
        url = base_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=timeout) as reply:  # nosec B310  # http(s) checked above
            body = json.load(reply)
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus: {body.get('error', body)} for {expr}")
        return [(item["metric"], float(item["value"][1])) for item in body["data"]["result"]]

    return query


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class VersionFigures:
    share: float | None = None
    error_ratio: float | None = None
    failure_ratio: float | None = None


@dataclass
class RecordedReport:
    """A model's figures as the recorded series hold them now."""

    requests_per_s: float = 0.0
    error_ratio: float | None = None
    p99_s: float | None = None
    p99_by_backend_s: dict[str, float | None] = field(default_factory=dict)
    versions: dict[str, VersionFigures] = field(default_factory=dict)
    agreement: dict[str, float | None] = field(default_factory=dict)
    """``"<shadow> vs <primary>"`` -> share of shadowed digits that matched."""


def recorded(query: Query, model: str) -> RecordedReport:
    """Read the recorded series of k8s/monitoring/rules.yml for ``model``."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", model):
        raise ValueError(f"model name {model!r} is not a plain name")
    where = f'{{model="{model}"}}'

    def one(name: str) -> float | None:
        values = [value for _, value in query(name + where)]
        return _finite(values[0]) if values else None

    report = RecordedReport(
        requests_per_s=one("model:gateway_requests:rate5m") or 0.0,
        error_ratio=one("model:gateway_request_errors:ratio_rate5m"),
        p99_s=one("model:gateway_request_duration_seconds:p99_5m"),
    )
    for labels, value in query("backend:gateway_request_duration_seconds:p99_5m" + where):
        report.p99_by_backend_s[labels.get("backend", "?")] = _finite(value)
    total = report.requests_per_s
    for labels, value in query("version:gateway_requests:rate5m" + where):
        figures = report.versions.setdefault(labels.get("version", ""), VersionFigures())
        figures.share = value / total if total else None
    for name, attribute in (
        ("version:gateway_request_errors:ratio_rate5m", "error_ratio"),
        ("version:gateway_backend_attempt_failures:ratio_rate5m", "failure_ratio"),
    ):
        for labels, value in query(name + where):
            figures = report.versions.setdefault(labels.get("version", ""), VersionFigures())
            setattr(figures, attribute, _finite(value))
    for labels, value in query("model:gateway_shadow_agreement:ratio_rate30m" + where):
        report.agreement[f"{labels.get('shadow', '?')} vs {labels.get('primary', '?')}"] = _finite(value)
    return report


def recorded_verdict(report: RecordedReport, args: argparse.Namespace) -> list[str]:
    problems = []
    if report.error_ratio is not None and report.error_ratio > args.max_error_rate:
        problems.append(f"client 5xx rate {report.error_ratio:.2%} > {args.max_error_rate:.2%}")
    for version, figures in sorted(report.versions.items()):
        for what, ratio in (("client 5xx", figures.error_ratio), ("upstream failure", figures.failure_ratio)):
            if ratio is not None and ratio > args.max_error_rate:
                problems.append(f"version {version}: {what} rate {ratio:.2%} > {args.max_error_rate:.2%}")
    if report.p99_s is not None and report.p99_s > args.max_p99:
        problems.append(f"p99 {report.p99_s * 1000:.1f} ms > {args.max_p99 * 1000:.0f} ms")
    for pair, agreement in sorted(report.agreement.items()):
        if agreement is not None and agreement < args.min_agreement:
            problems.append(f"agreement {pair} {agreement:.2%} < {args.min_agreement:.2%}")
    return problems


def render_recorded(report: RecordedReport) -> str:
    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 1000:.1f} ms"

    def share(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2%}"

    return "\n".join(
        [
            f"last 5m (recorded series): {report.requests_per_s:.2f} requests/s, "
            f"5xx rate {share(report.error_ratio)}, p99 {ms(report.p99_s)}",
            *(
                f"  p99 via {backend}: {ms(value)}"
                for backend, value in sorted(report.p99_by_backend_s.items())
            ),
            *(
                f"  version {version}: {share(f.share)} of requests, 5xx rate {share(f.error_ratio)}, "
                f"upstream failure rate {share(f.failure_ratio)}"
                for version, f in sorted(report.versions.items())
            ),
            *(
                f"  agreement {pair} (30m): {share(value)}"
                for pair, value in sorted(report.agreement.items())
            ),
        ]
    )


def judge_recorded(query: Query, args: argparse.Namespace) -> int:
    try:
        report = recorded(query, args.model)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        print(f"canary.py: {exc}", file=sys.stderr)
        return 2
    print(render_recorded(report))
    if not report.requests_per_s:
        print("verdict: no traffic in the recorded window; send load first (k8s/README.md, Load test)")
        return 2
    problems = recorded_verdict(report, args)
    print("verdict: " + ("; ".join(problems) if problems else "within thresholds"))
    return 1 if problems else 0


def _thresholds(command: argparse.ArgumentParser) -> None:
    command.add_argument("--model", default="mnist")
    command.add_argument("--max-error-rate", type=float, default=0.01, help="5xx / failed-attempt share")
    command.add_argument("--max-p99", type=float, default=0.25, help="seconds, whole gateway request")
    command.add_argument("--min-agreement", type=float, default=0.99, help="TF-vs-PyTorch digit agreement")


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
    judge.add_argument("--interval", type=float, default=120.0, help="seconds between the two readings")
    _thresholds(judge)
    ask = commands.add_parser("query", help="judge the recorded series of a Prometheus (k8s/monitoring)")
    ask.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    ask.add_argument("--timeout", type=float, default=10.0, help="seconds per query")
    _thresholds(ask)
    args = parser.parse_args(argv)
    if args.command == "query":
        return judge_recorded(prometheus_query(args.prometheus, args.timeout), args)
    run = kubectl_runner(args.kubectl, args.namespace)
    return wait(run, args) if args.command == "wait" else watch(run, args)


if __name__ == "__main__":
    sys.exit(main())
