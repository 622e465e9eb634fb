"""`OpenAIProvider` over a MockTransport: keys, Azure URLs, drop_params, embeddings' token
counts, and how streams end."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import orjson
import pytest
import yarl

from genroute.call import Operation
from genroute.errors import (
    FailureReason,
    InvalidRequest,
    Unauthenticated,
    UpstreamError,
    UpstreamUnavailable,
)
from genroute.providers.openai import OpenAIProvider
from genroute.providers.transport import HttpRequest, HttpResponse, MockTransport
from genroute.wire import BatchEmbedContentsRequest, EmbedContentRequest, GenerateContentRequest
from tests.fakes.mock_http import Observer, Upstream, call, json_reply, spec, sse_body, sse_reply

REQUEST = GenerateContentRequest.model_validate(
    {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
)
SEARCH = GenerateContentRequest.model_validate(
    {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "tools": [{"googleSearch": {}}]}
)
EMBED = EmbedContentRequest.model_validate({"content": {"parts": [{"text": "embed me"}]}})
AZURE = "https://res.openai.azure.com"


def provider(
    prefix: str = "openai", model: str = "gpt-4o", **params: Any
) -> tuple[OpenAIProvider, Upstream]:
    upstream = Upstream("openai")
    return OpenAIProvider(spec(prefix, model, **params), MockTransport(upstream)), upstream


async def test_a_missing_key_is_auth_and_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    openai, upstream = provider(api_key=None)
    calls = [
        lambda: openai.generate(call(), REQUEST),
        lambda: anext(openai.stream(call(Operation.STREAM), REQUEST)),
        lambda: openai.embed(call(Operation.EMBED), EMBED),
    ]
    for attempt in calls:
        with pytest.raises(Unauthenticated) as info:
            await attempt()
        assert (info.value.code, info.value.reason) == (401, FailureReason.AUTH)
        assert info.value.provider == "openai" and "OPENAI_API_KEY" in info.value.message
    assert upstream.requests == []


async def test_the_key_and_headers_each_server_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", " sk-env ")
    openai, upstream = provider(api_key=None, organization="org-1", extra_headers={"x-a": "b"})
    await openai.generate(call(), REQUEST)
    headers = upstream.requests[0].headers
    assert headers["authorization"] == "Bearer sk-env" and headers["openai-organization"] == "org-1"
    assert headers["x-a"] == "b"
    azure, upstream = provider("azure", "gpt-4o-prod", api_base=AZURE)
    await azure.generate(call(), REQUEST)
    assert upstream.requests[0].headers["api-key"] == "test-key"
    assert "authorization" not in upstream.requests[0].headers


@pytest.mark.parametrize(
    "deployment", ["my deployment", "a/../../b", "x?api-version=1#f", "%2F..%2Fadmin"]
)
async def test_an_azure_deployment_name_stays_one_path_segment(deployment: str) -> None:
    azure, upstream = provider("azure", deployment, api_base=AZURE)
    await azure.generate(call(), REQUEST)
    await azure.embed(call(Operation.EMBED), EMBED)
    for sent, tail in zip(upstream.requests, ("chat", "embeddings"), strict=True):
        url = yarl.URL(sent.url)
        assert url.raw_parts[:4] == ("/", "openai", "deployments", url.raw_parts[3])
        assert unquote(url.raw_parts[3]) == deployment
        assert url.raw_parts[4] == tail and dict(url.query) == {"api-version": "2024-10-21"}


def test_an_azure_deployment_named_dot_dot_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        provider("azure", "..", api_base=AZURE)


async def test_drop_params_comes_from_the_deployment() -> None:
    strict, upstream = provider()
    with pytest.raises(InvalidRequest, match=r"^tools\[0\]\.googleSearch:"):
        await strict.generate(call(), SEARCH)
    assert upstream.requests == []
    lenient, upstream = provider(drop_params=True)
    response = await lenient.generate(call(), SEARCH)
    assert response.text == "Echo: hi"
    assert "tools" not in orjson.loads(upstream.requests[0].body)


async def test_embedding_tokens_are_summed_over_the_calls_made() -> None:
    openai, upstream = provider(model="text-embedding-3-small")
    batch = BatchEmbedContentsRequest(
        requests=[EMBED, EMBED.model_copy(update={"output_dimensionality": 8}), EMBED]
    )
    reply = await openai.batch_embed(call(Operation.BATCH_EMBED), batch)
    assert len(upstream.requests) == 2 and reply._input_tokens == 6
    assert [len(e.values) for e in reply.embeddings] == [4, 8, 4]
    assert "_input_tokens" not in reply.to_dict() and "input_tokens" not in str(reply.to_dict())


async def test_embedding_tokens_are_unknown_when_one_call_does_not_say() -> None:
    answers = iter([3, None])

    def handler(request: HttpRequest) -> HttpResponse:
        return Upstream("openai", input_tokens=next(answers))(request)

    openai = OpenAIProvider(spec("openai", "text-embedding-3-small"), MockTransport(handler))
    batch = BatchEmbedContentsRequest(
        requests=[EMBED, EMBED.model_copy(update={"output_dimensionality": 8})]
    )
    assert (await openai.batch_embed(call(Operation.BATCH_EMBED), batch))._input_tokens is None


CHUNK = {"id": "c1", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "ok"}}]}
LAST = {
    "id": "c1",
    "model": "gpt-4o",
    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
}


async def test_a_stream_ends_at_done_whatever_follows() -> None:
    body = sse_body([CHUNK, LAST, "[DONE]"]) + b"data: {not json at all\n\n"
    observer = Observer()
    openai = OpenAIProvider(
        spec("openai", "gpt-4o"), MockTransport(lambda r: HttpResponse(200, {}, [body]))
    )
    chunks = [c async for c in openai.stream(call(Operation.STREAM, observer=observer), REQUEST)]
    assert "".join(c.text for c in chunks) == "ok" and chunks[-1].candidates
    assert chunks[-1].candidates[0].finish_reason == "STOP"
    assert observer.exited == [(observer.entered[0], None)]


async def test_a_stream_cut_before_it_finished_is_an_error() -> None:
    openai = OpenAIProvider(spec("openai", "gpt-4o"), MockTransport(lambda r: sse_reply([CHUNK])))
    with pytest.raises(UpstreamUnavailable, match="ended the stream before it finished"):
        _ = [c async for c in openai.stream(call(Operation.STREAM), REQUEST)]


async def test_a_mid_stream_error_event_reaches_the_observer_with_its_reason() -> None:
    error = {
        "error": {"message": "Rate limit reached", "type": "rate_limit_exceeded", "code": None}
    }
    observer = Observer()
    openai = OpenAIProvider(
        spec("openai", "gpt-4o"), MockTransport(lambda r: sse_reply([CHUNK, error]))
    )
    with pytest.raises(UpstreamError) as info:
        _ = [c async for c in openai.stream(call(Operation.STREAM, observer=observer), REQUEST)]
    assert (info.value.code, info.value.reason) == (429, FailureReason.RATE_LIMIT)
    assert observer.exited == [(observer.entered[0], info.value)]


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (400, {"error": {"message": "This model's maximum context length is 8192 tokens.",
               "type": "invalid_request_error", "code": "context_length_exceeded"}}, FailureReason.CONTEXT_WINDOW),
        (400, {"error": {"message": "filtered", "type": None, "code": "content_filter",
               "innererror": {"code": "ResponsibleAIPolicyViolation"}}}, FailureReason.CONTENT_POLICY),
        (429, {"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
               "code": "insufficient_quota"}}, FailureReason.RATE_LIMIT),
    ],
)  # fmt: skip
async def test_error_replies_carry_their_reason(
    status: int, body: Any, reason: FailureReason
) -> None:
    azure = OpenAIProvider(
        spec("azure", "d", api_base=AZURE), MockTransport(lambda r: json_reply(body, status))
    )
    with pytest.raises(UpstreamError) as info:
        await azure.generate(call(), REQUEST)
    assert info.value.reason is reason and info.value.provider == "azure"
