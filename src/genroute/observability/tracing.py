"""OpenTelemetry traces following the GenAI semantic conventions.

One span per request (`generate_content <model group>`, kind SERVER at the proxy) and one
child span per upstream HTTP attempt (kind CLIENT), so retries and fallbacks show up as
siblings. An incoming `traceparent` is the parent of the request span, and each attempt's
context is injected into the upstream request headers.

Export is OTLP (http/protobuf), configured by the standard variables
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `..._HEADERS`,
`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`).
With `tracing.enabled: auto` (the default) tracing is on only when an endpoint is set;
when off, this module is not even imported.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import propagate
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from genroute._version import __version__
from genroute.call import Call, Operation
from genroute.errors import GenrouteError
from genroute.observability.records import CallRecord
from genroute.observability.spans import SpanFactory
from genroute.providers.catalog import otel_name

__all__ = ["Tracing", "provider_name"]

OPERATIONS = {
    "generateContent": "generate_content",
    "streamGenerateContent": "generate_content",
    "countTokens": "count_tokens",
    "embedContent": "embeddings",
    "batchEmbedContents": "embeddings",
}

_OPERATION_NAMES = {op: OPERATIONS.get(op.value, op.value) for op in Operation}


def provider_name(provider: str | None) -> str:
    """The `gen_ai.provider.name` for a genroute provider prefix."""
    if not provider:
        return "unknown"
    return otel_name(provider)


def _epoch_ns(perf: float) -> int:
    """A perf_counter() reading as wall-clock nanoseconds."""
    return time.time_ns() - int((time.perf_counter() - perf) * 1e9)


_REQUEST_CONFIG = (
    ("max_output_tokens", "gen_ai.request.max_tokens"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("seed", "gen_ai.request.seed"),
    ("candidate_count", "gen_ai.request.choice.count"),
)


def _request_attributes(operation: str, call: Call, request: Any) -> dict[str, Any]:
    """The request span's attributes known when the call starts."""
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": call.model,
        "gen_ai.request.stream": call.stream,
        "genroute.request_id": call.request_id,
    }
    config = getattr(request, "generation_config", None)
    if config is not None:
        for attr, name in _REQUEST_CONFIG:
            value = getattr(config, attr, None)
            if value is not None:
                attributes[name] = value
        stops = getattr(config, "stop_sequences", None)
        if stops:
            attributes["gen_ai.request.stop_sequences"] = tuple(stops)
    return attributes


class Tracing:
    """A tracer of its own (the process-wide provider is left alone)."""

    def __init__(
        self,
        *,
        exporter: SpanExporter | None = None,
        processor: SpanProcessor | None = None,
        request_kind: SpanKind = SpanKind.SERVER,
    ) -> None:
        resource = Resource.create({"service.name": "genroute", "service.version": __version__})
        self.provider = TracerProvider(resource=resource)
        if processor is None:
            if exporter is None:
                from genroute.observability.otlp import FastOTLPSpanExporter

                exporter = FastOTLPSpanExporter()
            processor = BatchSpanProcessor(exporter)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("genroute", __version__)
        self.spans = SpanFactory(self.provider, processor, "genroute", __version__)
        self.request_kind = request_kind
        self._urls: dict[str, dict[str, Any]] = {}

    # -- the request span -------------------------------------------------------------------

    def start_call(self, call: Call, request: Any) -> Span:
        """The request span, started at the call's start; its parent is the incoming
        `traceparent` when the call came with one. Its attributes are read off the call
        and the request only when it is sampled (or the sampler wants to see them)."""
        operation = _OPERATION_NAMES[call.operation]
        parent = propagate.extract(dict(call.trace_headers)) if call.trace_headers else None
        return self.spans.start(
            f"{operation} {call.model}",
            context=parent,
            kind=self.request_kind,
            attributes=lambda: _request_attributes(operation, call, request),
            start_time=lambda: _epoch_ns(call.started),
        )

    def context_headers(self, span: Span) -> dict[str, str]:
        """The headers that carry `span`'s context upstream (`traceparent`, ...)."""
        return self.spans.context_headers(span)

    def end_call(self, span: Span, record: CallRecord, finished: float) -> None:
        """Set what the finished call learned, then end the span at the call's end."""
        if not span.is_recording():  # not sampled: the attributes would go nowhere
            span.end()
            return
        attrs: dict[str, Any] = {
            "gen_ai.provider.name": provider_name(record.provider),
            "genroute.model_group": record.model_group or "",
            "genroute.attempts": record.attempts,
            "http.response.status_code": record.status_code,
        }
        for name, value in (
            ("gen_ai.response.model", record.response_model or record.provider_model),
            ("genroute.deployment_id", record.deployment_id),
            ("genroute.provider_model", record.provider_model),
            ("genroute.key_alias", record.key_alias),
            ("genroute.team_id", record.team_id),
            ("genroute.end_user", record.end_user),
            ("genroute.cost_usd", record.cost),
            ("gen_ai.usage.input_tokens", record.input_tokens),
            ("gen_ai.usage.output_tokens", record.output_tokens),
        ):
            if value is not None:
                attrs[name] = value
        if record.fallbacks:
            attrs["genroute.fallbacks"] = tuple(record.fallbacks)
        if record.finish_reason:
            attrs["gen_ai.response.finish_reasons"] = (record.finish_reason,)
        if record.reasoning_tokens:
            attrs["gen_ai.usage.reasoning.output_tokens"] = record.reasoning_tokens
        if record.cached_tokens:
            attrs["gen_ai.usage.cache_read.input_tokens"] = record.cached_tokens
        if record.time_to_first_token_ms is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = record.time_to_first_token_ms / 1000
        span.set_attributes(attrs)
        if record.error_status is not None:
            span.set_attribute("error.type", record.error_status)
            span.set_status(Status(StatusCode.ERROR, record.error_message or record.error_status))
        span.end(end_time=_epoch_ns(finished))

    # -- one span per upstream attempt ------------------------------------------------------

    def attempt(self, parent: Span, call: Call, url: str) -> Attempt:
        """A CLIENT span around one upstream HTTP request (a context manager whose value
        is the headers to add to it)."""
        return Attempt(self, parent, call, url)

    def _url_attributes(self, url: str) -> dict[str, Any]:
        """The server and URL attributes of an upstream URL (the query left out), kept
        for the last few hundred URLs."""
        found = self._urls.get(url)
        if found is None:
            parts = urlsplit(url)
            found = {
                "server.address": parts.hostname or "",
                "url.full": f"{parts.scheme}://{parts.netloc}{parts.path}",
            }
            if parts.port:
                found["server.port"] = parts.port
            if len(self._urls) >= 256:
                self._urls.clear()
            self._urls[url] = found
        return found

    def shutdown(self) -> None:
        """Export what is buffered and stop."""
        self.provider.shutdown()


class Attempt:
    """The CLIENT span of one upstream HTTP request, as a context manager: started on
    entry (its value: the headers that carry it upstream), ended on exit with the status
    or the error the request ended with."""

    __slots__ = ("call", "parent", "span", "tracing", "url")

    def __init__(self, tracing: Tracing, parent: Span, call: Call, url: str) -> None:
        self.tracing = tracing
        self.parent = parent
        self.call = call
        self.url = url

    def __enter__(self) -> dict[str, str]:
        tracing, route = self.tracing, self.call.route
        operation = _OPERATION_NAMES[self.call.operation]
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider_name(route.provider),
            "gen_ai.request.model": route.provider_model or "",
            "genroute.deployment_id": route.deployment_id or "",
            "genroute.attempt": len(route.attempts),
            "http.request.method": "POST",
        }
        attributes.update(tracing._url_attributes(self.url))
        self.span = span = tracing.spans.start(
            f"{operation} {route.provider_model}",
            parent=self.parent,
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        try:
            return tracing.spans.context_headers(span)
        except BaseException as exc:  # a propagator that fails: the span ends with it
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self.span
        if exc is None:
            span.set_attribute("http.response.status_code", 200)
        elif isinstance(exc, GenrouteError):
            span.set_attribute("http.response.status_code", exc.code)
            span.set_attribute("error.type", exc.status)
            span.set_status(Status(StatusCode.ERROR, exc.message))
        elif isinstance(exc, GeneratorExit | Exception):
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        else:
            span.set_attribute("error.type", "cancelled")
        span.end()
