"""The floor the gateway is measured against: the least a Flask proxy can do for the same request.

Decode the client's JSON, encode it again, POST it to the backend over a keep-alive libcurl handle,
decode the answer, encode it: no validation, routing, metrics or headers. Served by the same server
as the gateway (granian, WSGI), so ``make bench-gateway`` can show in one run how much of the
gateway's cost is its own work and how much any Flask proxy on this machine pays.

    FLOOR_BACKEND_URL=http://127.0.0.1:8501/v1/models/mnist:predict \\
        granian --interface wsgi --factory loadtests.floorproxy:create_app
"""

from __future__ import annotations

import os
import threading

import orjson
import pycurl
from flask import Flask, Response, request

__all__ = ["create_app"]


def create_app() -> Flask:
    backend = os.environ["FLOOR_BACKEND_URL"]
    local = threading.local()
    app = Flask("floorproxy")

    def handle() -> pycurl.Curl:
        curl = getattr(local, "curl", None)
        if curl is None:
            curl = local.curl = pycurl.Curl()
            curl.setopt(pycurl.URL, backend)
            curl.setopt(pycurl.NOSIGNAL, 1)
            curl.setopt(pycurl.HTTPHEADER, ["Content-Type: application/json", "Expect:"])
            curl.setopt(pycurl.TIMEOUT_MS, 3000)
        return curl

    @app.post("/v1/models/<model>:predict")
    def predict(model: str) -> Response:
        body = orjson.dumps(orjson.loads(request.get_data()))
        chunks: list[bytes] = []
        curl = handle()
        curl.setopt(pycurl.POSTFIELDS, body)
        curl.setopt(pycurl.WRITEFUNCTION, chunks.append)
        curl.perform()
        answer = orjson.dumps(orjson.loads(b"".join(chunks)))
        return Response(answer, status=int(curl.getinfo(pycurl.RESPONSE_CODE)), mimetype="application/json")

    return app
