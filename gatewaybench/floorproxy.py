"""The floor the gateway is measured against: the least a Python proxy can do for the same request.

A plain WSGI function under the gateway's server (granian) and client (libcurl): decode the client's
JSON, encode it again, POST it to the backend over a keep-alive handle, decode the answer, encode it;
no framework, validation, routing, metrics or headers. ``make bench-gateway`` runs it in the same run
as the gateway, so the report shows how much of the gateway's cost is its own work and how much any
proxy on this machine pays. With ``FLOOR_BACKEND_GRPC`` (host:port) it calls TF Serving's gRPC
Predict instead, over one grpcio channel as the gateway does: the image as a float32 tensor, the
answer's tensor back to JSON. ``FLOOR_BACKEND_AUTHORIZATION`` is sent as the REST backend's
``Authorization`` header (TorchServe's inference key). Without a backend it answers a fixed
prediction after the decode (no model work at all); with ``FLOOR_MODEL`` (a TorchScript file) it runs
that model on the decoded image instead: the floor of a gateway that runs the model itself.
``create_app(replay=answer)`` (in process only, for :mod:`gatewaybench.stages`) does the REST
forward's work except the call: each request's body is encoded, and ``answer`` is decoded and encoded as
if the backend had just sent it, which is the proxy's own CPU with an instant backend.

    FLOOR_BACKEND_URL=http://127.0.0.1:8501/v1/models/mnist:predict \\
        granian --interface wsgi --factory gatewaybench.floorproxy:create_app
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import pycurl

__all__ = ["FIXED_ANSWER", "create_app"]

FIXED_ANSWER = {"predictions": [[0.1] * 10]}
Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _model_answer(script: str) -> Callable[[Any], bytes]:
    """Decoded ``{"instances": [...]}`` -> the TorchScript's ``{"predictions": ...}``, nothing else."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    module = torch.jit.load(script, map_location="cpu").eval()

    def answer(document: Any) -> bytes:
        images = np.asarray(document["instances"], dtype=np.float32)
        with torch.inference_mode():
            output = module(torch.from_numpy(images)).numpy()
        return orjson.dumps({"predictions": output}, option=orjson.OPT_SERIALIZE_NUMPY)

    return answer


def _grpc_forward(target: str) -> Callable[[Any], tuple[int, bytes]]:
    """Decoded ``{"instances": [...]}`` -> TF Serving's gRPC Predict -> ``{"predictions": ...}``."""
    import grpc
    import numpy as np

    from loadtests.grpc_wire import tfserving_codec, tfserving_outputs, tfserving_predict_request
    from model_store import MODEL_NAME

    codec = tfserving_codec(MODEL_NAME)
    predict = grpc.insecure_channel(target).unary_unary(codec.method, _registered_method=False)

    def forward(document: Any) -> tuple[int, bytes]:
        images = np.asarray(document["instances"], dtype=np.float32)
        answer = predict(tfserving_predict_request(codec, images), timeout=3.0)
        probabilities = tfserving_outputs(codec, answer).reshape(len(images), -1)
        return 200, orjson.dumps({"predictions": probabilities}, option=orjson.OPT_SERIALIZE_NUMPY)

    return forward


def _replayed(answer: bytes) -> Callable[[bytes], tuple[int, bytes]]:
    """A forward whose backend answers ``answer`` at once: the answer is decoded and encoded, as from
    a real call."""

    def forward(body: bytes) -> tuple[int, bytes]:
        return 200, orjson.dumps(orjson.loads(answer))

    return forward


def create_app(replay: bytes | None = None) -> Wsgi:
    backend = os.environ.get("FLOOR_BACKEND_URL", "")
    headers = ["Content-Type: application/json", "Expect:"]
    if authorization := os.environ.get("FLOOR_BACKEND_AUTHORIZATION", ""):
        headers.append(f"Authorization: {authorization}")
    grpc_forward = (
        _grpc_forward(os.environ["FLOOR_BACKEND_GRPC"]) if os.environ.get("FLOOR_BACKEND_GRPC") else None
    )
    model = _model_answer(os.environ["FLOOR_MODEL"]) if os.environ.get("FLOOR_MODEL") else None
    local = threading.local()

    def handle() -> pycurl.Curl:
        curl = getattr(local, "curl", None)
        if curl is None:
            curl = local.curl = pycurl.Curl()
            curl.setopt(pycurl.URL, backend)
            curl.setopt(pycurl.NOSIGNAL, 1)
            curl.setopt(pycurl.HTTPHEADER, headers)
            curl.setopt(pycurl.TIMEOUT_MS, 3000)
        return curl

    def call_backend(body: bytes) -> tuple[int, bytes]:
        chunks: list[bytes] = []
        curl = handle()
        curl.setopt(pycurl.POSTFIELDS, body)
        curl.setopt(pycurl.WRITEFUNCTION, chunks.append)
        curl.perform()
        return int(curl.getinfo(pycurl.RESPONSE_CODE)), orjson.dumps(orjson.loads(b"".join(chunks)))

    forward: Callable[[bytes], tuple[int, bytes]] | None = call_backend if backend else None
    if replay is not None:
        forward = _replayed(replay)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        document = orjson.loads(environ["wsgi.input"].read(length))
        if grpc_forward is not None:
            status, answer = grpc_forward(document)
        elif forward is not None:
            status, answer = forward(orjson.dumps(document))
        else:
            status, answer = 200, model(document) if model else orjson.dumps(FIXED_ANSWER)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
        start_response(f"{status} {'OK' if status == 200 else 'Error'}", headers)
        return [answer]

    return app
