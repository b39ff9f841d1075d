"""TF Serving's REST API over ``http.server``: routing, bodies, limits and the stand-in header.

:class:`RestApi` maps (method, path, body) to a status and a JSON answer without any socket, so it
can be tested in-process; :func:`make_http_server` puts it behind a ``ThreadingHTTPServer``
(one thread per connection, HTTP/1.1 keep-alive). Paths follow TF Serving's own patterns,
case-insensitive, with URL-escaped model names and labels decoded.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from google.protobuf import json_format
from google.protobuf.message import Message
from tensorflow_serving.apis.get_model_metadata_pb2 import SignatureDefMap

from serving.tfserving import json_tensors, service
from serving.tfserving.errors import Code, ServingError, invalid_argument, not_found
from serving.tfserving.identity import SERVED_BY_HEADER, STANDIN_NAME
from serving.tfserving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.tfserving.metrics import Metrics
from serving.tfserving.repository import ModelRepository

logger = logging.getLogger(__name__)

METRICS_PATH = "/monitoring/prometheus/metrics"
JSON_TYPE = "application/json"
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
CONNECTION_IDLE_TIMEOUT_S = 60.0
_INT64_MAX = 2**63 - 1

_PREDICT = re.compile(
    r"/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?:(classify|regress|predict)", re.IGNORECASE
)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:/versions/(\d+)|/labels/([^/:]+))?(?:/(metadata))?", re.IGNORECASE
)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    api: str = field(default="other", compare=False)


def _error(exc: ServingError, api: str) -> Reply:
    return Reply(exc.http_status, json_tensors.dumps({"error": exc.message}), api=api)


def _proto_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _target(model: str, version: str | None, label: str | None) -> service.Target:
    number = int(version) if version else None
    if number is not None and number > _INT64_MAX:
        raise invalid_argument(f"Failed to convert version: {version} to numeric.")
    return service.Target(unquote(model), number, unquote(label) if label else None)


class RestApi:
    """The REST endpoints of TF Serving, plus Prometheus metrics; ``max_concurrent`` bounds model work."""

    def __init__(self, repository: ModelRepository, metrics: Metrics, max_concurrent: int) -> None:
        self.repository = repository
        self.metrics = metrics
        self._slots = threading.BoundedSemaphore(max(1, max_concurrent))

    def handle(self, method: str, raw_path: str, body: bytes) -> Reply:
        started = time.perf_counter()
        path = urlsplit(raw_path).path
        if path == METRICS_PATH and method == "GET":
            loaded = {self.repository.model_name: self.repository.available_versions()}
            reply = Reply(200, self.metrics.render(loaded).encode(), METRICS_CONTENT_TYPE, api="metrics")
        else:
            reply = self._dispatch(method, path, body)
        self.metrics.observe("rest", reply.api, str(reply.status), time.perf_counter() - started)
        return reply

    def _dispatch(self, method: str, path: str, body: bytes) -> Reply:
        if not path.lower().startswith("/v1/"):
            return _error(not_found(f"No handler for path: {path}"), "other")
        api = "other"
        try:
            if method == "POST" and (match := _PREDICT.fullmatch(path)):
                model, version, label, verb = match.groups()
                api = verb.lower()
                if api != "predict":
                    raise ServingError(Code.UNIMPLEMENTED, f"{verb} is not implemented by the stand-in")
                with self._slots:
                    return self._predict(_target(model, version, label), body)
            if method == "GET" and (match := _STATUS.fullmatch(path)):
                model, version, label, metadata = match.groups()
                api = "metadata" if metadata else "status"
                if not model:
                    raise invalid_argument("Missing model name in request.")
                target = _target(model, version, label)
                if metadata:
                    return Reply(200, json_tensors.dumps(_metadata_json(self.repository, target)), api=api)
                status = service.model_status(self.repository, target)
                return Reply(200, json_tensors.dumps(_proto_json(status)), api=api)
            raise invalid_argument(f"Malformed request: {method} {path}")
        except ServingError as exc:
            return _error(exc, api)
        except Exception:
            logger.exception("unexpected failure answering %s %s", method, path)
            return _error(ServingError(Code.INTERNAL, "Internal error in the stand-in (see its log)"), api)

    def _predict(self, target: service.Target, body: bytes) -> Reply:
        request = json_tensors.parse_predict_body(body)
        servable = self.repository.resolve(target.model_name, target.version, target.label)
        inputs = json_tensors.tensors_from_body(request, servable.signature_inputs(request.signature_name))
        result = service.predict(self.repository, target, request.signature_name, inputs, servable=servable)
        return Reply(
            200,
            json_tensors.dumps(json_tensors.render_outputs(result.outputs, request.format)),
            api="predict",
        )


def _metadata_json(repository: ModelRepository, target: service.Target) -> dict[str, Any]:
    """TF Serving's metadata JSON: model_spec, then the SignatureDefMap unpacked from its Any."""
    response = service.model_metadata(repository, target)
    signature_map = SignatureDefMap()
    response.metadata[service.SIGNATURE_DEF_FIELD].Unpack(signature_map)
    return {
        "model_spec": _proto_json(response.model_spec),
        "metadata": {service.SIGNATURE_DEF_FIELD: _proto_json(signature_map)},
    }


class _Handler(BaseHTTPRequestHandler):
    """Reads at most ``max_body_bytes``; every answer carries the stand-in header."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server_version = "tfserving-standin"
    timeout = CONNECTION_IDLE_TIMEOUT_S
    api: RestApi
    max_body_bytes: int

    def version_string(self) -> str:
        return self.server_version

    def end_headers(self) -> None:
        self.send_header(SERVED_BY_HEADER, STANDIN_NAME)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _refuse(self, status: int, message: str) -> None:
        self.close_connection = True  # the unread body would corrupt the next request on this connection
        self._send(Reply(status, json_tensors.dumps({"error": message})))
        self.api.metrics.observe("rest", "other", str(status), 0.0)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._refuse(411, "Chunked request bodies are not supported: send Content-Length")
            return None
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            self._refuse(400, "Invalid Content-Length")
            return None
        if length < 0:
            self._refuse(400, "Invalid Content-Length")
            return None
        if length > self.max_body_bytes:
            self._refuse(
                413, f"Request body of {length} bytes exceeds the limit of {self.max_body_bytes} bytes"
            )
            return None
        return self.rfile.read(length)

    def do_GET(self) -> None:
        self._send(self.api.handle("GET", self.path, b""))

    def do_POST(self) -> None:
        body = self._read_body()
        if body is not None:
            self._send(self.api.handle("POST", self.path, body))

    def _other(self) -> None:
        self.close_connection = True
        self._send(self.api.handle(self.command, self.path, b""))

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _other


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    """The listen backlog. socketserver's default of 5 drops part of a burst of new connections while
    the accepting thread waits for the interpreter (a proxy opening one connection per thread as its
    load grows): each dropped connection waits for the client's SYN retry, a 1 s stall. Measured with
    32 connections opened at once: 8-13 of them took 1.03-1.06 s with the default, none with this."""


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_http_server(
    host: str, port: int, api: RestApi, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> ThreadingHTTPServer:
    """A bound (not yet serving) HTTP server; call ``serve_forever`` in a thread, ``shutdown`` to stop."""
    handler = type("RestHandler", (_Handler,), {"api": api, "max_body_bytes": max_body_bytes})
    server_class = _Server6 if ":" in host else _Server
    return server_class((host, port), handler)
