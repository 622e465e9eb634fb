"""genroute's spans, recorded without the OpenTelemetry SDK's per-span machinery.

The SDK's `Span` takes a lock and validates every attribute each time one is set, makes
several objects per span and reports itself to the SDK's own metrics: about 100 µs of the
event loop's time per span here, for attributes genroute builds itself from values of known
types. `SpanFactory.start` decides as the SDK's `Tracer.start_span` does (the provider's
sampler and id generator; the parent's trace id, or a new one; the same trace flags and
trace state) and returns a `NonRecordingSpan` for a call that is not sampled, else a
`LeanSpan`: its attributes go in a plain dict, and when it ends it hands one `ReadableSpan`
to the span processor, which batches and exports it as before (OTLP, or a test's in-memory
exporter). Span processors are told of a span when it ends, not when it starts
(`on_start` is not called; the batch and simple processors do nothing there).

Most of a call's spans are decided without asking the sampler: a child of a sampled span of
ours, and a root span (no incoming or current trace) when the sampler is one of the SDK's
whose decision for a root depends on the trace id alone (always on, always off, a trace-id
ratio, or one of those as a parent-based sampler's root). A span's attributes may be given
as a function, called only when the sampler needs them or the span is sampled: a call
that is not sampled then costs an id and a flag, not a dict of attributes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    StaticSampler,
    TraceIdRatioBased,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

__all__ = ["LeanSpan", "SpanFactory"]

_SAMPLED = trace.TraceFlags.SAMPLED
_RANDOM = getattr(trace.TraceFlags, "RANDOM_TRACE_ID", 0)  # W3C trace context level 2
_LOW_64 = TraceIdRatioBased.TRACE_ID_LIMIT  # the bits of a trace id the ratio sampler reads

#: A span's attributes, or a function that makes them (called only when needed).
Attributes = dict[str, Any] | Callable[[], dict[str, Any]]
#: A span's start in nanoseconds since the epoch, or a function that reads it (called only
#: for a span that is sampled), or None for now.
StartTime = int | Callable[[], int] | None


def _root_bound(sampler: Sampler) -> int | None:
    """For a sampler of the SDK's whose decision for a root span reads only the trace id:
    the bound below which a trace id's low 64 bits are sampled (0: never; 2**64: always),
    the decision being sampled or dropped with no trace state. None for any other sampler
    (a subclass, a custom one, a record-only decision), which is asked each time."""
    root: Any = sampler
    if type(root) in (ParentBased, ParentBasedTraceIdRatio):
        root = getattr(root, "_root", None)
    if type(root) is TraceIdRatioBased:
        return root.bound
    if type(root) is StaticSampler:
        decision = getattr(root, "_decision", None)
        if decision is Decision.RECORD_AND_SAMPLE:
            return _LOW_64 + 1
        if decision is Decision.DROP:
            return 0
    return None


def _made(attributes: Attributes) -> dict[str, Any]:
    return attributes() if callable(attributes) else attributes


def _kept(attributes: dict[str, Any]) -> dict[str, Any]:
    """`attributes` as the SDK keeps them (a list made a tuple), changed in place."""
    for key, value in attributes.items():
        if isinstance(value, list):
            attributes[key] = tuple(value)
    return attributes


def _when(start_time: StartTime) -> int:
    if start_time is None:
        return time.time_ns()
    return start_time() if callable(start_time) else start_time


def _traceparent(context: SpanContext) -> dict[str, str]:
    """The W3C trace context headers of `context`, as TraceContextTextMapPropagator
    writes them."""
    headers = {
        "traceparent": "00-%032x-%016x-%02x"  # noqa: UP031 (a third faster than an f-string)
        % (context.trace_id, context.span_id, context.trace_flags)
    }
    if context.trace_state:
        headers["tracestate"] = context.trace_state.to_header()
    return headers


def _writes_trace_context_only(textmap: TextMapPropagator) -> bool:
    """Whether `textmap` (the default, W3C trace context and baggage) writes what
    `_traceparent` writes for a span in a context without baggage: checked once, by
    injecting a known context."""
    if textmap.fields != {"traceparent", "tracestate", "baggage"}:
        return False
    probe = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=trace.TraceFlags(_SAMPLED),
        trace_state=trace.TraceState([("probe", "1")]),
    )
    headers: dict[str, str] = {}
    textmap.inject(headers, context=trace.set_span_in_context(NonRecordingSpan(probe), Context()))
    return headers == _traceparent(probe)


class LeanSpan(NonRecordingSpan):
    """A sampled span: attributes in a dict, exported as one ReadableSpan when it ends."""

    def __init__(
        self,
        factory: SpanFactory,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        start_time: int,
    ) -> None:
        super().__init__(context)
        self._factory = factory
        self._name = name
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._start_time = start_time
        self._status = Status(StatusCode.UNSET)
        self._ended = False

    def is_recording(self) -> bool:
        return not self._ended

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        if not self._ended:
            self._attributes[key] = tuple(value) if isinstance(value, list) else value

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        if not self._ended:
            kept = self._attributes
            for key, value in attributes.items():
                kept[key] = tuple(value) if isinstance(value, list) else value

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._ended:
            return
        self._status = status if isinstance(status, Status) else Status(status, description)

    def update_name(self, name: str) -> None:
        self._name = name

    def end(self, end_time: int | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        factory = self._factory
        factory.processor.on_end(
            ReadableSpan(
                self._name,
                context=self.get_span_context(),
                parent=self._parent,
                resource=factory.resource,
                attributes=self._attributes,
                kind=self._kind,
                status=self._status,
                start_time=self._start_time,
                end_time=end_time if end_time is not None else time.time_ns(),
                instrumentation_scope=factory.scope,
            )
        )


class SpanFactory:
    """Starts spans for a provider's sampler, id generator and resource, ended into
    `processor`."""

    def __init__(
        self, provider: TracerProvider, processor: SpanProcessor, scope: str, version: str
    ) -> None:
        self.processor = processor
        self.resource = provider.resource
        self.sampler = provider.sampler
        self.ids = provider.id_generator
        self.scope = InstrumentationScope(scope, version)
        self._random_ids = bool(getattr(self.ids, "is_trace_id_random", lambda: False)())
        # The SDK's parent-based samplers keep a sampled local parent's children unless
        # configured otherwise: a child of a LeanSpan is then sampled without asking.
        sampler = self.sampler
        self._children_sampled = type(sampler) in (ParentBased, ParentBasedTraceIdRatio) and (
            "localParentSampled:AlwaysOnSampler," in sampler.get_description()
        )
        textmap = propagate.get_global_textmap()
        self._plain_textmap = textmap if _writes_trace_context_only(textmap) else None
        self._root_bound = _root_bound(sampler)

    def context_headers(self, span: Span) -> dict[str, str]:
        """The headers that carry `span`'s context upstream (`traceparent`, ...), as the
        global propagator writes them (formatted here when it is the default one and the
        current context holds no baggage)."""
        context = span.get_span_context()
        if (
            self._plain_textmap is not None
            and propagate.get_global_textmap() is self._plain_textmap
            and not baggage.get_all()
        ):
            return _traceparent(context) if context.is_valid else {}
        headers: dict[str, str] = {}
        propagate.inject(headers, context=trace.set_span_in_context(span))
        return headers

    def start(
        self,
        name: str,
        *,
        kind: SpanKind,
        attributes: Attributes,
        context: Context | None = None,
        parent: Span | None = None,
        start_time: StartTime = None,
    ) -> Span:
        """A span: its parent is `parent`, else the span in `context` (an incoming trace),
        else the current span, else none; sampled (a LeanSpan) or not (a NonRecordingSpan),
        as the sampler says. `attributes` and `start_time` may be functions, called only
        when the sampler needs the attributes or the span is sampled."""
        if (
            self._children_sampled
            and type(parent) is LeanSpan
            and parent.get_span_context().trace_flags.sampled  # not a RECORD_ONLY root
        ):
            return self._child(parent, name, kind, _made(attributes), start_time)
        if parent is not None:
            context = trace.set_span_in_context(parent)
        parent_context: SpanContext | None = trace.get_current_span(context).get_span_context()
        if parent_context is None or not parent_context.is_valid:
            parent_context = None
            trace_id = self.ids.generate_trace_id()
            random_id = self._random_ids
            if self._root_bound is not None:
                return self._root(trace_id, random_id, name, kind, attributes, start_time)
        else:
            trace_id = parent_context.trace_id
            random_id = bool(parent_context.trace_flags & _RANDOM)
        made = _made(attributes)
        result = self.sampler.should_sample(context, trace_id, name, kind, made)
        flags = _SAMPLED if result.decision is Decision.RECORD_AND_SAMPLE else 0
        if random_id:
            flags |= _RANDOM
        span_context = SpanContext(
            trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=trace.TraceFlags(flags),
            trace_state=result.trace_state,
        )
        if result.decision is Decision.DROP:
            return NonRecordingSpan(span_context)
        recorded = _kept(dict(result.attributes or {}))
        return LeanSpan(self, name, span_context, parent_context, kind, recorded, _when(start_time))

    def _root(
        self,
        trace_id: int,
        random_id: bool,
        name: str,
        kind: SpanKind,
        attributes: Attributes,
        start_time: StartTime,
    ) -> Span:
        """A root span, decided as the sampler of `_root_bound` decides it: sampled (with
        the attributes as given) when the trace id's low 64 bits are below the bound, else
        dropped; no trace state either way."""
        assert self._root_bound is not None
        sampled = trace_id & _LOW_64 < self._root_bound
        flags = (_SAMPLED if sampled else 0) | (_RANDOM if random_id else 0)
        span_context = SpanContext(
            trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=trace.TraceFlags(flags),
        )
        if not sampled:
            return NonRecordingSpan(span_context)
        recorded = _kept(attributes() if callable(attributes) else dict(attributes))
        return LeanSpan(self, name, span_context, None, kind, recorded, _when(start_time))

    def _child(
        self,
        parent: LeanSpan,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
        start_time: StartTime,
    ) -> LeanSpan:
        """A child of a sampled span of ours, as the parent-based sampler decides it:
        sampled, with the parent's trace state, the attributes as given."""
        parent_context = parent.get_span_context()
        span_context = SpanContext(
            parent_context.trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=trace.TraceFlags(_SAMPLED | (parent_context.trace_flags & _RANDOM)),
            trace_state=parent_context.trace_state,
        )
        return LeanSpan(
            self, name, span_context, parent_context, kind, _kept(attributes), _when(start_time)
        )
