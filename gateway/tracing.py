"""OpenTelemetry traces: a server span per request, a client span per backend attempt, W3C propagation.

Off unless the standard variables ask for it, and then free: with tracing off no span object is made
anywhere (the hooks test one attribute). On when
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (OTLP over HTTP) or
``OTEL_TRACES_EXPORTER`` names ``otlp`` or ``console``; ``OTEL_TRACES_EXPORTER=none`` wins. Service
name and resource attributes come from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` as the
SDK reads them. Tests pass their own exporter (the SDK's in-memory one).

An incoming ``traceparent`` continues the client's trace; each backend attempt (and each shadow call)
is a child span, and its ``traceparent`` goes to the backend: as an HTTP header over REST, as gRPC
metadata over gRPC (``outgoing_headers()``, read by the backends).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

__all__ = ["Tracing", "current_trace_id", "exporter_from_env", "outgoing_headers", "requested"]

log = logging.getLogger(__name__)


def requested(environ: Mapping[str, str] | None = None) -> bool:
    """Do the ``OTEL_*`` variables turn tracing on?"""
    env = os.environ if environ is None else environ
    chosen = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return chosen != "none" and bool(chosen or endpoint)


def exporter_from_env(environ: Mapping[str, str] | None = None) -> SpanExporter | None:
    """The exporter the ``OTEL_*`` variables ask for, or None (tracing off)."""
    env = os.environ if environ is None else environ
    if not requested(env):
        return None
    chosen = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if chosen == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if chosen not in ("", "otlp"):
        log.error("OTEL_TRACES_EXPORTER=%s is not supported here (otlp, console, none); tracing off", chosen)
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # reads the endpoint, headers and timeout from the same variables


class Tracing:
    """One worker's tracer; ``enabled`` is False when no exporter is configured (no spans at all)."""

    def __init__(self, exporter: SpanExporter | None, *, batch: bool = True) -> None:
        self.enabled = exporter is not None
        self._provider: TracerProvider | None = None
        self._tracer: trace.Tracer | None = None
        if exporter is not None:
            resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "mnist-gateway")})
            self._provider = TracerProvider(resource=resource)
            processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
            self._provider.add_span_processor(processor)
            self._tracer = self._provider.get_tracer("gateway")

    def start_request(self, name: str, headers: Mapping[str, str]) -> tuple[Span, object]:
        """A server span continuing the caller's trace, made current; end it with ``end_request``."""
        assert self._tracer is not None
        parent = extract(headers)
        span = self._tracer.start_span(name, context=parent, kind=SpanKind.SERVER)
        token = context.attach(trace.set_span_in_context(span, parent))
        return span, token

    @staticmethod
    def end_request(span: Span, token: object, status: int, attributes: Mapping[str, Any]) -> None:
        span.set_attribute("http.response.status_code", status)
        for key, value in attributes.items():
            if value not in (None, ""):
                span.set_attribute(key, value)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        context.detach(token)  # type: ignore[arg-type]

    @contextmanager
    def attempt(self, backend: str, model: str, version: str, **attributes: Any) -> Iterator[Span | None]:
        """A client span around one backend call; its ``traceparent`` is what the backend receives."""
        if self._tracer is None:
            yield None
            return
        with self._tracer.start_as_current_span(f"{backend} {model}", kind=SpanKind.CLIENT) as span:
            span.set_attribute("gateway.backend", backend)
            span.set_attribute("gateway.model", model)
            span.set_attribute("gateway.version", version)
            for key, value in attributes.items():
                span.set_attribute(f"gateway.{key}", value)
            yield span

    def close(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def outgoing_headers() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current span, for a backend call; {} when none."""
    carrier: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        inject(carrier)
    return carrier


def current_trace_id() -> str:
    """The current span's trace id in hex, or "" (for log lines next to the request id)."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""
