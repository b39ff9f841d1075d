"""The bench's start-to-ready and memory figures: a real 2-worker gateway (``python -m gateway``, gRPC
ingress on), started and stopped three times in front of a fake TF Serving REST server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from gatewaybench.startup import measure_startup
from serving.endpoints import Endpoints
from serving.process import process_group_alive
from serving.stack import StackOptions
from tests.integration.gatewaybench.test_stages import _FakeTFServing
from tests.support import served_in_thread


@pytest.fixture
def fake_tfserving() -> Iterator[str]:
    _FakeTFServing.predicts = []
    with served_in_thread(ThreadingHTTPServer(("127.0.0.1", 0), _FakeTFServing)) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


def test_each_start_is_timed_to_ready_and_each_worker_weighed(tmp_path: Path, fake_tfserving: str) -> None:
    routing = tmp_path / "routing.yaml"  # proxying only, as gateway/routing.yaml
    routing.write_text(json.dumps({"models": {"mnist": {"backends": {"tfserving-rest": 1}}}}))
    options = StackOptions(store_root=tmp_path / "store", run_dir=tmp_path)
    body = json.dumps({"instances": [[[0.5] * 28] * 28]}).encode()
    run_dir = tmp_path / "startup"
    result = measure_startup(
        Endpoints(tfserving_rest_url=fake_tfserving), options, routing, ["tfserving-rest"], body, run_dir
    )
    assert len(result.ready_s) == 3 and all(0.1 < s < 30.0 for s in result.ready_s)
    assert len(result.worker_rss_mib) == 3 * 2 and all(m > 10.0 for m in result.worker_rss_mib)
    assert len(_FakeTFServing.predicts) == 3 * 16  # every try called the backend through both workers
    assert result.to_dict()["median_ready_s"] == sorted(result.ready_s)[1]
    assert len(result.launchers) == 3 and not any(process_group_alive(pid) for pid in result.launchers)
