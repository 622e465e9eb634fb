"""`BedrockProvider` over a MockTransport that answers as Bedrock does (the fake's reply
builders, binary event streams cut anywhere, signatures checked): the promises of
tests/providers/test_conformance.py, kept by the Bedrock provider, plus its URLs, headers,
countTokens and mid-stream exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import pytest

from genroute.call import Operation
from genroute.cost import call_cost
from genroute.errors import (
    FailureReason,
    GenrouteError,
    InvalidRequest,
    UpstreamError,
    UpstreamMalformed,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from genroute.providers.bedrock import BedrockProvider
from genroute.providers.registry import PROVIDERS, build_provider, split_model
from genroute.providers.transport import HttpRequest, HttpResponse, MockTransport
from genroute.wire import (
    BatchEmbedContentsRequest,
    CountTokensRequest,
    EmbedContentRequest,
    GenerateContentRequest,
    GenerateContentResponse,
)
from tests.fakes.bedrock_upstream import (
    KEY_ID,
    REGION,
    SECRET,
    default_content,
    event_frame,
    exception_frame,
    input_shape,
    reply_for,
    rule_problems,
    shape_problems,
    signature_problem,
    stream_events,
    words,
)
from tests.fakes.mock_http import TRACEPARENT, Observer, call, json_reply, pieces
from tests.providers.bedrock.golden import SONNET, spec

KEYS = {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "aws_region_name": REGION}
REQUEST = GenerateContentRequest.model_validate(
    {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
)
ERROR_TYPES = {400: "ValidationException", 403: "AccessDeniedException",
               404: "ResourceNotFoundException", 408: "ModelTimeoutException",
               424: "ModelErrorException", 429: "ThrottlingException",
               500: "InternalServerException", 503: "ServiceUnavailableException"}  # fmt: skip


class Upstream:
    """A MockTransport handler answering as Bedrock, checking each request's signature,
    service-model shape and Converse rules first."""

    def __init__(self, chunk: int | None = None, model: str = SONNET) -> None:
        self.chunk, self.model = chunk, model
        self.requests: list[HttpRequest] = []
        self.bodies: list[Any] = []

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        parts = urlsplit(request.url)
        headers = {k.lower(): v for k, v in request.headers.items()} | {"host": parts.netloc}
        problem = signature_problem(parts.path, headers, request.body, {KEY_ID: (SECRET, None)})
        assert problem is None, problem
        body = orjson.loads(request.body)
        self.bodies.append(body)
        model, action = parts.path.split("/")[2], parts.path.split("/")[3]
        assert unquote(model) in (self.model, "anthropic.claude-sonnet-4-5-20250929-v1:0")
        if action == "count-tokens":
            assert shape_problems(body, input_shape("CountTokens")) == []
            return json_reply({"inputTokens": words(body["input"]["converse"])})
        assert shape_problems(body, input_shape("Converse")) == []
        assert rule_problems(body, self.model) == []
        reply = reply_for(body, default_content(body))
        if action == "converse":
            return json_reply(reply, headers={"x-amzn-RequestId": "req-9"})
        frames = b"".join(event_frame(kind, payload) for kind, payload in stream_events(reply))
        headers = {
            "content-type": "application/vnd.amazon.eventstream",
            "x-amzn-RequestId": "req-9",
        }
        return HttpResponse(200, headers, pieces(frames, self.chunk))


def provider(transport: MockTransport, model: str = SONNET, **params: Any) -> BedrockProvider:
    deployment = spec({"model": model, "params": {**KEYS, **params}})
    built = build_provider(deployment, transport)
    assert isinstance(built, BedrockProvider)
    return built


async def streamed(
    bedrock: BedrockProvider,
    observer: Observer | None = None,
    request: GenerateContentRequest = REQUEST,
) -> list[GenerateContentResponse]:
    return [c async for c in bedrock.stream(call(Operation.STREAM, observer=observer), request)]


def test_an_api_key_is_refused_at_start_up() -> None:
    with pytest.raises(InvalidRequest, match=r"params\.api_key is not used by bedrock"):
        provider(MockTransport(Upstream()), api_key="bedrock-api-key")


def test_bedrock_is_registered_and_model_ids_keep_their_colons() -> None:
    assert PROVIDERS["bedrock"] is BedrockProvider
    assert split_model(f"bedrock/{SONNET}") == ("bedrock", SONNET)
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
    assert split_model(f"bedrock/{arn}") == ("bedrock", arn)


async def test_generate_answers_with_the_request_id_and_the_model() -> None:
    upstream = Upstream()
    response = await provider(MockTransport(upstream)).generate(call(), REQUEST)
    assert response.text == "Echo: hello there"
    assert (response.response_id, response.model_version) == ("req-9", SONNET)
    assert response.usage_metadata is not None and response.usage_metadata.total_token_count
    request = upstream.requests[0]
    assert request.url == f"https://bedrock-runtime.{REGION}.amazonaws.com/model/{SONNET}/converse"
    assert request.headers["content-type"] == "application/json"


@pytest.mark.parametrize("chunk", [1, 7, None], ids=["every-byte", "7-bytes", "whole"])
async def test_a_stream_cut_anywhere_says_what_generate_says(chunk: int | None) -> None:
    upstream = Upstream(chunk)
    chunks = await streamed(provider(MockTransport(upstream)))
    assert "".join(c.text or "" for c in chunks) == "Echo: hello there"
    finishes = [i for i, c in enumerate(chunks) for d in c.candidates or [] if d.finish_reason]
    assert finishes == [len(chunks) - 1] and chunks[-1].usage_metadata is not None
    for each in chunks:
        assert each.candidates and each.candidates[0].content and each.candidates[0].content.parts
        assert each.response_id == "req-9"
    request = upstream.requests[0]
    assert request.url.endswith("/converse-stream")
    assert request.headers["accept"] == "application/vnd.amazon.eventstream"


async def test_the_observer_wraps_each_request_and_its_header_is_sent_unsigned() -> None:
    upstream, observer = Upstream(), Observer()
    bedrock = provider(MockTransport(upstream), extra_headers={"x-team": "a"})
    await bedrock.generate(call(observer=observer), REQUEST)
    chunks = bedrock.stream(call(Operation.STREAM, observer=observer), REQUEST)
    await anext(chunks)
    assert observer.open == 1
    async for _ in chunks:
        pass
    assert observer.entered == [r.url for r in upstream.requests] and len(observer.entered) == 2
    assert observer.exited == [(url, None) for url in observer.entered]
    for request in upstream.requests:
        assert request.headers["traceparent"] == TRACEPARENT
        assert "traceparent" not in request.headers["Authorization"]
        assert "x-team" in request.headers["Authorization"]  # extra headers are signed


async def test_leaving_a_stream_early_ends_the_observed_request() -> None:
    observer = Observer()
    chunks = provider(MockTransport(Upstream(chunk=3))).stream(
        call(Operation.STREAM, observer=observer), REQUEST
    )
    await anext(chunks)
    await chunks.aclose()
    assert observer.open == 0


def failing(status: int, headers: dict[str, str] | None = None) -> MockTransport:
    kind = ERROR_TYPES[status]
    sent = {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"}
    body = orjson.dumps({"message": f"upstream said no ({kind})"})
    return MockTransport(lambda r: HttpResponse(status, {**sent, **(headers or {})}, body))


STATUSES = [
    (400, FailureReason.BAD_REQUEST), (403, FailureReason.AUTH), (404, FailureReason.NOT_FOUND),
    (408, FailureReason.TIMEOUT), (424, FailureReason.UPSTREAM_5XX),
    (429, FailureReason.RATE_LIMIT), (500, FailureReason.UPSTREAM_5XX),
    (503, FailureReason.OVERLOADED),
]  # fmt: skip


@pytest.mark.parametrize(("status", "reason"), STATUSES, ids=[str(s) for s, _ in STATUSES])
async def test_error_statuses_carry_their_failure_reason(
    status: int, reason: FailureReason
) -> None:
    bedrock = provider(failing(status, {"retry-after": "3"} if status == 429 else None))
    with pytest.raises(UpstreamError) as info:
        await bedrock.generate(call(), REQUEST)
    assert info.value.reason is reason and info.value.provider == "bedrock"
    assert info.value.retry_after == (3 if status == 429 else None)
    with pytest.raises(UpstreamError) as streamed_info:
        await streamed(bedrock)
    assert streamed_info.value.reason is reason
    assert f"upstream said no ({ERROR_TYPES[status]})" == info.value.message


def _raise(exc: BaseException) -> HttpResponse:
    raise exc


@pytest.mark.parametrize(
    ("exc", "error"),
    [(TimeoutError(), UpstreamTimeout), (ConnectionResetError(104, "reset"), UpstreamUnavailable)],
    ids=["timeout", "connection"],
)
async def test_timeouts_and_broken_connections(
    exc: BaseException, error: type[GenrouteError]
) -> None:
    bedrock = provider(MockTransport(lambda r: _raise(exc)))
    with pytest.raises(error) as info:
        await bedrock.generate(call(), REQUEST)
    assert info.value.provider == "bedrock"
    with pytest.raises(error):
        await streamed(bedrock)


async def test_a_stream_that_stalls_midway_times_out_after_what_it_sent() -> None:
    whole = Upstream()

    async def stalling(request: HttpRequest) -> HttpResponse:
        body = await whole(request).read()
        frames = [event_frame(kind, p) for kind, p in stream_events(reply_for({"messages": [
            {"role": "user", "content": [{"text": "x"}]}]}, [{"text": "Echo: partial"}]))]  # fmt: skip

        async def reads() -> AsyncIterator[bytes]:
            yield b"".join(frames[:3])
            raise TimeoutError

        assert body
        return HttpResponse(200, {}, reads())

    observer, received = Observer(), []
    with pytest.raises(UpstreamTimeout) as info:
        async for chunk in provider(MockTransport(stalling)).stream(
            call(Operation.STREAM, observer=observer), REQUEST
        ):
            received.append(chunk)
    assert received and "stalled" in info.value.message
    assert observer.exited == [(observer.entered[0], info.value)]


MALFORMED = [b"[]", b'{"output": {', b"<html>bad gateway</html>", b'"text"', b"5", b"",
             b'{"output": {"message": {"content": "hi"}}}', b'{"output": {}}']  # fmt: skip


@pytest.mark.parametrize("body", MALFORMED, ids=lambda b: b.decode() or "empty")
async def test_a_200_that_is_not_the_converse_shape_is_malformed(body: bytes) -> None:
    bedrock = provider(MockTransport(lambda r: HttpResponse(200, {}, body)))
    with pytest.raises(UpstreamMalformed) as info:
        await bedrock.generate(call(), REQUEST)
    assert info.value.reason is FailureReason.MALFORMED and info.value.code == 502
    assert "bedrock" in info.value.message


@pytest.mark.parametrize(
    "bad",
    [event_frame("contentBlockDelta", {"contentBlockIndex": "x", "delta": {}}),
     event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": 5}}),
     b"\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
     event_frame("messageStop", {"stopReason": "end_turn"})[:-1] + b"\x00"],
    ids=["index", "text", "prelude-crc", "message-crc"],
)  # fmt: skip
async def test_a_stream_event_or_frame_that_is_not_the_shape_is_malformed(bad: bytes) -> None:
    good = [event_frame("messageStart", {"role": "assistant"})]

    def reply(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, {}, [*good, bad, event_frame("messageStop", {"stopReason": "x"})])

    observer = Observer()
    with pytest.raises(UpstreamMalformed) as info:
        await streamed(provider(MockTransport(reply)), observer)
    assert observer.exited == [(observer.entered[0], info.value)]


async def test_an_exception_in_the_stream_is_the_mapped_error_after_what_was_sent() -> None:
    reply = reply_for(
        {"messages": [{"role": "user", "content": [{"text": "x"}]}]}, [{"text": "Hello world"}]
    )
    frames = [event_frame(kind, p) for kind, p in stream_events(reply)][:3]
    frames.append(exception_frame("throttlingException", "Too many tokens"))
    observer, received = Observer(), []
    bedrock = provider(
        MockTransport(lambda r: HttpResponse(200, {"x-amzn-RequestId": "r"}, frames))
    )
    with pytest.raises(UpstreamError) as info:
        async for chunk in bedrock.stream(call(Operation.STREAM, observer=observer), REQUEST):
            received.append(chunk)
    assert [c.text for c in received] == ["Hell", "o wo"]
    error = info.value
    assert (error.code, error.reason, error.retry_after) == (429, FailureReason.RATE_LIMIT, 1.0)
    assert error.details[0]["metadata"]["requestId"] == "r"
    assert observer.exited == [(observer.entered[0], error)]


async def test_count_tokens_asks_bedrock_for_claude_with_the_foundation_model() -> None:
    upstream = Upstream()
    request = CountTokensRequest.model_validate({"contents": REQUEST.model_dump()["contents"]})
    counted = await provider(MockTransport(upstream)).count_tokens(
        call(Operation.COUNT_TOKENS), request
    )
    assert counted.total_tokens == 2
    url = upstream.requests[0].url
    assert url.endswith("/model/anthropic.claude-sonnet-4-5-20250929-v1:0/count-tokens")


async def test_count_tokens_is_a_local_estimate_for_other_models() -> None:
    upstream = Upstream(model="amazon.nova-pro-v1:0")
    bedrock = provider(MockTransport(upstream), model="amazon.nova-pro-v1:0")
    request = CountTokensRequest.model_validate({"contents": REQUEST.model_dump()["contents"]})
    counted = await bedrock.count_tokens(call(Operation.COUNT_TOKENS), request)
    assert counted.total_tokens and upstream.requests == []
    response = await bedrock.generate(call(), REQUEST)
    assert response.text == "Echo: hello there" and "maxTokens" not in str(upstream.bodies[-1])


async def test_embeddings_are_refused() -> None:
    upstream = Upstream()
    bedrock = provider(MockTransport(upstream))
    embed = EmbedContentRequest.model_validate({"content": {"parts": [{"text": "x"}]}})
    with pytest.raises(InvalidRequest, match="no embeddings"):
        await bedrock.embed(call(Operation.EMBED), embed)
    with pytest.raises(InvalidRequest, match="no embeddings"):
        await bedrock.batch_embed(
            call(Operation.BATCH_EMBED), BatchEmbedContentsRequest(requests=[embed])
        )
    assert upstream.requests == []


async def test_a_2xx_other_than_200_is_not_taken_for_an_answer() -> None:
    bedrock = provider(MockTransport(lambda r: json_reply({}, status=204)))
    with pytest.raises(UpstreamError):
        await bedrock.generate(call(), REQUEST)


def test_calls_are_priced_from_genai_prices_aws_rows() -> None:
    from genroute.wire import UsageMetadata

    usage = UsageMetadata(
        prompt_token_count=1000, candidates_token_count=1000, total_token_count=2000
    )
    for model in (SONNET, "anthropic.claude-3-5-haiku-20241022-v1:0", "amazon.nova-pro-v1:0"):
        cost = call_cost(usage, "bedrock", model, None)
        assert cost.known and cost.usd > 0, model


async def test_drop_params_on_the_deployment_leaves_fields_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = Upstream()
    request = GenerateContentRequest.model_validate(
        {**REQUEST.model_dump(by_alias=True, exclude_none=True), "tools": [{"googleSearch": {}}]}
    )
    with pytest.raises(InvalidRequest, match=r"tools\[0\].googleSearch"):
        await provider(MockTransport(upstream)).generate(call(), request)
    caplog.set_level("DEBUG", logger="genroute.providers.bedrock")
    response = await provider(MockTransport(upstream), drop_params=True).generate(call(), request)
    assert response.text == "Echo: hello there"
    assert "left out (drop_params): tools[0].googleSearch" in caplog.text
