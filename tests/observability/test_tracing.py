"""OpenTelemetry spans, checked with the in-memory exporter, through the ASGI app in process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from opentelemetry import propagate
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from genroute.call import Call, Operation
from genroute.config import config_from_data
from genroute.config.observability import tracing_wanted
from genroute.errors import UpstreamUnavailable
from genroute.observability import Observability
from genroute.observability.tracing import Tracing
from genroute.pipeline import build_pipeline
from genroute.server.app import GatewayApp
from tests.fakes.gemini_upstream import FakeGemini
from tests.observability.conftest import asgi_call
from tests.server.conftest import UPSTREAM_KEY

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
BODY = json.dumps(
    {
        "contents": [{"role": "user", "parts": [{"text": "trace me"}]}],
        "generationConfig": {"maxOutputTokens": 64, "temperature": 0.5},
    }
).encode()


class Traced:
    def __init__(self, app: GatewayApp, exporter: InMemorySpanExporter) -> None:
        self.app = app
        self.exporter = exporter

    def spans(self, kind: SpanKind) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.kind == kind]


@pytest.fixture
async def traced(fake: FakeGemini) -> AsyncIterator[Traced]:
    config = config_from_data(
        {
            "model_list": [
                {
                    "model_name": "gemini-2.5-flash",
                    "params": {
                        "model": "gemini/gemini-2.5-flash",
                        "api_key": UPSTREAM_KEY,
                        "api_base": fake.base_url,
                    },
                }
            ],
            "router_settings": {
                "num_retries": 1,
                "retry_backoff_base": 0.01,
                "max_retry_backoff": 0.01,
                "disable_cooldowns": True,
            },
            "observability": {"logs": {"enabled": False}, "metrics": {"enabled": False}},
        }
    )
    exporter = InMemorySpanExporter()
    obs = Observability.from_config(config, environ={})
    assert obs.tracing is None  # no OTEL_* endpoint: off
    obs.tracing = Tracing(processor=SimpleSpanProcessor(exporter))
    pipeline = build_pipeline(config, observability=obs)
    yield Traced(GatewayApp(pipeline, config), exporter)
    await pipeline.aclose()


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_request_span_follows_genai_conventions(traced: Traced, fake: FakeGemini) -> None:
    status, headers, body = await asgi_call(
        traced.app,
        "POST",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        BODY,
        {"traceparent": TRACEPARENT, "x-request-id": "rid-trace-1"},
    )
    assert status == 200, body
    (request,) = traced.spans(SpanKind.SERVER)
    (attempt,) = traced.spans(SpanKind.CLIENT)
    assert request.name == "generate_content gemini-2.5-flash"
    assert f"{request.context.trace_id:032x}" == TRACE_ID
    assert request.parent is not None and f"{request.parent.span_id:016x}" == PARENT_ID
    a = attrs(request)
    usage = json.loads(body)["usageMetadata"]
    assert a["gen_ai.operation.name"] == "generate_content"
    assert a["gen_ai.provider.name"] == "gcp.gemini"
    assert a["gen_ai.request.model"] == "gemini-2.5-flash"
    assert a["gen_ai.response.model"] == json.loads(body)["modelVersion"]
    assert a["gen_ai.request.max_tokens"] == 64 and a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.usage.input_tokens"] == usage["promptTokenCount"]
    assert a["gen_ai.usage.output_tokens"] == usage["candidatesTokenCount"] + usage.get(
        "thoughtsTokenCount", 0
    )
    assert a["gen_ai.response.finish_reasons"] == ("STOP",)
    assert a["genroute.request_id"] == "rid-trace-1" == headers["x-request-id"]
    assert a["http.response.status_code"] == 200 and a["genroute.attempts"] == 1
    assert request.status.status_code != StatusCode.ERROR
    # The attempt is a CLIENT child, and its context went upstream as `traceparent`.
    assert attempt.parent is not None and attempt.parent.span_id == request.context.span_id
    assert attrs(attempt)["gen_ai.request.model"] == "gemini-2.5-flash"
    assert attrs(attempt)["server.address"] == "127.0.0.1"
    sent = fake.last_request.headers["traceparent"]
    assert sent == f"00-{TRACE_ID}-{attempt.context.span_id:016x}-01"
    # The span starts when the request arrived and ends when it finished.
    assert request.start_time is not None and attempt.start_time is not None
    assert request.end_time is not None and attempt.end_time is not None
    assert request.start_time <= attempt.start_time <= attempt.end_time <= request.end_time


async def test_an_unsampled_call_records_nothing_and_propagates(
    traced: Traced, fake: FakeGemini
) -> None:
    # The client's trace is not sampled (flags 00): parent-based sampling records no span,
    # and the upstream still gets the trace, unsampled, on every attempt.
    fake.script("error", code=503)
    status, headers, body = await asgi_call(
        traced.app,
        "POST",
        "/v1beta/models/gemini-2.5-flash:generateContent",
        BODY,
        {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00", "x-request-id": "rid-unsampled"},
    )
    assert status == 200, body
    assert traced.exporter.get_finished_spans() == ()
    assert headers["x-genroute-attempts"] == "2"
    sent = [r.headers["traceparent"] for r in fake.requests]
    assert len(sent) == 2
    for traceparent in sent:
        version, trace_id, _, flags = traceparent.split("-")
        assert (version, trace_id, flags) == ("00", TRACE_ID, "00")


async def test_each_attempt_is_a_child_span(traced: Traced, fake: FakeGemini) -> None:
    fake.script("error", code=503)
    status, _, _ = await asgi_call(
        traced.app, "POST", "/v1beta/models/gemini-2.5-flash:generateContent", BODY
    )
    assert status == 200
    (request,) = traced.spans(SpanKind.SERVER)
    attempts = sorted(traced.spans(SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    assert len(attempts) == 2
    assert all(s.parent and s.parent.span_id == request.context.span_id for s in attempts)
    assert attempts[0].status.status_code == StatusCode.ERROR
    assert attrs(attempts[0])["http.response.status_code"] == 503
    assert attrs(attempts[0])["error.type"] == "UNAVAILABLE"
    assert attrs(attempts[1])["http.response.status_code"] == 200
    assert attrs(request)["genroute.attempts"] == 2
    sent = [r.headers["traceparent"][:-3] for r in fake.requests]  # without the flags
    assert sent == [f"00-{s.context.trace_id:032x}-{s.context.span_id:016x}" for s in attempts]


async def test_failed_and_streamed_calls(traced: Traced, fake: FakeGemini) -> None:
    fake.script("error", code=400, status="INVALID_ARGUMENT", message="bad thing")
    status, _, _ = await asgi_call(
        traced.app, "POST", "/v1beta/models/gemini-2.5-flash:generateContent", BODY
    )
    assert status == 400
    (failed,) = traced.spans(SpanKind.SERVER)
    assert failed.status.status_code == StatusCode.ERROR
    assert attrs(failed)["error.type"] == "INVALID_ARGUMENT"
    assert attrs(failed)["http.response.status_code"] == 400
    assert f"{failed.context.trace_id:032x}" != TRACE_ID  # no traceparent: a new trace
    traced.exporter.clear()
    status, _, body = await asgi_call(
        traced.app,
        "POST",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        BODY,
        query=b"alt=sse",
    )
    assert status == 200 and body.count(b"data: ") >= 2
    (stream,) = traced.spans(SpanKind.SERVER)
    assert attrs(stream)["gen_ai.request.stream"] is True
    assert attrs(stream)["gen_ai.response.time_to_first_chunk"] > 0
    assert attrs(stream)["gen_ai.response.finish_reasons"] == ("STOP",)
    assert len(traced.spans(SpanKind.CLIENT)) == 1


async def test_unknown_model_gets_a_span_at_the_edge(traced: Traced) -> None:
    status, _, _ = await asgi_call(
        traced.app,
        "POST",
        "/v1beta/models/nope:generateContent",
        BODY,
        {"traceparent": TRACEPARENT},
    )
    assert status == 404
    (span,) = traced.spans(SpanKind.SERVER)
    assert attrs(span)["error.type"] == "NOT_FOUND"
    assert f"{span.context.trace_id:032x}" == TRACE_ID


def test_tracing_switch() -> None:
    assert not tracing_wanted("auto", {})
    assert tracing_wanted("auto", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_wanted("auto", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert not tracing_wanted(
        "auto", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}
    )
    assert not tracing_wanted(
        "auto", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}
    )
    assert tracing_wanted(True, {}) and not tracing_wanted(
        False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "x"}
    )


@pytest.mark.parametrize(
    ("make", "error_type", "status_code"),
    [
        (None, None, 200),
        (lambda: UpstreamUnavailable("down", code=503), "UNAVAILABLE", 503),
        (lambda: ValueError("broken"), "ValueError", None),
        (GeneratorExit, "GeneratorExit", None),
        (asyncio.CancelledError, "cancelled", None),
    ],
)
def test_an_attempt_span_ends_with_how_its_request_ended(
    make: Callable[[], BaseException] | None, error_type: str | None, status_code: int | None
) -> None:
    raised = make() if make is not None else None
    exporter = InMemorySpanExporter()
    tracing = Tracing(processor=SimpleSpanProcessor(exporter))
    call = Call(Operation.GENERATE, "group")
    call.route.provider, call.route.provider_model = "gemini", "gemini-2.5-flash"
    call.route.deployment_id = "d1"
    parent = tracing.start_call(call, None)
    url = "http://127.0.0.1:8123/v1beta/models/gemini-2.5-flash:generateContent?alt=sse"
    try:
        with tracing.attempt(parent, call, url) as headers:
            assert headers["traceparent"].startswith(
                f"00-{parent.get_span_context().trace_id:032x}-"
            )
            if raised is not None:
                raise raised
    except BaseException as exc:
        assert exc is raised
    else:
        assert raised is None, "the attempt's span swallowed the request's error"
    (span,) = exporter.get_finished_spans()
    assert span.kind == SpanKind.CLIENT and span.name == "generate_content gemini-2.5-flash"
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert headers["traceparent"] == (
        f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}"
        f"-{span.context.trace_flags:02x}"
    )
    got = attrs(span)
    assert got["url.full"] == url.split("?")[0] and got["server.port"] == 8123
    assert got["genroute.deployment_id"] == "d1" and got["gen_ai.provider.name"] == "gcp.gemini"
    assert got.get("error.type") == error_type
    assert got.get("http.response.status_code") == status_code
    failed = error_type is not None and error_type != "cancelled"
    assert (span.status.status_code == StatusCode.ERROR) == failed


class _FailingPropagator(TraceContextTextMapPropagator):
    def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
        raise RuntimeError("propagator broke")


def test_an_attempt_span_ends_when_its_headers_cannot_be_made() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(processor=SimpleSpanProcessor(exporter))
    call = Call(Operation.GENERATE, "group")
    parent = tracing.start_call(call, None)
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(_FailingPropagator())
    try:
        with (
            pytest.raises(RuntimeError, match="propagator broke"),
            tracing.attempt(parent, call, "http://127.0.0.1:8123/v1beta/models/m"),
        ):
            pytest.fail("the attempt went on without its headers")
    finally:
        propagate.set_global_textmap(before)
    (span,) = exporter.get_finished_spans()
    assert attrs(span)["error.type"] == "RuntimeError"
    assert span.status.status_code == StatusCode.ERROR
