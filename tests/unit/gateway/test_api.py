"""The HTTP layer through Flask's test client, with fake backends injected (no network, no models)."""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from gateway.errors import Unavailable
from gateway.router import InlineExecutor
from tests.unit.gateway.conftest import FakeBackend

BODY = {"instances": [[0.0] * 784]}


class HeldExecutor(Executor):
    """Takes shadow work and runs it only when the test says so (a shadow backend that is still busy)."""

    def __init__(self) -> None:
        self.work: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.work.append((fn, args))
        return Future()

    def run_all(self) -> None:
        work, self.work = self.work, []
        for fn, args in work:
            fn(*args)


def test_predict_headers_and_body(client: FlaskClient) -> None:
    response = client.post("/v1/models/mnist:predict", json=BODY, headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    assert len(response.get_json()["predictions"][0]) == 10
    assert response.headers["X-Request-ID"] == "abc-123"
    assert (
        response.headers["X-Gateway-Backend"] in ("tf", "pt") and response.headers["X-Model-Version"] == "1"
    )
    assert (
        "gateway;dur=" in response.headers["Server-Timing"]
        and "backend;dur=" in response.headers["Server-Timing"]
    )


def test_bad_request_id_is_replaced(client: FlaskClient) -> None:
    response = client.post("/v1/models/mnist:predict", json=BODY, headers={"X-Request-ID": "<script>"})
    assert response.headers["X-Request-ID"] != "<script>" and len(response.headers["X-Request-ID"]) == 32


def test_versions_columnar_and_explicit_backend(client: FlaskClient) -> None:
    response = client.post("/v1/models/mnist/versions/2:predict?backend=pt", json={"inputs": [[0.0] * 784]})
    assert response.status_code == 200 and "outputs" in response.get_json()
    assert response.headers["X-Gateway-Backend"] == "pt" and response.headers["X-Model-Version"] == "2"


def test_tf_serving_curl_form_content_type_is_accepted(client: FlaskClient) -> None:
    response = client.post(
        "/v1/models/mnist:predict", data=json.dumps(BODY), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200


def test_error_envelope_and_statuses(make_app: Callable[..., Flask]) -> None:
    client = make_app(max_body_bytes=2048).test_client()
    cases = [
        (client.post("/v1/models/mnist:predict", data="{", content_type="application/json"), 400),
        (client.post("/v1/models/nope:predict", json=BODY), 404),
        (client.post("/v1/models/..%2F..%2Fetc:predict", json=BODY), 404),
        (client.post("/v1/models/mnist:predict", data=json.dumps(BODY), content_type="text/plain"), 415),
        (client.post("/v1/models/mnist:predict", json=BODY, headers={"Content-Encoding": "gzip"}), 415),
        (client.post("/v1/models/mnist:predict", json={"instances": [[0.0] * 784] * 3}), 413),  # > 2 KiB
        (client.get("/v1/models/mnist:predict"), 405),  # not a status request for "mnist:predict"
        (client.delete("/livez"), 405),
        (client.open("/v1/models/mnist:predict", method="TRACE"), 405),
        (client.options("/v1/models/mnist:predict"), 405),  # OPTIONS is not part of the API
    ]
    for response, status in cases:
        assert response.status_code == status, (response.status_code, response.get_json())
        error = response.get_json()["error"]
        assert set(error) == {"code", "message", "request_id"} and error["request_id"]
        if status == 405:
            assert response.headers["Allow"] in ("POST", "GET, HEAD"), response.headers


def test_unknown_label_is_404(client: FlaskClient) -> None:
    assert client.post("/v1/models/mnist/labels/nope:predict", json=BODY).status_code == 404


def test_backend_failure_is_translated_and_no_traceback_leaks(
    client: FlaskClient, fakes: dict[str, FakeBackend]
) -> None:
    fakes["tf"].error = Unavailable("refused")
    fakes["pt"].error = ZeroDivisionError("secret internals")
    response = client.post("/v1/models/mnist:predict", json=BODY)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    text = response.get_data(as_text=True)
    assert "secret internals" not in text and "Traceback" not in text


def test_api_keys(make_app: Callable[..., Flask]) -> None:
    client = make_app(api_keys=("k1", "k2")).test_client()
    assert client.post("/v1/models/mnist:predict", json=BODY).status_code == 401
    assert (
        client.post("/v1/models/mnist:predict", json=BODY, headers={"X-API-Key": "wrong"}).status_code == 401
    )
    assert client.post("/v1/models/mnist:predict", json=BODY, headers={"X-API-Key": "k2"}).status_code == 200
    assert (
        client.post("/v1/models/mnist:predict", json=BODY, headers={"Authorization": "Bearer k1"}).status_code
        == 200
    )
    assert client.get("/livez").status_code == 200
    for public in ("/readyz", "/metrics", "/openapi.json", "/docs", "/v2/health/live", "/v2/health/ready"):
        assert client.get(public).status_code == 200, public  # probes and the spec need no key
    assert client.get("/v2/models/mnist").status_code == 401


def test_over_capacity_is_429(make_app: Callable[..., Flask], fakes: dict[str, FakeBackend]) -> None:
    client = make_app(max_inflight=1).test_client()
    inside, release = threading.Event(), threading.Event()

    def block() -> None:
        inside.set()
        release.wait(5)

    fakes["tf"].hook = fakes["pt"].hook = block
    worker = threading.Thread(target=lambda: client.post("/v1/models/mnist:predict", json=BODY))
    worker.start()
    assert inside.wait(5)
    response = client.post("/v1/models/mnist:predict", json=BODY)
    release.set()
    worker.join(5)
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"


def test_friendly_endpoints(client: FlaskClient) -> None:
    buffer = io.BytesIO()
    Image.new("L", (28, 28)).save(buffer, format="PNG")
    png = buffer.getvalue()
    raw = client.post("/predict", data=png, content_type="image/png")
    assert raw.status_code == 200 and raw.get_json()["predictions"][0]["digit"] == 3
    upload = client.post(
        "/v1/models/mnist:classify", data={"a": (io.BytesIO(png), "a.png"), "b": (io.BytesIO(png), "b.png")}
    )
    assert upload.status_code == 200 and len(upload.get_json()["predictions"]) == 2
    assert upload.get_json()["backend"] in ("tf", "pt")


def test_every_upload_is_classified_in_order_even_under_one_field_name(
    make_app: Callable[..., Flask], fakes: dict[str, FakeBackend]
) -> None:
    """``curl -F file=@a.png -F file=@b.png -F file=@c.png`` once classified only the first file."""

    def png(level: int) -> io.BytesIO:
        buffer = io.BytesIO()
        Image.new("L", (28, 28), level).save(buffer, format="PNG")
        buffer.seek(0)
        return buffer

    client = make_app(max_instances=3).test_client()
    levels = (0, 128, 255)
    files = [("file", (png(level), f"{level}.png")) for level in levels]
    response = client.post("/predict?backend=tf", data={"file": [f for _, f in files]})
    assert response.status_code == 200 and len(response.get_json()["predictions"]) == 3
    sent = fakes["tf"].last_images
    assert sent is not None and [round(float(image.mean()) * 255) for image in sent] == list(levels)
    too_many = [(png(0), f"{i}.png") for i in range(4)]
    assert client.post("/predict", data={"file": too_many}).status_code == 413


def test_status_endpoints(client: FlaskClient, fakes: dict[str, FakeBackend]) -> None:
    assert client.get("/v1/models").get_json() == {"models": ["mnist"]}
    model = client.get("/v1/models/mnist").get_json()
    assert model["ready"] and {b["name"] for b in model["backends"]} == {"tf", "pt"}
    assert client.get("/readyz").status_code == 200
    fakes["tf"].ready = False
    assert client.get("/readyz").status_code == 200
    fakes["pt"].ready = False
    assert client.get("/readyz").status_code == 503 and client.get("/livez").status_code == 200


def test_openapi_and_docs(client: FlaskClient) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.") and "/v1/models/{model}:predict" in spec["paths"]
    page = client.get("/docs").get_data(as_text=True)
    assert "openapi.json" in page and "http://" not in page and "https://" not in page


def test_metrics_show_requests_and_agreement(
    make_app: Callable[..., Flask], tmp_path: Path, fakes: dict[str, FakeBackend]
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text("models: {mnist: {backends: {tf: 1, pt: 0}, shadow: {percent: 100}}}")
    app = make_app(routing_file=routing)
    app.extensions["gateway"].router._shadow_executor = InlineExecutor()  # shadow results visible at once
    client = app.test_client()
    for _ in range(2):
        client.post("/v1/models/mnist:predict", json=BODY)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'gateway_shadow_agreement_ratio{model="mnist",primary="tf",shadow="pt"} 1.0' in text
    fakes["pt"].digit = 5  # the shadow now disagrees with the primary (digit 3) on every image
    for _ in range(2):
        client.post("/v1/models/mnist:predict", json=BODY)
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        'gateway_requests_total{backend="tf",endpoint="predict",model="mnist",status="200",version="1"} 4.0'
        in text
    )
    assert 'gateway_shadow_agreement_ratio{model="mnist",primary="tf",shadow="pt"} 0.5' in text
    labels = 'model="mnist",outcome="{}",primary="tf",shadow="pt"'
    assert f"gateway_shadow_items_total{{{labels.format('agree')}}} 2.0" in text
    assert f"gateway_shadow_items_total{{{labels.format('disagree')}}} 2.0" in text
    assert "gateway_overhead_seconds_bucket" in text


def test_a_full_shadow_pool_drops_the_mirror_and_counts_it(
    make_app: Callable[..., Flask], tmp_path: Path, fakes: dict[str, FakeBackend]
) -> None:
    """The shadow in-flight limit: a mirror that finds no free slot is dropped, counted, never queued."""
    routing = tmp_path / "routing.yaml"
    routing.write_text("models: {mnist: {backends: {tf: 1, pt: 0}, shadow: {percent: 100}}}")
    app = make_app(routing_file=routing, shadow_max_inflight=1)
    held = HeldExecutor()  # accepts shadow work and holds it: the one slot stays taken
    app.extensions["gateway"].router._shadow_executor = held
    client = app.test_client()
    answers = [client.post("/v1/models/mnist:predict", json=BODY) for _ in range(3)]
    assert [a.status_code for a in answers] == [200] * 3
    assert [a.headers["X-Gateway-Backend"] for a in answers] == ["tf"] * 3  # the primary never waits
    assert len(held.work) == 1 and fakes["pt"].calls == 0
    text = client.get("/metrics").get_data(as_text=True)
    shadow = 'gateway_shadow_requests_total{{model="mnist",outcome="{}",primary="tf",shadow="pt"}} {}'
    assert shadow.format("dropped", "2.0") in text
    held.run_all()  # the held mirror finishes and frees its slot: the next one is sent
    client.post("/v1/models/mnist:predict", json=BODY)
    held.run_all()
    text = client.get("/metrics").get_data(as_text=True)
    assert shadow.format("ok", "2.0") in text and shadow.format("dropped", "2.0") in text
    assert fakes["pt"].calls == 2


def test_admin_reload(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text("models: {mnist: {backends: {tf: 1}}}")
    client = make_app(routing_file=routing, admin_token="t0ken", routing_poll_s=3600).test_client()
    routing.write_text("models: {mnist: {backends: {pt: 1}}, digits: {backends: {pt: 1}}}")
    assert client.post("/admin/reload").status_code == 401
    assert client.post("/admin/reload", headers={"Authorization": "Bearer nope"}).status_code == 401
    response = client.post("/admin/reload", headers={"Authorization": "Bearer t0ken"})
    assert response.status_code == 200 and response.get_json()["models"] == ["digits", "mnist"]
    assert client.post("/v1/models/mnist:predict", json=BODY).headers["X-Gateway-Backend"] == "pt"
    routing.write_text("models: {mnist: {backends: {missing: 1}}}")
    assert client.post("/admin/reload", headers={"Authorization": "Bearer t0ken"}).status_code == 400


def test_yaml_version_weights_and_labels_through_the_gateway(
    make_app: Callable[..., Flask], tmp_path: Path, fakes: dict[str, FakeBackend]
) -> None:
    """`versions:` and `labels:` from the routing file, all the way to the answer's X-Model-Version."""
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "models: {mnist: {backends: {tf: 1}, versions: {1: 3, 2: 1}, labels: {stable: 1, canary: 2},"
        " sticky_header: X-Client-Id}}"
    )
    client = make_app(routing_file=routing).test_client()
    versions = Counter(
        client.post("/v1/models/mnist:predict", json=BODY).headers["X-Model-Version"] for _ in range(800)
    )
    assert set(versions) == {"1", "2"} and 0.19 < versions["2"] / 800 < 0.31
    for label, version in (("stable", "1"), ("canary", "2")):
        answer = client.post(f"/v1/models/mnist/labels/{label}:predict", json=BODY)
        assert answer.status_code == 200 and answer.headers["X-Model-Version"] == version
    sticky = {
        key: client.post("/v1/models/mnist:predict", json=BODY, headers={"X-Client-Id": key}).headers[
            "X-Model-Version"
        ]
        for key in map(str, range(100))
    }
    again = {
        key: client.post("/v1/models/mnist:predict", json=BODY, headers={"X-Client-Id": key}).headers[
            "X-Model-Version"
        ]
        for key in sticky
    }
    assert sticky == again and set(sticky.values()) == {"1", "2"}
