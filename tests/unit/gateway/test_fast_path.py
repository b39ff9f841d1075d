"""Predict paths answered by FastPath (plain WSGI) and by the Flask blueprints behind it: the same
requests must get the same status, body and headers (fake backends; no network, no models)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from flask import Flask
from werkzeug.test import Client, TestResponse

from gateway.errors import Unavailable
from gateway.fastpath import FastPath
from tests.unit.gateway.conftest import FakeBackend

IMAGE = [[0.0] * 28] * 28
BODY = json.dumps({"instances": [IMAGE]})
JSON = {"Content-Type": "application/json", "X-Request-ID": "req-1"}
V2 = "/v2/models/mnist/infer"
V2_TENSOR = {"name": "image", "datatype": "FP32", "shape": [1, 28, 28], "data": [0.5] * 784}
V2_HEAD = json.dumps(
    {
        "inputs": [
            {"name": "image", "datatype": "FP32", "shape": [1, 784], "parameters": {"binary_data_size": 3136}}
        ],
        "parameters": {"binary_data_output": True},
    }
).encode()
V2_BINARY = V2_HEAD + np.full(784, 0.25, dtype="<f4").tobytes()

CASES: dict[str, dict[str, Any]] = {
    "ok": {},
    "version": {"path": "/v1/models/mnist/versions/1:predict"},
    "unknown version": {"path": "/v1/models/mnist/versions/7:predict"},
    "label": {"path": "/v1/models/mnist/labels/stable:predict"},
    "unknown label": {"path": "/v1/models/mnist/labels/nope:predict"},
    "unknown model": {"path": "/v1/models/other:predict"},
    "backend header": {"headers": {"X-Gateway-Backend": "pt"}},
    "backend query": {"path": "/v1/models/mnist:predict?backend=tensorflow&x="},
    "bad backend": {"headers": {"X-Gateway-Backend": "nowhere"}},
    "charset": {"headers": {"Content-Type": "Application/JSON; charset=utf-8"}},
    "no content type": {"headers": {"Content-Type": ""}},
    "wrong content type": {"headers": {"Content-Type": "text/plain"}},
    "gzip": {"headers": {"Content-Encoding": "gzip"}},
    "not json": {"body": "{"},
    "wrong shape": {"body": json.dumps({"instances": [[0.1, 0.2]]})},
    "columnar": {"body": json.dumps({"inputs": [IMAGE]})},
    "too large": {"body": " " * 70_000},
    "no key": {"keys": ("k1",)},
    "wrong key": {"keys": ("k1",), "headers": {"X-API-Key": "k2"}},
    "bearer key": {"keys": ("k1",), "headers": {"Authorization": "Bearer k1"}},
    "backends down": {"down": True},
    "v2 json": {"path": V2, "body": json.dumps({"id": "a", "inputs": [V2_TENSOR]})},
    "v2 version": {"path": "/v2/models/mnist/versions/1/infer", "body": json.dumps({"inputs": [V2_TENSOR]})},
    "v2 unknown version": {
        "path": "/v2/models/mnist/versions/9/infer",
        "body": json.dumps({"inputs": [V2_TENSOR]}),
    },
    "v2 binary": {
        "path": V2,
        "body": V2_BINARY,
        "headers": {"Inference-Header-Content-Length": str(len(V2_HEAD))},
    },
    "v2 bad datatype": {"path": V2, "body": json.dumps({"inputs": [{**V2_TENSOR, "datatype": "INT8"}]})},
    "v2 missing input": {"path": V2, "body": json.dumps({"inputs": []})},
    "v2 unknown model": {"path": "/v2/models/other/infer", "body": json.dumps({"inputs": [V2_TENSOR]})},
    "v2 no key": {"path": V2, "keys": ("k1",), "body": json.dumps({"inputs": [V2_TENSOR]})},
    "v2 backends down": {"path": V2, "down": True, "body": json.dumps({"inputs": [V2_TENSOR]})},
}


def _post(app: Callable[..., Any], case: dict[str, Any], router: Any) -> TestResponse:
    router._rng.seed(7)  # the same weighted choice for both requests
    headers = {**JSON, **case.get("headers", {})}
    path = case.get("path", "/v1/models/mnist:predict")
    return Client(app).post(path, data=case.get("body", BODY), headers=headers)


def _count_hand_ons(fast: FastPath) -> list[dict[str, Any]]:
    """Make ``fast`` note each request it hands on to Flask; returns the list it appends to."""
    flask_app, handed_on = fast.app, []

    def noted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        handed_on.append(environ)
        return flask_app(environ, start_response)

    fast.app = noted
    return handed_on


def _comparable(response: TestResponse) -> tuple[int, Any, dict[str, str]]:
    headers = {name.lower(): value for name, value in response.headers.items()}
    assert "server-timing" in headers  # timings differ run to run: present, not compared
    headers.pop("server-timing")
    json_body = headers["content-type"] == "application/json"
    return response.status_code, json.loads(response.data) if json_body else response.data, headers


@pytest.mark.parametrize("name", CASES)
def test_fast_path_answers_like_flask(
    make_app: Callable[..., Flask], fakes: dict[str, FakeBackend], name: str
) -> None:
    case = CASES[name]
    app = make_app(api_keys=case.get("keys", ()), max_body_bytes=65_536)
    if case.get("down"):
        for fake in fakes.values():
            fake.error = Unavailable("down")
    router = app.extensions["gateway"].router
    fast = app.wsgi_app
    assert isinstance(fast, FastPath)
    flask_app = fast.app
    handed_on = _count_hand_ons(fast)
    fast_answer = _comparable(_post(fast, case, router))
    assert handed_on == []  # the fast path answered itself
    assert fast_answer == _comparable(_post(flask_app, case, router))


def test_fast_path_hands_on_what_it_does_not_serve(make_app: Callable[..., Flask]) -> None:
    """GET, a path Flask would redirect, and a body without a declared length go to Flask."""
    app = make_app()
    assert isinstance(app.wsgi_app, FastPath)
    handed_on = _count_hand_ons(app.wsgi_app)
    client = app.test_client()
    assert client.get("/v1/models/mnist:predict").status_code == 405
    assert client.post("/v1//models/mnist:predict", data=BODY, headers=JSON).status_code in (308, 404)
    chunked = client.post(  # as a server passes a chunked body on: no length, a terminated stream
        "/v1/models/mnist:predict",
        input_stream=io.BytesIO(BODY.encode()),
        headers={**JSON, "Transfer-Encoding": "chunked"},
        environ_overrides={"CONTENT_LENGTH": "", "wsgi.input_terminated": True},
    )
    assert chunked.status_code == 200 and len(chunked.get_json()["predictions"][0]) == 10
    assert len(handed_on) == 3


def test_fast_path_headers_read_like_werkzeugs() -> None:
    """The fast path's header view caches each name's environ key; it must read what Werkzeug's does,
    in any case, for present and absent headers alike."""
    from werkzeug.datastructures import EnvironHeaders

    from gateway.fastpath import _Headers

    environ = {
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "12",
        "HTTP_X_REQUEST_ID": "req-1",
        "HTTP_X_GATEWAY_BACKEND": "torchserve-rest",
        "HTTP_AUTHORIZATION": "Bearer k",
    }
    ours, werkzeugs = _Headers(environ), EnvironHeaders(environ)
    names = ["Content-Type", "content-length", "X-Request-ID", "x-request-id", "X-Gateway-Backend"]
    names += ["Authorization", "X-API-Key", "Content-Encoding", "traceparent"]
    for name in names * 2:  # the second round reads the cached keys
        assert ours.get(name) == werkzeugs.get(name), name
        assert ours.get(name, "absent") == werkzeugs.get(name, "absent"), name
        assert (name in ours) == (name in werkzeugs), name
    assert ours["x-gateway-backend"] == "torchserve-rest"
    assert ours.get("Content-Length", type=int) == 12
    with pytest.raises(KeyError):
        ours["X-API-Key"]
