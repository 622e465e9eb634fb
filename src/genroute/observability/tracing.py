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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from genroute._version import __version__
from genroute.context import CallContext
from genroute.errors import GenrouteError

# genroute provider prefix -> gen_ai.provider.name (well-known values of the conventions).
PROVIDER_NAMES = {
    "gemini": "gcp.gemini",
    "google_ai_studio": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "openai": "openai",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral": "mistral_ai",
    "perplexity": "perplexity",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}


def provider_name(provider: str | None) -> str:
    """The `gen_ai.provider.name` for a genroute provider prefix."""
    if not provider:
        return "unknown"
    return PROVIDER_NAMES.get(provider, provider)


def _epoch_ns(perf: float) -> int:
    """A perf_counter() reading as wall-clock nanoseconds."""
    return time.time_ns() - int((time.perf_counter() - perf) * 1e9)


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
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )

                exporter = OTLPSpanExporter()
            processor = BatchSpanProcessor(exporter)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("genroute", __version__)
        self.request_kind = request_kind

    # -- the edge ---------------------------------------------------------------------------

    @staticmethod
    def attach_incoming(headers: Sequence[tuple[bytes, bytes]]) -> object:
        """Make an incoming `traceparent` the current parent; returns a token for `detach`."""
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
        return otel_context.attach(propagate.extract(carrier))

    @staticmethod
    def detach(token: object) -> None:
        """Undo `attach_incoming`."""
        otel_context.detach(token)  # type: ignore[arg-type]

    # -- the request span -------------------------------------------------------------------

    def start_call(self, ctx: CallContext, request: Any) -> Span:
        """The request span, started at the call's start, as a child of the current span."""
        operation = "generate_content"
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": ctx.model_group or "",
            "gen_ai.request.stream": ctx.stream,
            "genroute.request_id": ctx.request_id,
        }
        config = getattr(request, "generation_config", None)
        if config is not None:
            for attr, name in (
                ("max_output_tokens", "gen_ai.request.max_tokens"),
                ("temperature", "gen_ai.request.temperature"),
                ("top_p", "gen_ai.request.top_p"),
                ("top_k", "gen_ai.request.top_k"),
                ("seed", "gen_ai.request.seed"),
                ("candidate_count", "gen_ai.request.choice.count"),
            ):
                value = getattr(config, attr, None)
                if value is not None:
                    attributes[name] = value
            stops = getattr(config, "stop_sequences", None)
            if stops:
                attributes["gen_ai.request.stop_sequences"] = list(stops)
        return self.tracer.start_span(
            f"{operation} {ctx.model_group}",
            kind=self.request_kind,
            attributes=attributes,
            start_time=_epoch_ns(ctx.started),
        )

    def end_call(self, span: Span, ctx: CallContext) -> None:
        """Set what the finished call learned, then end the span at the call's end."""
        attrs: dict[str, Any] = {
            "gen_ai.provider.name": provider_name(ctx.provider),
            "genroute.model_group": ctx.model_group or "",
            "genroute.attempts": ctx.attempts,
            "http.response.status_code": ctx.status_code,
        }
        for name, value in (
            ("gen_ai.response.model", ctx.response_model or ctx.provider_model),
            ("genroute.deployment_id", ctx.deployment_id),
            ("genroute.provider_model", ctx.provider_model),
            ("genroute.key_alias", ctx.key_alias),
            ("genroute.team_id", ctx.team_id),
            ("genroute.end_user", ctx.end_user),
            ("genroute.cost_usd", ctx.cost),
        ):
            if value is not None:
                attrs[name] = value
        if ctx.fallbacks:
            attrs["genroute.fallbacks"] = list(ctx.fallbacks)
        if ctx.finish_reason:
            attrs["gen_ai.response.finish_reasons"] = [ctx.finish_reason]
        usage = ctx.usage
        if usage is not None:
            if usage.prompt_token_count is not None:
                attrs["gen_ai.usage.input_tokens"] = usage.prompt_token_count
            if usage.candidates_token_count is not None:
                attrs["gen_ai.usage.output_tokens"] = usage.candidates_token_count + (
                    usage.thoughts_token_count or 0
                )
            if usage.thoughts_token_count:
                attrs["gen_ai.usage.reasoning.output_tokens"] = usage.thoughts_token_count
            if usage.cached_content_token_count:
                attrs["gen_ai.usage.cache_read.input_tokens"] = usage.cached_content_token_count
        ttft = ctx.time_to_first_token
        if ttft is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = ttft
        span.set_attributes(attrs)
        if ctx.error_status is not None:
            span.set_attribute("error.type", ctx.error_status)
            span.set_status(Status(StatusCode.ERROR, ctx.error_message or ctx.error_status))
        end = _epoch_ns(ctx.finished_at) if ctx.finished_at is not None else None
        span.end(end_time=end)

    # -- one span per upstream attempt ------------------------------------------------------

    @contextmanager
    def attempt(self, parent: Span, ctx: CallContext, url: str) -> Iterator[dict[str, str]]:
        """A CLIENT span around one upstream HTTP request; yields headers to add to it."""
        parts = urlsplit(url)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "generate_content",
            "gen_ai.provider.name": provider_name(ctx.provider),
            "gen_ai.request.model": ctx.provider_model or "",
            "genroute.deployment_id": ctx.deployment_id or "",
            "genroute.attempt": ctx.attempts,
            "http.request.method": "POST",
            "server.address": parts.hostname or "",
            "url.full": f"{parts.scheme}://{parts.netloc}{parts.path}",
        }
        if parts.port:
            attributes["server.port"] = parts.port
        span = self.tracer.start_span(
            f"generate_content {ctx.provider_model}",
            context=trace.set_span_in_context(parent),
            kind=SpanKind.CLIENT,
            attributes=attributes,
        )
        headers: dict[str, str] = {}
        propagate.inject(headers, context=trace.set_span_in_context(span))
        try:
            yield headers
        except BaseException as exc:
            if isinstance(exc, GenrouteError):
                span.set_attribute("http.response.status_code", exc.code)
                span.set_attribute("error.type", exc.status)
                span.set_status(Status(StatusCode.ERROR, exc.message))
            elif isinstance(exc, GeneratorExit | Exception):
                span.set_attribute("error.type", type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            else:
                span.set_attribute("error.type", "cancelled")
            raise
        else:
            span.set_attribute("http.response.status_code", 200)
        finally:
            span.end()

    def shutdown(self) -> None:
        """Export what is buffered and stop."""
        self.provider.shutdown()
