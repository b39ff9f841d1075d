"""The generated ``prometheus.yml``: one scrape job per component, the rules of k8s/monitoring/rules.yml.

Written as JSON (valid YAML), so no YAML library is needed and nothing is quoted by hand.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from serving.settings import REPO_ROOT

RULES_FILE = REPO_ROOT / "k8s" / "monitoring" / "rules.yml"
"""The one source of recording and alert rules (the cluster's PrometheusRule is built from it too)."""


@dataclass(frozen=True)
class ScrapeTarget:
    """One component's metrics endpoint: Prometheus job name, host:port and path."""

    job: str
    address: str
    path: str = "/metrics"


def target_from_url(job: str, url: str) -> ScrapeTarget:
    """``http://127.0.0.1:8082/metrics`` -> ScrapeTarget(job, "127.0.0.1:8082", "/metrics")."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.netloc:
        raise ValueError(f"{job}: expected an http:// metrics URL, got {url!r}")
    return ScrapeTarget(job, parts.netloc, parts.path or "/metrics")


def duration(seconds: float) -> str:
    """Prometheus duration text in milliseconds (``5s`` -> ``5000ms``)."""
    return f"{max(1, round(seconds * 1000))}ms"


def build_config(
    targets: Iterable[ScrapeTarget],
    *,
    scrape_interval_s: float,
    evaluation_interval_s: float,
    rule_files: Sequence[Path] = (RULES_FILE,),
    external_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The configuration document: targets grouped into jobs, in the order given."""
    jobs: dict[tuple[str, str], list[str]] = {}
    for target in targets:
        if any(job == target.job and path != target.path for job, path in jobs):
            raise ValueError(f"job {target.job}: one metrics path per job")
        jobs.setdefault((target.job, target.path), []).append(target.address)
    interval = duration(scrape_interval_s)
    timeout = duration(min(scrape_interval_s, 10.0))
    return {
        "global": {
            "scrape_interval": interval,
            "scrape_timeout": timeout,
            "evaluation_interval": duration(evaluation_interval_s),
            "external_labels": dict(external_labels or {"stack": "local"}),
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": path,
                "static_configs": [{"targets": addresses}],
            }
            for (job, path), addresses in jobs.items()
        ],
    }


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"
