"""Write the generated files of the ``monitoring`` kustomize component, and check they are current.

- ``k8s/components/monitoring/prometheusrule.yaml``: the PrometheusRule of the Prometheus Operator, whose
  ``spec`` is k8s/monitoring/rules.yml verbatim (the one source of rules; the local Prometheus of
  ``python -m serving up`` loads that file itself).
- ``k8s/components/monitoring/dashboards/gateway-overview.json``: the Grafana dashboard, built from
  :data:`PANELS` below; every query in it is a plain PromQL expression (no Grafana variables), so
  tests/integration/monitoring runs each one against a real Prometheus.

Usage (from the repository root)::

    python k8s/tools/monitoring.py render   # rewrite both files
    python k8s/tools/monitoring.py check    # exit 1 if one is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

K8S_DIR = Path(__file__).resolve().parents[1]
RULES = K8S_DIR / "monitoring" / "rules.yml"
COMPONENT = K8S_DIR / "components" / "monitoring"
PROMETHEUS_RULE = COMPONENT / "prometheusrule.yaml"
DASHBOARD = COMPONENT / "dashboards" / "gateway-overview.json"

RULE_HEADER = """\
# Written by k8s/tools/monitoring.py: `spec` is k8s/monitoring/rules.yml, unchanged (edit that file, then
# run `python k8s/tools/monitoring.py render`; tests/k8s checks this copy is current). Indented under
# `spec`, a few of its lines pass 120 characters: yamllint checks their length in rules.yml.
# yamllint disable rule:line-length
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: gateway
  labels:
    app.kubernetes.io/name: gateway
    app.kubernetes.io/component: gateway
spec:
"""


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]


PANELS: tuple[Panel, ...] = (
    Panel(
        "Traffic by backend and version",
        "Requests per second the gateway answered, split by the backend and model version that served them.",
        "reqps",
        (Query("sum by (backend, version) (rate(gateway_requests_total[5m]))", "{{backend}} v{{version}}"),),
    ),
    Panel(
        "Error ratio (5xx)",
        "Share of requests answered 5xx, per backend and per model version (a canary shows here first).",
        "percentunit",
        (
            Query("backend:gateway_request_errors:ratio_rate5m", "{{backend}}"),
            Query("version:gateway_request_errors:ratio_rate5m", "version {{version}}"),
        ),
    ),
    Panel(
        "Latency: gateway vs backend",
        "p50 and p99 of the whole request in the gateway, and p99 of one backend call as the gateway saw it.",
        "s",
        (
            Query("backend:gateway_request_duration_seconds:p50_5m", "gateway p50 {{backend}}"),
            Query("backend:gateway_request_duration_seconds:p99_5m", "gateway p99 {{backend}}"),
            Query("backend:gateway_backend_duration_seconds:p99_5m", "backend p99 {{backend}}"),
        ),
    ),
    Panel(
        "Added latency (gateway minus backend)",
        "What the gateway itself adds per request: decoding, routing, encoding (p50 and p99).",
        "s",
        (
            Query(
                "histogram_quantile(0.5, sum by (le, backend) (rate(gateway_overhead_seconds_bucket[5m])))",
                "p50 {{backend}}",
            ),
            Query("backend:gateway_overhead_seconds:p99_5m", "p99 {{backend}}"),
        ),
    ),
    Panel(
        "Shadow agreement",
        "Share of shadowed images on which the shadow backend predicted the primary's digit (30 minutes).",
        "percentunit",
        (Query("model:gateway_shadow_agreement:ratio_rate30m", "{{shadow}} vs {{primary}}"),),
    ),
    Panel(
        "Micro-batching",
        "Mean images per backend call made by the gateway's batcher, and p99 of the wait before a call.",
        "short",
        (
            Query("backend:gateway_batch_size:mean_5m", "images per call {{backend}}"),
            Query(
                "histogram_quantile(0.99, sum by (le, backend) "
                "(rate(gateway_batch_queue_delay_seconds_bucket[5m])))",
                "queue wait p99 (s) {{backend}}",
            ),
        ),
    ),
    Panel(
        "In flight and refused (429)",
        "Predictions being served per gateway pod (the in-flight autoscaler's signal) and requests refused "
        "with 429 because a worker had no free slot.",
        "short",
        (
            Query("sum by (instance) (gateway_in_flight_requests)", "in flight {{instance}}"),
            Query('sum(rate(gateway_requests_total{status="429"}[5m])) or vector(0)', "429 per second"),
        ),
    ),
)


def _panel(index: int, panel: Panel) -> dict[str, Any]:
    source = {"type": "prometheus", "uid": "${datasource}"}
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": source,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        "targets": [
            {
                "refId": chr(ord("A") + number),
                "datasource": source,
                "expr": query.expr,
                "legendFormat": query.legend,
            }
            for number, query in enumerate(panel.queries)
        ],
    }


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard document (schema of Grafana 10/11)."""
    return {
        "uid": "mnist-gateway-overview",
        "title": "MNIST gateway: overview",
        "description": "Traffic, errors, latency, shadow agreement, batching and load of the gateway.",
        "tags": ["mnist-serving", "gateway"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus"}
            ]
        },
        "panels": [_panel(index, panel) for index, panel in enumerate(PANELS)],
    }


def dashboard_queries(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expression) of every query in a dashboard document."""
    return [(panel["title"], target["expr"]) for panel in document["panels"] for target in panel["targets"]]


def prometheus_rule_text(rules_text: str) -> str:
    """rules.yml under ``spec:`` (its comment header dropped, every other line indented two spaces)."""
    lines = rules_text.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("groups:"))
    body = [f"  {line}" if line.strip() else "" for line in lines[start:]]
    return RULE_HEADER + "\n".join(body) + "\n"


def generated() -> dict[Path, str]:
    return {
        PROMETHEUS_RULE: prometheus_rule_text(RULES.read_text()),
        DASHBOARD: json.dumps(dashboard(), indent=2) + "\n",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="monitoring.py", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["render", "check"])
    args = parser.parse_args(argv)
    stale = [path for path, text in generated().items() if not path.is_file() or path.read_text() != text]
    if args.command == "check":
        for path in stale:
            print(f"stale: {path.relative_to(K8S_DIR.parent)} (python k8s/tools/monitoring.py render)")
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generated()[path])
        print(f"wrote {path.relative_to(K8S_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
