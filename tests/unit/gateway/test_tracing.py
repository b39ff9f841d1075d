"""OpenTelemetry traces with the SDK's in-memory exporter: spans per request and per backend attempt,
the caller's trace continued, ``traceparent`` handed to backends over REST and gRPC."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, NamedTuple

import pytest
from flask import Flask
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.app import create_app
from gateway.backends.channels import _TraceContext
from gateway.backends.http import CurlTransport, HttpRequest
from gateway.errors import BadBackendResponse, Unavailable
from gateway.settings import Settings
from gateway.tracing import Tracing, exporter_from_env
from tests.unit.gateway.conftest import FakeBackend

BODY = {"instances": [[0.0] * 784]}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def traced(fakes: dict[str, FakeBackend]) -> Iterator[tuple[Callable[..., Flask], InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracing = Tracing(exporter, batch=False)

    def build(**overrides: object) -> Flask:
        settings = Settings().with_overrides(warmup=False, **overrides)
        return create_app(settings, backends=fakes, tracing=tracing)

    yield build, exporter
    tracing.close()


def test_off_unless_the_variables_ask() -> None:
    assert exporter_from_env({}) is None
    assert exporter_from_env({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"}) is None
    assert type(exporter_from_env({"OTEL_TRACES_EXPORTER": "console"})).__name__ == "ConsoleSpanExporter"
    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert type(exporter_from_env(endpoint)).__name__ == "OTLPSpanExporter"
    assert not Tracing(None).enabled


def test_a_request_continues_the_callers_trace_with_one_span_per_attempt(
    traced: tuple[Callable[..., Flask], InMemorySpanExporter], fakes: dict[str, FakeBackend]
) -> None:
    build, exporter = traced
    client = build().test_client()
    fakes["tf"].error = Unavailable("refused")  # if tf is chosen first, pt answers after a failover
    for _ in range(6):
        assert (
            client.post(
                "/v1/models/mnist:predict", json=BODY, headers={"traceparent": TRACEPARENT}
            ).status_code
            == 200
        )
    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind == SpanKind.SERVER]
    clients = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert len(servers) == 6
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}
    assert all(s.name == "POST /v1/models/<model:model>:predict" for s in servers)
    assert all(s.attributes["http.response.status_code"] == 200 for s in servers)
    by_request = {
        s.context.span_id: [c for c in clients if c.parent.span_id == s.context.span_id] for s in servers
    }
    attempts = sorted(len(children) for children in by_request.values())
    assert attempts[0] >= 1 and set(attempts) <= {1, 2}
    assert sum(len(c) for c in by_request.values()) == fakes["tf"].calls + fakes["pt"].calls
    assert {c.attributes["gateway.backend"] for c in clients} <= {"tf", "pt"}


def test_tracing_off_makes_no_spans(fakes: dict[str, FakeBackend]) -> None:
    app = create_app(Settings().with_overrides(warmup=False), backends=fakes, tracing=Tracing(None))
    assert app.test_client().post("/v1/models/mnist:predict", json=BODY).status_code == 200


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.seen.append(dict(self.headers))
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


def test_rest_calls_carry_traceparent_inside_a_span() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(exporter, batch=False)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    transport = CurlTransport()
    url = f"http://127.0.0.1:{server.server_address[1]}/x"
    try:
        transport.send(HttpRequest("POST", url, b"{}", {}, 5.0))  # no span: no header
        with tracing.attempt("tfserving-rest", "mnist", "1"):
            transport.send(HttpRequest("POST", url, b"{}", {}, 5.0))
    finally:
        transport.close()
        server.shutdown()
        server.server_close()
        tracing.close()
    outside, inside = _Recorder.seen[-2:]
    assert "traceparent" not in {k.lower() for k in outside}
    span = exporter.get_finished_spans()[0]
    assert {k.lower(): v for k, v in inside.items()}["traceparent"].split("-")[2] == format(
        span.context.span_id, "016x"
    )


class CallDetails(NamedTuple):
    """What grpc hands an interceptor (its own class is private): a named tuple of these fields."""

    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


def test_grpc_calls_carry_traceparent_as_metadata() -> None:
    tracing = Tracing(InMemorySpanExporter(), batch=False)
    sent: list[Any] = []
    details = CallDetails("/m", 1.0, [("authorization", "Bearer k")], None, None, None)
    interceptor = _TraceContext()
    interceptor.intercept_unary_unary(lambda d, r: sent.append(d.metadata), details, b"")
    with tracing.attempt("torchserve-grpc", "mnist", "1"):
        interceptor.intercept_unary_unary(lambda d, r: sent.append(d.metadata), details, b"")
    tracing.close()
    assert sent[0] == [("authorization", "Bearer k")]
    assert [k for k, _ in sent[1]] == ["authorization", "traceparent"]


def test_a_failed_requests_log_line_names_its_request_id_and_trace_id(
    traced: tuple[Callable[..., Flask], InMemorySpanExporter],
    fakes: dict[str, FakeBackend],
    caplog: pytest.LogCaptureFixture,
) -> None:
    build, _ = traced
    client = build().test_client()
    for fake in fakes.values():
        fake.error = BadBackendResponse("bad answer", backend=fake.name, detail="the backend's own words")
    with caplog.at_level(logging.WARNING, logger="gateway"):
        reply = client.post("/v1/models/mnist:predict", json=BODY, headers={"traceparent": TRACEPARENT})
    assert reply.status_code == 502
    request_id = reply.headers["X-Request-ID"]
    lines = [
        record.getMessage() for record in caplog.records if "the backend's own words" in record.getMessage()
    ]
    assert lines and all(request_id in line and TRACE_ID in line for line in lines), lines
    assert "the backend's own words" not in reply.get_data(as_text=True)


def test_grpc_ingress_requests_get_the_same_bookkeeping_as_http(
    traced: tuple[Callable[..., Flask], InMemorySpanExporter],
) -> None:
    """The gRPC ingress runs :mod:`gateway.calls` too: a server span continuing the caller's trace,
    the client's request id when valid (a new one when not), counted in the request metrics."""
    import grpc
    from tritonclient.grpc import service_pb2 as v2
    from tritonclient.grpc import service_pb2_grpc as v2_grpc

    from gateway.protocols.grpc_ingress import start_ingress
    from serving.ports import free_port

    build, exporter = traced
    gateway = build().extensions["gateway"]
    port = free_port()
    server = start_ingress(gateway, f"127.0.0.1:{port}", 2)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = v2_grpc.GRPCInferenceServiceStub(channel)
            tensor = v2.ModelInferRequest.InferInputTensor(name="image", datatype="FP32", shape=[1, 784])
            tensor.contents.fp32_contents.extend([0.0] * 784)
            request = v2.ModelInferRequest(model_name="mnist", inputs=[tensor])
            for request_id in ("client-id-1", "not valid!"):
                metadata = (("traceparent", TRACEPARENT), ("x-request-id", request_id))
                stub.ModelInfer(request, timeout=10, metadata=metadata)
    finally:
        server.stop(0).wait(5)
    servers = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert [s.name for s in servers] == ["grpc_model_infer"] * 2
    assert {format(s.context.trace_id, "032x") for s in servers} == {TRACE_ID}
    ids = [s.attributes["gateway.request_id"] for s in servers]
    assert ids[0] == "client-id-1" and ids[1] != "not valid!" and len(str(ids[1])) == 32
    assert all(s.attributes["gateway.model"] == "mnist" for s in servers)
    assert 'endpoint="grpc_model_infer"' in gateway.metrics.render().decode()
