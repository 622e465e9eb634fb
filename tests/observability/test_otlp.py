"""The OTLP encoder against the SDK's: the same ExportTraceServiceRequest, field for field."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from genroute.observability.otlp import encode

RESOURCE = Resource.create({"service.name": "genroute", "service.version": "0.1.0"})
SCOPE = InstrumentationScope("genroute", "0.1.0")
TRACE = 0x0AF7651916CD43DD8448EB211C80319C


def span(
    span_id: int,
    *,
    parent: SpanContext | None = None,
    kind: SpanKind = SpanKind.SERVER,
    status: Status | None = None,
    attributes: dict[str, object] | None = None,
    state: TraceState | None = None,
    resource: Resource = RESOURCE,
    scope: InstrumentationScope | None = SCOPE,
) -> ReadableSpan:
    context = SpanContext(TRACE, span_id, False, TraceFlags(1), state)
    return ReadableSpan(
        "generate_content gemini-2.5-flash",
        context=context,
        parent=parent,
        resource=resource,
        attributes=attributes or {},
        kind=kind,
        status=status or Status(StatusCode.UNSET),
        start_time=1_764_000_000_123_456_789,
        end_time=1_764_000_000_223_456_789,
        instrumentation_scope=scope,
    )


def both(spans: list[ReadableSpan]) -> tuple[ExportTraceServiceRequest, ExportTraceServiceRequest]:
    ours = ExportTraceServiceRequest.FromString(encode(spans))
    return ours, encode_spans(spans)


def test_spans_encode_as_the_sdk_encodes_them() -> None:
    remote = SpanContext(TRACE, 0xB7AD6B7169203331, True, TraceFlags(1))
    request = span(
        0x1111,
        parent=remote,
        attributes={
            "gen_ai.operation.name": "generate_content",
            "gen_ai.request.stream": False,
            "gen_ai.request.max_tokens": 64,
            "gen_ai.request.temperature": 0.5,
            "genroute.cost_usd": 0.0,
            "gen_ai.usage.input_tokens": 0,
            "genroute.big": 2**40,
            "genroute.negative": -3,
            "gen_ai.response.finish_reasons": ("STOP",),
            "genroute.fallbacks": ("a", "b"),
            "genroute.unicode": "modèle ✓",
            "genroute.empty": "",
        },
        state=TraceState([("vendor", "value"), ("other", "x")]),
    )
    attempt = span(
        0x2222,
        parent=request.get_span_context(),
        kind=SpanKind.CLIENT,
        status=Status(StatusCode.ERROR, "503 UNAVAILABLE"),
        attributes={"http.response.status_code": 503, "error.type": "UNAVAILABLE"},
    )
    ok = span(0x3333, status=Status(StatusCode.OK), kind=SpanKind.INTERNAL)
    ours, sdk = both([request, attempt, ok])
    assert ours == sdk
    assert len(ours.resource_spans) == 1 and len(ours.resource_spans[0].scope_spans[0].spans) == 3


def test_several_resources_and_scopes_are_grouped_as_the_sdk_groups_them() -> None:
    other = Resource.create({"service.name": "other"}, schema_url="https://example.com/s")
    spans = [
        span(1),
        span(2, resource=other),
        span(3, scope=InstrumentationScope("x", None, "https://example.com/scope")),
        span(4, scope=None),
        span(5),
    ]
    ours, sdk = both(spans)
    assert ours == sdk


def test_repeated_values_are_encoded_by_type_whatever_was_encoded_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from genroute.observability import otlp

    # equal as dict keys (True == 1 == 1.0, 0.0 == -0.0), different on the wire
    values: list[object] = [True, 1, 1.0, "1", False, 0, 0.0, -0.0, (1,), ("1",), 2**63 - 1, -1]
    spans = [span(n + 1, attributes={"v": value, "w": "same"}) for n, value in enumerate(values)]
    ours, sdk = both(spans + spans)  # the second half from the cache
    assert ours == sdk
    monkeypatch.setattr(otlp, "_SPAN_ATTRIBUTES_MAX", 3)  # emptied when full, still right
    unique = [span(100 + n, attributes={"genroute.request_id": f"r{n}"}) for n in range(10)]
    ours, sdk = both(unique + spans)
    assert ours == sdk
    assert len(otlp._SPAN_ATTRIBUTES) <= 3


def test_the_exporter_posts_the_encoded_request() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from genroute.observability.otlp import FastOTLPSpanExporter

    bodies: list[bytes] = []

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["content-length"])))
            assert self.headers["content-type"] == "application/x-protobuf"
            assert self.headers["x-tenant"] == "t1"
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        exporter = FastOTLPSpanExporter(
            endpoint=f"http://127.0.0.1:{server.server_address[1]}/v1/traces",
            headers={"x-tenant": "t1"},
            timeout=5,
        )
        spans = [span(1, attributes={"a": 1}), span(2, kind=SpanKind.CLIENT)]
        assert exporter.export(spans).name == "SUCCESS"
        exporter.shutdown()
        assert exporter.export(spans).name == "FAILURE"  # shut down: nothing sent
    finally:
        server.shutdown()
        server.server_close()
    (body,) = bodies
    assert ExportTraceServiceRequest.FromString(body) == encode_spans(spans)
