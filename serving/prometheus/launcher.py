"""Start Prometheus on 127.0.0.1 with a scrape config for what runs now; report its targets.

Its data (``run/prometheus/data``), config and log live in the run directory; ``python -m serving down``
stops it like any server. Where the binary is missing, :func:`find_binary` says so and ``up`` goes on.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from serving.errors import ServerStartError
from serving.http import request_json
from serving.ports import ensure_free
from serving.process import ServerRecord, all_records, process_group_alive, read_record, start_server, tail
from serving.prometheus.config import ScrapeTarget, build_config, render, target_from_url
from serving.settings import LOOPBACK, ServingSettings

NAME = "prometheus"
MISSING = (
    "the `prometheus` binary is not installed (Debian: apt-get install prometheus; or set "
    "SERVING_PROMETHEUS_BINARY); the servers run without it"
)


def url(settings: ServingSettings) -> str:
    return f"http://{LOOPBACK}:{settings.prometheus_port}"


def find_binary(settings: ServingSettings) -> str:
    """The Prometheus server's path; ServerStartError (with what to do) when it is not there."""
    found = shutil.which(settings.prometheus_binary)
    if found is None:
        raise ServerStartError(MISSING)
    return found


def targets(settings: ServingSettings, extra: list[ScrapeTarget] | None = None) -> list[ScrapeTarget]:
    """Prometheus itself, every recorded server's metrics endpoint, then the gateway(s)."""
    found = [ScrapeTarget(NAME, f"{LOOPBACK}:{settings.prometheus_port}")]
    for server in all_records(settings.run_dir):
        metrics = server.info.get("endpoints", {}).get("metrics")
        if server.name != NAME and metrics:
            found.append(target_from_url(server.name, metrics))
    for address in filter(None, (part.strip() for part in settings.prometheus_gateway.split(","))):
        found.append(ScrapeTarget("gateway", address))
    return found + list(extra or [])


def check_ports(settings: ServingSettings) -> None:
    ensure_free(LOOPBACK, [("Prometheus", settings.prometheus_port)])


def write_config(settings: ServingSettings, scrape: list[ScrapeTarget]) -> Path:
    settings.prometheus_dir.mkdir(parents=True, exist_ok=True)
    path = settings.prometheus_dir / "prometheus.yml"
    document = build_config(
        scrape,
        scrape_interval_s=settings.prometheus_scrape_interval_s,
        evaluation_interval_s=settings.prometheus_evaluation_interval_s,
    )
    path.write_text(render(document))
    return path


def start(settings: ServingSettings, extra: list[ScrapeTarget] | None = None) -> ServerRecord:
    """Write the config for the servers recorded now (and ``extra``), then launch Prometheus."""
    binary = find_binary(settings)
    scrape = targets(settings, extra)
    config = write_config(settings, scrape)
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={settings.prometheus_dir / 'data'}",
        f"--storage.tsdb.retention.time={settings.prometheus_retention}",
        f"--web.listen-address={LOOPBACK}:{settings.prometheus_port}",
        "--log.level=warn",
    ]
    info = {
        "implementation": f"Prometheus ({binary})",
        "endpoints": {"ui and api": url(settings), "config": str(config)},
        "jobs": sorted({target.job for target in scrape}),
    }
    return start_server(
        NAME,
        command,
        run_dir=settings.run_dir,
        log_file=settings.prometheus_dir / "prometheus.log",
        cwd=settings.prometheus_dir,
        info=info,
    )


def record(settings: ServingSettings) -> ServerRecord:
    found = read_record(settings.run_dir, NAME)
    if found is None:
        raise ServerStartError(f"Prometheus is not recorded in {settings.run_dir}")
    return found


def version_states(settings: ServingSettings) -> dict[str, str]:
    """``{"prometheus": "READY"}`` once it answers /-/ready (it has no model versions)."""
    status, _ = request_json(f"{url(settings)}/-/ready", timeout=5.0)
    return {NAME: "READY" if status == 200 else f"HTTP {status}"}


def wait_until_ready(settings: ServingSettings, server: ServerRecord, timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while time.monotonic() < deadline:
        if not process_group_alive(server.pid):
            raise ServerStartError(
                "Prometheus exited during startup:\n" + "\n".join(tail(Path(server.log), 20))
            )
        try:
            states = version_states(settings)
            if states[NAME] == "READY":
                return states
            last = states[NAME]
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise ServerStartError(f"Prometheus not ready within {timeout_s:.0f}s ({last})")


def target_health(settings: ServingSettings) -> dict[str, str]:
    """``{"job address": "up" | "down (why)" | "unknown"}`` from /api/v1/targets."""
    status, body = request_json(f"{url(settings)}/api/v1/targets?state=active", timeout=5.0)
    if status != 200 or not isinstance(body, dict):
        raise ServerStartError(f"Prometheus /api/v1/targets answered {status}")
    health = {}
    for target in body["data"]["activeTargets"]:
        name = f"{target['labels'].get('job', '?')} {target['labels'].get('instance', '?')}"
        error = target.get("lastError") or ""
        health[name] = target["health"] + (f" ({error})" if error and target["health"] != "up" else "")
    return health


def wait_for_targets(settings: ServingSettings, timeout_s: float = 15.0) -> dict[str, str]:
    """Target health once every target was scraped once (Prometheus applies a new config's targets after
    about 5 s); what is known at ``timeout_s`` otherwise."""
    deadline = time.monotonic() + timeout_s
    health: dict[str, str] = {}
    while time.monotonic() < deadline:
        health = target_health(settings)
        if health and not any(state.startswith("unknown") for state in health.values()):
            break
        time.sleep(0.25)
    return health
