"""`AnthropicProvider` over a MockTransport: URLs and headers, drop_params from the
deployment, countTokens, and errors before and during a stream."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from genroute.call import Operation
from genroute.errors import (
    FailureReason,
    InvalidRequest,
    UpstreamError,
    UpstreamMalformed,
    UpstreamUnavailable,
)
from genroute.providers.anthropic import AnthropicProvider
from genroute.providers.transport import MockTransport
from genroute.wire import CountTokensRequest, GenerateContentRequest
from tests.fakes.anthropic_upstream import message, stream_events, text
from tests.fakes.mock_http import Observer, Upstream, call, json_reply, spec, sse_reply

REQUEST = GenerateContentRequest.model_validate(
    {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
)
MODEL = "claude-sonnet-4-5"


def provider(**params: Any) -> tuple[AnthropicProvider, Upstream]:
    upstream = Upstream("anthropic")
    return AnthropicProvider(spec("anthropic", MODEL, **params), MockTransport(upstream)), upstream


def answering(reply: Any, status: int = 200) -> AnthropicProvider:
    return AnthropicProvider(
        spec("anthropic", MODEL), MockTransport(lambda r: json_reply(reply, status))
    )


@pytest.mark.parametrize(
    ("env", "api_base", "root"),
    [
        ({}, None, "https://api.anthropic.com"),
        ({"ANTHROPIC_BASE_URL": " http://proxy/v1/ "}, None, "http://proxy"),
        ({"ANTHROPIC_API_BASE": "http://a", "ANTHROPIC_BASE_URL": "http://b"}, None, "http://a"),
        ({"ANTHROPIC_API_BASE": "http://env"}, "http://cfg/v1", "http://cfg"),
    ],
)
async def test_urls_and_headers(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], api_base: str | None, root: str
) -> None:
    for name in ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    anthropic, upstream = provider(api_base=api_base, extra_headers={"anthropic-beta": "x"})
    await anthropic.generate(call(), REQUEST)
    await anthropic.count_tokens(
        call(Operation.COUNT_TOKENS), CountTokensRequest(contents=REQUEST.contents)
    )
    assert [r.url for r in upstream.requests] == [
        f"{root}/v1/messages",
        f"{root}/v1/messages/count_tokens",
    ]
    headers = upstream.requests[0].headers
    assert (headers["x-api-key"], headers["anthropic-version"], headers["anthropic-beta"]) == (
        "test-key",
        "2023-06-01",
        "x",
    )


async def test_the_key_comes_from_the_environment_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", " sk-ant \n")
    anthropic, upstream = provider(api_key=None)
    await anthropic.generate(call(), REQUEST)
    assert upstream.requests[0].headers["x-api-key"] == "sk-ant"


async def test_drop_params_comes_from_the_deployment() -> None:
    request = REQUEST.model_copy(update={"cached_content": "cachedContents/abc"})
    strict, upstream = provider()
    with pytest.raises(InvalidRequest, match=r"^cachedContent:"):
        await strict.generate(call(), request)
    assert upstream.requests == []
    lenient, upstream = provider(drop_params=True)
    assert (await lenient.generate(call(), request)).text == "Echo: hi"
    assert len(upstream.requests) == 1


async def test_count_tokens_reads_input_tokens() -> None:
    counted = await answering({"input_tokens": 42}).count_tokens(
        call(Operation.COUNT_TOKENS), CountTokensRequest(contents=REQUEST.contents)
    )
    assert counted.total_tokens == 42


@pytest.mark.parametrize(
    "reply", [{}, {"input_tokens": "42"}, {"input_tokens": None}, [42], {"input_tokens": 4.5}]
)
async def test_a_token_count_that_is_not_the_apis_shape(reply: Any) -> None:
    with pytest.raises(UpstreamMalformed, match="anthropic upstream sent a malformed token count"):
        await answering(reply).count_tokens(
            call(Operation.COUNT_TOKENS), CountTokensRequest(contents=REQUEST.contents)
        )


def _error(kind: str, text: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": text}}


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (400, _error("invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum"),
         FailureReason.CONTEXT_WINDOW),
        (400, _error("invalid_request_error", "Output blocked by content filtering policy"),
         FailureReason.CONTENT_POLICY),
        (400, _error("billing_error", "Your credit balance is too low."), FailureReason.AUTH),
        (400, _error("invalid_request_error", "messages: at least one message is required"),
         FailureReason.BAD_REQUEST),
        (529, _error("overloaded_error", "Overloaded"), FailureReason.OVERLOADED),
    ],
)  # fmt: skip
async def test_error_replies_carry_their_reason(
    status: int, body: Any, reason: FailureReason
) -> None:
    with pytest.raises(UpstreamError) as info:
        await answering(body, status).generate(call(), REQUEST)
    assert info.value.reason is reason and info.value.provider == "anthropic"


def _events() -> list[dict[str, Any]]:
    return stream_events(message({"model": MODEL, "messages": []}, [text("partial answer here")]))


async def test_a_mid_stream_error_event_reaches_the_observer_with_its_reason() -> None:
    events = _events()
    cut = [*events[:4], _error("overloaded_error", "Overloaded")]
    anthropic = AnthropicProvider(spec("anthropic", MODEL), MockTransport(lambda r: sse_reply(cut)))
    observer, received = Observer(), []
    with pytest.raises(UpstreamError) as info:
        async for chunk in anthropic.stream(call(Operation.STREAM, observer=observer), REQUEST):
            received.append(chunk)
    assert received and (info.value.code, info.value.reason) == (503, FailureReason.OVERLOADED)
    assert observer.exited == [(observer.entered[0], info.value)]


async def test_a_stream_cut_before_message_stop_is_an_error() -> None:
    events = _events()[:-1]
    anthropic = AnthropicProvider(
        spec("anthropic", MODEL), MockTransport(lambda r: sse_reply(events))
    )
    with pytest.raises(UpstreamUnavailable, match="ended before message_stop") as info:
        _ = [c async for c in anthropic.stream(call(Operation.STREAM), REQUEST)]
    assert info.value.reason is FailureReason.UNREACHABLE


async def test_the_stream_request_body_asks_for_a_stream() -> None:
    anthropic, upstream = provider()
    _ = [c async for c in anthropic.stream(call(Operation.STREAM), REQUEST)]
    assert orjson.loads(upstream.requests[0].body)["stream"] is True
