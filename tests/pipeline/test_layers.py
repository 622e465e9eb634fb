"""Each pipeline layer on its own and composed: what it records, and what it gives back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from genroute.call import Call, Operation
from genroute.config import ModelInfo, config_from_data
from genroute.cost import Pricer
from genroute.errors import GenrouteError, NotFound, UpstreamError
from genroute.observability import CallRecord, Observability
from genroute.pipeline import Metered, build_pipeline
from genroute.routing import Router
from genroute.routing.groups import WILDCARD_CACHE
from genroute.wire import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    Candidate,
    Content,
    ContentEmbedding,
    GenerateContentRequest,
    GenerateContentResponse,
    Part,
)
from tests.calls import call

REQUEST = GenerateContentRequest.model_validate(
    {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
)
PRICED = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}


class Scripted:
    """An inner layer that answers with chunks it is given, or fails as it is told."""

    def __init__(self, chunks: list[GenerateContentResponse], fail: Exception | None = None):
        self.chunks = chunks
        self.fail = fail

    async def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        call.route.group, call.route.provider, call.route.provider_model = "demo", "demo", "x"
        for chunk in self.chunks:
            yield chunk
        if self.fail is not None:
            raise self.fail

    async def batch_embed(
        self, call: Call, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        call.route.group, call.route.provider, call.route.provider_model = "demo", "demo", "x"
        response = BatchEmbedContentsResponse(embeddings=[ContentEmbedding(values=[1.0])])
        response.set_private("_input_tokens", 7)
        return response


def text_chunk(text: str) -> GenerateContentResponse:
    content = Content(role="model", parts=[Part(text=text)])
    return GenerateContentResponse(candidates=[Candidate(content=content, index=0)])


def pricer() -> Pricer:
    return Pricer({"demo": (config_from_data({"model_list": []}).model_list and None) or _info()})


def _info() -> Any:

    return ModelInfo(**PRICED)


async def test_a_stream_without_usage_is_priced_from_an_estimate() -> None:
    layer = Metered(Scripted([text_chunk("x" * 20), text_chunk("x" * 20)]), pricer())  # type: ignore[arg-type]
    c = call("demo", stream=True)
    assert len([chunk async for chunk in layer.stream(c, REQUEST)]) == 2
    # "hello there" is 3 tokens at 4 characters a token; 40 characters of answer are 10.
    assert c.meter.cost_estimated and c.meter.output_chars == 40
    assert c.meter.cost == pytest.approx(3 * 0.001 + 10 * 0.002)
    assert c.meter.first_chunk_at is not None and c.meter.first_chunk_at >= c.started


async def test_a_stream_that_fails_before_its_first_chunk_costs_nothing() -> None:
    layer = Metered(Scripted([], fail=UpstreamError("down", code=503)), pricer())  # type: ignore[arg-type]
    c = call("demo", stream=True)
    with pytest.raises(UpstreamError):
        async for _ in layer.stream(c, REQUEST):
            pass
    assert c.meter.cost == 0.0 and not c.meter.cost_estimated


async def test_embedding_tokens_reported_upstream_are_used() -> None:
    layer = Metered(Scripted([]), pricer())  # type: ignore[arg-type]
    c = call("demo", operation=Operation.BATCH_EMBED)
    request = BatchEmbedContentsRequest.model_validate(
        {"requests": [{"content": {"parts": [{"text": "a" * 400}]}}]}
    )
    await layer.batch_embed(c, request)
    assert c.meter.input_tokens == 7 and not c.meter.cost_estimated
    assert c.meter.cost == pytest.approx(7 * 0.001)


class Recorder:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def __call__(self, record: CallRecord) -> None:
        self.records.append(record)


DEMO = [{"model_name": "demo", "params": {"model": "demo/echo"}, "model_info": PRICED}]


async def test_observed_records_every_ending_once() -> None:
    recorder = Recorder()
    config = config_from_data({"model_list": DEMO})
    pipeline = build_pipeline(config, server=False, callbacks=[recorder])
    await pipeline.generate(call("demo"), REQUEST)
    with pytest.raises(NotFound):
        await pipeline.generate(call("nope"), REQUEST)
    stream = pipeline.stream(call("demo", stream=True), REQUEST)
    await anext(stream)  # type: ignore[arg-type]
    await stream.aclose()  # type: ignore[attr-defined]
    for deployment in pipeline.router.group("demo"):

        async def hang(c: Call, request: GenerateContentRequest) -> Any:
            await asyncio.Event().wait()

        deployment.provider.generate = hang  # type: ignore[method-assign]
    task = asyncio.ensure_future(pipeline.generate(call("demo"), REQUEST))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await pipeline.aclose()  # drains the callback queue
    outcomes = [(r.model_group, r.status_code, r.stream) for r in recorder.records]
    assert outcomes == [
        ("demo", 200, False),
        ("nope", 404, False),
        ("demo", 499, True),
        ("demo", 499, False),
    ]
    first = recorder.records[0]
    assert first.cost == pytest.approx(2 * 0.001 + 10 * 0.002) and first.attempts == 1


async def test_layers_see_the_call_the_edge_built() -> None:
    config = config_from_data({"model_list": DEMO})
    pipeline = build_pipeline(config, server=False, observability=Observability())
    assert isinstance(pipeline.api, Metered)  # nothing observes: the layer is left out
    c = call("demo")
    response = await pipeline.generate(c, REQUEST)
    assert response.text.endswith("You said: hello there")
    assert c.route.group == "demo" and c.route.deployment_id and c.meter.cost
    await pipeline.aclose()


def test_wildcard_deployments_are_bounded() -> None:
    router = Router([{"model_name": "demo-*", "params": {"model": "demo/*"}}])
    first = router.group("demo-0")[0]
    for i in range(WILDCARD_CACHE * 3):
        router.group(f"demo-{i}")
    assert len(router._groups.all_deployments()) == WILDCARD_CACHE
    assert router.group("demo-0")[0] is not first  # evicted, then built again
    recent = f"demo-{WILDCARD_CACHE * 3 - 1}"
    assert router.group(recent)[0] is router.group(recent)[0]


def test_every_error_has_a_reason() -> None:
    assert all(isinstance(e.reason.value, str) for e in (GenrouteError("x"), NotFound("y")))


def test_a_copy_of_a_call_shares_its_records_and_refuses_unknown_fields() -> None:
    from dataclasses import fields, replace

    original = Call(Operation.GENERATE, "m", deadline=5.0, trace_headers=(("a", "b"),))
    copy = original.with_trace("0" * 32, None)
    assert copy == replace(original, trace_id="0" * 32, upstream=None)
    for f in fields(Call):
        if f.name != "trace_id":
            assert getattr(copy, f.name) is getattr(original, f.name), f.name
    copy.route.group = "g"  # the layers inside write the records the outer ones read
    assert original.route.group == "g"
    with pytest.raises(TypeError, match="no field 'tracing_id'"):
        original.evolve(tracing_id="x")
    with pytest.raises(AttributeError):
        copy.model = "other"  # type: ignore[misc]
