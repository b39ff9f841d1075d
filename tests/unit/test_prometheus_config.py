"""The local Prometheus's generated config: one job per component, the repo's rules, valid for promtool."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from serving.process import record_path
from serving.prometheus import launcher
from serving.prometheus.config import RULES_FILE, ScrapeTarget, build_config, duration, target_from_url
from serving.settings import settings_from_env


def test_metrics_urls_become_targets() -> None:
    target = target_from_url("torchserve", "http://127.0.0.1:8082/metrics")
    assert target == ScrapeTarget("torchserve", "127.0.0.1:8082", "/metrics")
    tf = target_from_url("tfserving", "http://127.0.0.1:8501/monitoring/prometheus/metrics")
    assert tf.path == "/monitoring/prometheus/metrics"
    with pytest.raises(ValueError, match="http://"):
        target_from_url("x", "127.0.0.1:9/metrics")


def test_config_groups_targets_into_jobs_and_loads_the_rules() -> None:
    document = build_config(
        [ScrapeTarget("gateway", "127.0.0.1:8000"), ScrapeTarget("gateway", "127.0.0.1:8010")],
        scrape_interval_s=1,
        evaluation_interval_s=0.5,
    )
    assert document["global"]["scrape_interval"] == "1000ms"
    assert document["global"]["evaluation_interval"] == "500ms"
    assert document["rule_files"] == [str(RULES_FILE)]
    [job] = document["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8000", "127.0.0.1:8010"]}]
    assert duration(15) == "15000ms"
    with pytest.raises(ValueError, match="one metrics path"):
        build_config(
            [ScrapeTarget("a", "h:1", "/metrics"), ScrapeTarget("a", "h:2", "/other")],
            scrape_interval_s=1,
            evaluation_interval_s=1,
        )


def _record(run_dir: Path, name: str, metrics: str) -> None:
    path = record_path(run_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"implementation": name, "endpoints": {"metrics": metrics}}
    path.write_text(
        json.dumps({"name": name, "pid": 1, "command": [], "log": "", "started_at": 0, "info": info})
    )


def test_targets_are_the_recorded_servers_and_the_gateway(tmp_path: Path) -> None:
    _record(tmp_path, "tfserving", "http://127.0.0.1:8501/monitoring/prometheus/metrics")
    _record(tmp_path, "triton", "http://127.0.0.1:8102/metrics")
    settings = settings_from_env(
        environ={}, run_dir=tmp_path, prometheus_gateway="127.0.0.1:8000, 127.0.0.1:8010"
    )
    jobs = [(target.job, target.address) for target in launcher.targets(settings)]
    assert jobs == [
        ("prometheus", "127.0.0.1:9090"),
        ("tfserving", "127.0.0.1:8501"),
        ("triton", "127.0.0.1:8102"),
        ("gateway", "127.0.0.1:8000"),
        ("gateway", "127.0.0.1:8010"),
    ]


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool is not installed (Debian package `prometheus`)"
)
def test_promtool_accepts_the_generated_config(tmp_path: Path) -> None:
    _record(tmp_path, "torchserve", "http://127.0.0.1:8082/metrics")
    settings = settings_from_env(environ={}, run_dir=tmp_path)
    config = launcher.write_config(settings, launcher.targets(settings))
    done = subprocess.run(
        ["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_a_missing_binary_is_named(tmp_path: Path) -> None:
    settings = settings_from_env(environ={}, run_dir=tmp_path, prometheus_binary=str(tmp_path / "nothing"))
    with pytest.raises(Exception, match="not installed"):
        launcher.find_binary(settings)
