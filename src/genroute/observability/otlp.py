"""OTLP span export with the spans encoded straight to protobuf bytes.

The OTLP exporter builds a protobuf message object per span, per attribute and per value
before serialising them (`encode_spans`): about 100 µs of Python for one call's two spans,
run in the export thread but holding the GIL the event loop needs. `encode` writes the same
`ExportTraceServiceRequest` (opentelemetry-proto's trace.proto and common.proto, field by
field as the SDK's encoder fills them) directly as bytes, with each attribute key, the
resource and the scope encoded once per batch. `FastOTLPSpanExporter` is
the SDK's OTLP/HTTP exporter (the same endpoint, headers, timeout, compression, retries and
environment variables) that sends those bytes; with an exporter version whose HTTP client
it does not know, or spans with events or links (genroute's have none), it exports the
SDK's way.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

__all__ = ["FastOTLPSpanExporter", "encode"]

_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
_FIXED32 = struct.Struct("<I").pack
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200  # SpanFlags in trace.proto


_BYTE = [bytes((n,)) for n in range(128)]


def _varint(n: int) -> bytes:
    if 0 <= n < 0x80:
        return _BYTE[n]
    if n < 0:
        n += 1 << 64  # int64 as protobuf writes it
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (a string, bytes or an embedded message)."""
    size = len(payload)
    return _varint(number << 3 | 2) + (_BYTE[size] if size < 0x80 else _varint(size)) + payload


_KEYS: dict[str, bytes] = {}
# Encoded span attributes (field 9, KeyValue) by (key, type, value) for str, int and bool
# values: a call's spans repeat most of theirs (operation, model, provider, deployment,
# URL, status). Floats are not kept (0.0 and -0.0 are equal keys, encoded differently).
# Emptied when full, so values seen once (request ids) cannot grow it.
_SPAN_ATTRIBUTES: dict[tuple[str, type, Any], bytes] = {}
_SPAN_ATTRIBUTES_MAX = 4096
_CACHED_TYPES = (str, int, bool)


def _any_value(value: Any) -> bytes:
    """An AnyValue (common.proto); a value of an unknown type raises TypeError."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(1, value.encode("utf-8"))
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(7, value)
    if value is None:
        return b""
    if isinstance(value, Sequence):
        return _field(5, b"".join(_field(1, _any_value(v)) for v in value))
    raise TypeError(f"attribute value of type {type(value).__name__}")


def _key_value(number: int, key: str, value: Any) -> bytes:
    """One KeyValue as repeated field `number`."""
    encoded = _KEYS.get(key)
    if encoded is None:
        encoded = _KEYS[key] = _field(1, key.encode("utf-8"))
    return _field(number, encoded + _field(2, _any_value(value)))


def _attributes(number: int, attributes: Any) -> bytes:
    """Repeated KeyValue field `number`."""
    return b"".join(_key_value(number, k, v) for k, v in (attributes or {}).items())


def _span_attributes(attributes: Any) -> bytes:
    """A span's attributes (Span field 9), each looked up in `_SPAN_ATTRIBUTES` first."""
    if not attributes:
        return b""
    cache = _SPAN_ATTRIBUTES
    out = []
    for key, value in attributes.items():
        kind = type(value)
        if kind in _CACHED_TYPES:
            encoded = cache.get((key, kind, value))
            if encoded is None:
                if len(cache) >= _SPAN_ATTRIBUTES_MAX:
                    cache.clear()
                encoded = cache[key, kind, value] = _key_value(9, key, value)
        else:
            encoded = _key_value(9, key, value)
        out.append(encoded)
    return b"".join(out)


def _span(span: ReadableSpan) -> bytes:
    context = span.get_span_context()
    assert context is not None, "an ended span has its context"
    parent = span.parent
    status = span.status
    out = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),
    ]
    if context.trace_state:
        state = ",".join(f"{k}={v}" for k, v in context.trace_state.items())
        out.append(_field(3, state.encode("utf-8")))
    if parent is not None:
        out.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    if span.name:
        out.append(_field(5, span.name.encode("utf-8")))
    out.append(b"\x30" + _varint(span.kind.value + 1))  # proto kinds start at INTERNAL = 1
    if span.start_time:
        out.append(b"\x39" + _FIXED64(span.start_time))
    if span.end_time:
        out.append(b"\x41" + _FIXED64(span.end_time))
    out.append(_span_attributes(span.attributes))
    code = status.status_code.value
    message = (_field(2, status.description.encode("utf-8")) if status.description else b"") + (
        b"\x18" + _varint(code) if code else b""
    )
    out.append(_field(15, message))
    flags = _HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)
    out.append(b"\x85\x01" + _FIXED32(flags))  # field 16, fixed32
    return _field(2, b"".join(out))  # ScopeSpans.spans


def _scope_spans(scope: Any, spans: list[ReadableSpan]) -> bytes:
    """One ScopeSpans: the scope (InstrumentationScope name, version; empty without one),
    the spans, the scope's schema URL."""
    fields = b""
    if scope is not None:
        fields = _field(1, scope.name.encode("utf-8"))
        if scope.version:
            fields += _field(2, scope.version.encode("utf-8"))
    body = _field(1, fields) + b"".join(_span(s) for s in spans)
    if scope is not None and scope.schema_url:
        body += _field(3, scope.schema_url.encode("utf-8"))
    return _field(2, body)


def _resource_spans(resource: Any, scopes: dict[Any, list[ReadableSpan]]) -> bytes:
    """One ResourceSpans: the resource, its ScopeSpans, its schema URL."""
    body = _field(1, _attributes(1, resource.attributes))
    body += b"".join(_scope_spans(scope, spans) for scope, spans in scopes.items())
    if resource.schema_url:
        body += _field(3, resource.schema_url.encode("utf-8"))
    return _field(1, body)


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    """An OTLP `ExportTraceServiceRequest` of `spans`, serialised: grouped by resource,
    then by instrumentation scope, in the order they first appear (as the SDK groups them:
    equal resources and scopes are one group)."""
    by_id: dict[tuple[int, int], list[ReadableSpan]] = {}  # no hashing by value per span
    for span in spans:
        by_id.setdefault((id(span.resource), id(span.instrumentation_scope)), []).append(span)
    resources: dict[Any, dict[Any, list[ReadableSpan]]] = {}
    for members in by_id.values():
        first = members[0]
        scopes = resources.setdefault(first.resource, {})
        scopes.setdefault(first.instrumentation_scope, []).extend(members)
    return b"".join(_resource_spans(r, scopes) for r, scopes in resources.items())


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter, sending spans encoded by `encode`."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        client = getattr(self, "_client", None)
        send = getattr(client, "export", None)
        if (
            getattr(self, "_shutdown", True)
            or send is None
            or any(s.events or s.links for s in spans)
        ):
            return super().export(spans)
        try:
            data = encode(spans)
        except Exception:  # a value of a type this encoder does not know: the SDK's way
            return super().export(spans)
        result = send(data)
        return (
            SpanExportResult.SUCCESS
            if getattr(result, "success", False)
            else SpanExportResult.FAILURE
        )
