"""SpanFactory's short cuts against the OpenTelemetry SDK: a root span, a child of a sampled
span and the upstream trace headers come out as the SDK's sampler and propagator make
them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.propagators.textmap import CarrierT, Getter, Setter, TextMapPropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    ParentBasedTraceIdRatio,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState

from genroute.observability.spans import LeanSpan, SpanFactory

REMOTE = SpanContext(
    0x0AF7651916CD43DD8448EB211C80319C,
    0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(0x03),  # sampled, random trace id
    trace_state=TraceState([("vendor", "v1")]),
)


def factory(
    sampler: Sampler, ids: IdGenerator | None = None
) -> tuple[SpanFactory, InMemorySpanExporter]:
    provider = TracerProvider(sampler=sampler, id_generator=ids)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    return SpanFactory(provider, processor, "genroute", "test"), exporter


def sdk_child_decision(sampler: Sampler, parent: SpanContext) -> tuple[bool, TraceState | None]:
    """What the SDK's sampler decides for a child of a local span with `parent`'s context."""
    local = SpanContext(
        parent.trace_id, parent.span_id, False, parent.trace_flags, parent.trace_state
    )
    ctx = trace.set_span_in_context(NonRecordingSpan(local), context.Context())
    result = sampler.should_sample(ctx, parent.trace_id, "child", SpanKind.CLIENT, {})
    return result.decision.is_sampled(), result.trace_state


SAMPLERS = [
    ParentBased(ALWAYS_ON),
    ParentBasedTraceIdRatio(1.0),
    ParentBased(ALWAYS_ON, local_parent_sampled=ALWAYS_OFF),  # asks the sampler
    ParentBased(TraceIdRatioBased(1.0)),
]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: s.get_description()[:60])
def test_a_child_of_a_sampled_span_is_sampled_as_the_sdk_samples_it(sampler: Sampler) -> None:
    spans, exporter = factory(sampler)
    parent_ctx = trace.set_span_in_context(NonRecordingSpan(REMOTE), context.Context())
    root = spans.start("request", kind=SpanKind.SERVER, attributes={}, context=parent_ctx)
    assert isinstance(root, LeanSpan)
    child = spans.start(
        "attempt", parent=root, kind=SpanKind.CLIENT, attributes={"stops": ["a", "b"], "n": 1}
    )
    sampled, state = sdk_child_decision(sampler, root.get_span_context())
    got = child.get_span_context()
    assert isinstance(child, LeanSpan) is sampled
    assert got.trace_flags.sampled is sampled
    assert got.trace_id == REMOTE.trace_id and got.span_id != root.get_span_context().span_id
    assert got.trace_flags & 0x02  # the random-trace-id flag carries over from the parent
    assert (got.trace_state or TraceState()) == (state or TraceState())
    if sampled:
        child.end()
        root.end()
        exported = {s.name: s for s in exporter.get_finished_spans()}
        assert exported["attempt"].parent == root.get_span_context()
        assert dict(exported["attempt"].attributes or {}) == {"stops": ("a", "b"), "n": 1}


class TraceIds(IdGenerator):
    """Trace ids from a list (span ids counted up); random trace ids, as the SDK's are."""

    def __init__(self, trace_ids: list[int]) -> None:
        self.trace_ids = iter(trace_ids)
        self.span_id = 0

    def generate_trace_id(self) -> int:
        return next(self.trace_ids)

    def generate_span_id(self) -> int:
        self.span_id += 1
        return self.span_id

    def is_trace_id_random(self) -> bool:
        return True


ROOT_SAMPLERS = [
    ALWAYS_ON,
    ALWAYS_OFF,
    TraceIdRatioBased(0.25),
    ParentBased(ALWAYS_ON),
    ParentBased(ALWAYS_OFF),
    ParentBasedTraceIdRatio(0.1),
    ParentBasedTraceIdRatio(0.0),
    ParentBasedTraceIdRatio(1.0),
]
# low 64 bits at the edges of the ratio samplers' bounds, and high bits that must not count
EDGE_IDS = [
    1,
    (1 << 64) - 1,
    1 << 64,
    (1 << 128) - 1,
    TraceIdRatioBased.get_bound_for_rate(0.25) - 1,
    TraceIdRatioBased.get_bound_for_rate(0.25),
    (7 << 64) | (TraceIdRatioBased.get_bound_for_rate(0.1) - 1),
    (7 << 64) | TraceIdRatioBased.get_bound_for_rate(0.1),
]


@pytest.mark.parametrize("sampler", ROOT_SAMPLERS, ids=lambda s: s.get_description()[:60])
def test_a_root_span_is_sampled_as_the_sdk_samples_it(sampler: Sampler) -> None:

    rng = random.Random(12)
    trace_ids = EDGE_IDS + [rng.getrandbits(128) | 1 for _ in range(400)]
    spans, exporter = factory(sampler, TraceIds(trace_ids))
    assert spans._root_bound is not None  # the short cut is taken for each of these
    made = 0

    def attributes() -> dict[str, object]:
        nonlocal made
        made += 1
        return {"stops": ["a"], "n": 1}

    sampled = 0
    for trace_id in trace_ids:
        span = spans.start("request", kind=SpanKind.SERVER, attributes=attributes)
        sdk = sampler.should_sample(None, trace_id, "request", SpanKind.SERVER, {})
        got = span.get_span_context()
        assert got.trace_id == trace_id
        assert got.trace_flags.sampled is sdk.decision.is_sampled()
        assert got.trace_flags & 0x02  # a random trace id says so
        assert (got.trace_state or TraceState()) == (sdk.trace_state or TraceState())
        assert isinstance(span, LeanSpan) is sdk.decision.is_recording()
        if isinstance(span, LeanSpan):
            sampled += 1
            span.end()
    assert made == sampled  # the attributes are made for a sampled span only
    finished = exporter.get_finished_spans()
    assert len(finished) == sampled
    assert all(
        s.parent is None and dict(s.attributes or {}) == {"stops": ("a",), "n": 1} for s in finished
    )


def test_other_samplers_are_asked_with_the_attributes() -> None:
    class Custom(TraceIdRatioBased):
        seen: list[dict[str, object]] = []

        def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
            # the parent-based sampler passes its root sampler every argument by name
            self.seen.append(dict(kwargs["attributes"] or {}))
            return super().should_sample(*args, **kwargs)

    sampler = Custom(0.0)
    spans, _ = factory(ParentBased(sampler))
    assert spans._root_bound is None
    span = spans.start("request", kind=SpanKind.SERVER, attributes=lambda: {"n": 1})
    assert not span.get_span_context().trace_flags.sampled
    assert Custom.seen == [{"n": 1}]
    assert factory(ParentBased(ALWAYS_ON, local_parent_sampled=ALWAYS_OFF))[0]._root_bound


def test_the_current_span_is_the_parent_of_a_span_started_without_one() -> None:
    """genroute.Client inside an application's own span joins that span's trace."""
    spans, _ = factory(ParentBasedTraceIdRatio(0.0))
    token = context.attach(trace.set_span_in_context(NonRecordingSpan(REMOTE)))
    try:
        span = spans.start("request", kind=SpanKind.INTERNAL, attributes=lambda: {})
    finally:
        context.detach(token)
    got = span.get_span_context()
    assert isinstance(span, LeanSpan) and span._parent == REMOTE
    assert got.trace_id == REMOTE.trace_id and got.trace_flags.sampled
    assert got.trace_state == REMOTE.trace_state


class RecordOnly(Sampler):
    """A root sampler that records without sampling (none of the SDK's do)."""

    def should_sample(
        self,
        parent_context,
        trace_id,
        name,
        kind=None,
        attributes=None,
        links=None,
        trace_state=None,
    ):  # type: ignore[no-untyped-def]
        return SamplingResult(Decision.RECORD_ONLY, attributes)

    def get_description(self) -> str:
        return "RecordOnly"


def test_a_child_of_a_recorded_but_unsampled_span_is_dropped_as_the_sdk_drops_it() -> None:
    spans, _ = factory(ParentBased(RecordOnly()))
    root = spans.start("request", kind=SpanKind.SERVER, attributes={})
    assert isinstance(root, LeanSpan) and not root.get_span_context().trace_flags.sampled
    child = spans.start("attempt", parent=root, kind=SpanKind.CLIENT, attributes={})
    assert not isinstance(child, LeanSpan) and not child.get_span_context().trace_flags.sampled
    assert sdk_child_decision(ParentBased(RecordOnly()), root.get_span_context())[0] is False


def test_the_short_cut_is_taken_only_for_the_sdks_parent_based_samplers() -> None:
    class Custom(ParentBased):
        pass

    assert factory(ParentBased(ALWAYS_ON))[0]._children_sampled
    assert factory(ParentBasedTraceIdRatio(0.1))[0]._children_sampled
    assert not factory(ParentBased(ALWAYS_ON, local_parent_sampled=ALWAYS_OFF))[0]._children_sampled
    assert not factory(Custom(ALWAYS_ON))[0]._children_sampled
    assert not factory(ALWAYS_ON)[0]._children_sampled


def sdk_headers(span: trace.Span) -> dict[str, str]:
    headers: dict[str, str] = {}
    propagate.inject(headers, context=trace.set_span_in_context(span))
    return headers


def test_trace_headers_are_the_default_propagators() -> None:
    spans, _ = factory(ParentBased(ALWAYS_ON))
    for parent in (None, REMOTE):
        ctx = (
            trace.set_span_in_context(NonRecordingSpan(parent), context.Context())
            if parent
            else None
        )
        span = spans.start("request", kind=SpanKind.SERVER, attributes={}, context=ctx)
        assert spans.context_headers(span) == sdk_headers(span)
        assert spans.context_headers(span)["traceparent"].startswith("00-")
    unsampled = NonRecordingSpan(
        SpanContext(REMOTE.trace_id, 0x1234, is_remote=False, trace_flags=TraceFlags(0))
    )
    assert spans.context_headers(unsampled) == sdk_headers(unsampled)
    invalid = NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
    assert spans.context_headers(invalid) == sdk_headers(invalid) == {}


def test_baggage_in_the_current_context_goes_upstream_too() -> None:
    spans, _ = factory(ParentBased(ALWAYS_ON))
    span = spans.start("request", kind=SpanKind.SERVER, attributes={})
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        headers = spans.context_headers(span)
    finally:
        context.detach(token)
    assert headers == {**sdk_headers(span), "baggage": "tenant=acme"}


class HeaderPerSpan(TextMapPropagator):
    """A propagator of another format (as B3 would be)."""

    def extract(
        self,
        carrier: CarrierT,
        context: context.Context | None = None,
        getter: Getter = None,  # type: ignore[assignment]
    ) -> context.Context:
        return context or trace.set_span_in_context(NonRecordingSpan(trace.INVALID_SPAN_CONTEXT))

    def inject(
        self,
        carrier: CarrierT,
        context: context.Context | None = None,
        setter: Setter = None,  # type: ignore[assignment]
    ) -> None:
        span_context = trace.get_current_span(context).get_span_context()
        carrier["x-span"] = f"{span_context.span_id:016x}"  # type: ignore[index]

    @property
    def fields(self) -> set[str]:
        return {"x-span"}


@pytest.fixture
def other_propagator() -> Iterator[None]:
    before = propagate.get_global_textmap()
    propagate.set_global_textmap(HeaderPerSpan())
    yield
    propagate.set_global_textmap(before)


def test_another_global_propagator_is_used_as_it_is(other_propagator: None) -> None:
    spans, _ = factory(ParentBased(ALWAYS_ON))
    span = spans.start("request", kind=SpanKind.SERVER, attributes={})
    assert spans.context_headers(span) == {"x-span": f"{span.get_span_context().span_id:016x}"}
    # a factory made while it is installed does not take the short cut at all
    assert factory(ParentBased(ALWAYS_ON))[0]._plain_textmap is None
