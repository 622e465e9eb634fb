"""Vertex deployments over a MockTransport: where each call goes (regional and global
hosts, api_base, API versions, project and location from params, environment or
credentials), what it carries (the bearer token, never a key), which endpoint each
embedding model takes, errors, model facts and prices."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from genroute.call import Call, Operation
from genroute.config import ModelInfo
from genroute.cost import call_cost
from genroute.errors import ConfigError, FailureReason, InvalidRequest, UpstreamError
from genroute.providers.models import model_facts
from genroute.providers.registry import split_model
from genroute.providers.transport import HttpRequest, HttpResponse, MockTransport
from genroute.providers.vertex import VertexClaudeProvider, VertexGeminiProvider
from genroute.providers.vertex.provider import default_base, vertex_provider
from genroute.wire import (
    BatchEmbedContentsRequest,
    CountTokensRequest,
    EmbedContentRequest,
    GenerateContentRequest,
    UsageMetadata,
)
from tests.fakes.mock_http import error_body, json_reply
from tests.providers.vertex.mock import PROJECT, StaticTokens, VertexUpstream, vertex, vertex_spec

REQUEST = GenerateContentRequest.model_validate(
    {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}], "labels": {"t": "a"}}
)
V1 = f"/v1/projects/{PROJECT}/locations/us-central1/publishers"


def call(operation: Operation = Operation.GENERATE) -> Call:
    return Call(operation, "m")


def sent(upstream: VertexUpstream, index: int = -1) -> tuple[str, dict[str, str], Any]:
    request = upstream.requests[index]
    return request.url, dict(request.headers), orjson.loads(request.body)


# -- where calls go ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "root"),
    [
        ({}, "https://us-central1-aiplatform.googleapis.com/v1"),
        ({"vertex_location": "europe-west4"}, "https://europe-west4-aiplatform.googleapis.com/v1"),
        ({"vertex_location": "global"}, "https://aiplatform.googleapis.com/v1"),
        ({"api_base": "https://proxy.example/"}, "https://proxy.example/v1"),
        ({"api_base": "https://proxy.example/v1beta1"}, "https://proxy.example/v1beta1"),
        ({"api_version": "v1beta1"}, "https://us-central1-aiplatform.googleapis.com/v1beta1"),
    ],
)
async def test_each_call_goes_to_the_locations_endpoint(params: dict[str, Any], root: str) -> None:
    upstream = VertexUpstream()
    await vertex(MockTransport(upstream), "gemini-2.5-flash", **params).generate(call(), REQUEST)
    location = params.get("vertex_location", "us-central1")
    assert sent(upstream)[0] == (
        f"{root}/projects/{PROJECT}/locations/{location}/publishers/google/models/"
        "gemini-2.5-flash:generateContent"
    )


async def test_the_token_travels_as_a_bearer_and_no_key_does() -> None:
    upstream, tokens = VertexUpstream(), StaticTokens("ya29.abc")
    tokens.quota_project = "billing"
    provider = vertex(
        MockTransport(upstream), "gemini-2.5-flash", tokens, extra_headers={"x-a": "1"}
    )
    await provider.generate(call(), REQUEST)
    _, headers, body = sent(upstream)
    assert (
        headers["authorization"] == "Bearer ya29.abc"
        and headers["x-goog-user-project"] == "billing"
    )
    assert headers["x-a"] == "1" and not {"x-goog-api-key", "x-api-key"} & set(headers)
    assert body["labels"] == {"t": "a"} and "model" not in body


def test_an_api_key_is_refused_vertex_takes_oauth() -> None:
    with pytest.raises(ConfigError, match="not api_key"):
        vertex(MockTransport(VertexUpstream()), "gemini-2.5-flash", api_key="AIza-key")


@pytest.mark.parametrize("location", ["evil.example/x#", "US CENTRAL", "-x"])
def test_a_location_that_is_not_one_cannot_redirect_the_host(location: str) -> None:
    with pytest.raises(ConfigError, match="vertex_location"):
        vertex(MockTransport(VertexUpstream()), "gemini-2.5-flash", vertex_location=location)


async def test_project_and_location_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERTEXAI_PROJECT", "env-project")
    monkeypatch.setenv("VERTEXAI_LOCATION", "asia-northeast1")
    upstream = VertexUpstream()
    provider = vertex(MockTransport(upstream), "gemini-2.5-flash", vertex_project=None)
    await provider.generate(call(), REQUEST)
    assert "asia-northeast1-aiplatform.googleapis.com/v1/projects/env-project/locations/asia-northeast1/" in sent(upstream)[0]  # fmt: skip


async def test_without_a_configured_project_the_credentials_name_it() -> None:
    upstream = VertexUpstream()
    tokens = StaticTokens(project_id="sa-project")
    provider = vertex(MockTransport(upstream), "gemini-2.5-flash", tokens, vertex_project=None)
    await provider.generate(call(), REQUEST)
    assert "/projects/sa-project/" in sent(upstream)[0]
    cached = REQUEST.model_copy(update={"cached_content": "cachedContents/c1"})
    await provider.generate(call(), cached)
    assert sent(upstream)[2]["cachedContent"] == "projects/sa-project/locations/us-central1/cachedContents/c1"  # fmt: skip


async def test_no_project_anywhere_is_an_auth_failure_that_falls_back() -> None:
    upstream = VertexUpstream()
    provider = vertex(MockTransport(upstream), "gemini-2.5-flash", vertex_project=None)
    with pytest.raises(UpstreamError, match="no Vertex AI project") as info:
        await provider.generate(call(), REQUEST)
    assert info.value.reason is FailureReason.AUTH and info.value.reason.falls_back
    assert upstream.requests == []


async def test_claude_goes_through_raw_predict_with_the_model_in_the_path() -> None:
    upstream = VertexUpstream()
    provider = vertex(MockTransport(upstream), "claude-opus-4-1@20250805")
    assert isinstance(provider, VertexClaudeProvider)
    await provider.generate(call(), REQUEST)
    url, headers, body = sent(upstream)
    assert url.endswith(f"{V1}/anthropic/models/claude-opus-4-1@20250805:rawPredict")
    assert body["anthropic_version"] == "vertex-2023-10-16" and "model" not in body
    assert "anthropic-version" not in headers and body["max_tokens"] == 32000
    chunks = [c async for c in provider.stream(call(Operation.STREAM), REQUEST)]
    assert "".join(c.text for c in chunks) == "Echo: hello there"
    url, _, body = sent(upstream)
    assert url.endswith(":streamRawPredict") and body["stream"] is True
    counted = await provider.count_tokens(
        call(Operation.COUNT_TOKENS), CountTokensRequest(contents=REQUEST.contents)
    )
    url, _, body = sent(upstream)
    assert url.endswith(f"{V1}/anthropic/models/count-tokens:rawPredict") and counted.total_tokens
    assert body["model"] == "claude-opus-4-1@20250805" and body["anthropic_version"]


def test_the_model_family_picks_the_wire() -> None:
    transport = MockTransport(VertexUpstream())
    assert isinstance(
        vertex_provider(vertex_spec("gemini-2.5-pro"), transport), VertexGeminiProvider
    )
    assert isinstance(
        vertex_provider(vertex_spec("claude-3-5-haiku@20241022"), transport), VertexClaudeProvider
    )
    behind = vertex_spec("my-endpoint", {"base_model": "claude-sonnet-4-5"})
    assert isinstance(vertex_provider(behind, transport), VertexClaudeProvider)
    assert default_base("global") == "https://aiplatform.googleapis.com"


async def test_gemini_count_tokens_sends_vertexs_shape() -> None:
    upstream = VertexUpstream()
    request = CountTokensRequest.model_validate(
        {"generateContentRequest": {"model": "models/x", **REQUEST.to_dict()}}
    )
    counted = await vertex(MockTransport(upstream), "gemini-2.5-flash").count_tokens(
        call(Operation.COUNT_TOKENS), request
    )
    url, _, body = sent(upstream)
    assert url.endswith(":countTokens") and counted.total_tokens == 2
    assert body == {"contents": REQUEST.to_dict()["contents"]}  # labels left out


# -- embeddings --------------------------------------------------------------------------------


def embeds(*dims: int | None) -> BatchEmbedContentsRequest:
    return BatchEmbedContentsRequest(
        requests=[
            EmbedContentRequest.model_validate(
                {"content": {"parts": [{"text": f"text {i}"}]}, "outputDimensionality": d}
            )
            for i, d in enumerate(dims)
        ]
    )


async def test_text_embedding_models_predict_once_per_dimensionality() -> None:
    upstream = VertexUpstream()
    provider = vertex(MockTransport(upstream), "text-embedding-005")
    reply = await provider.batch_embed(call(Operation.BATCH_EMBED), embeds(8, None, 8))
    assert [len(e.values) for e in reply.embeddings] == [8, 4, 8]
    assert reply._input_tokens == 6  # Vertex says how many tokens each text had
    bodies = [orjson.loads(r.body) for r in upstream.requests]
    assert all(r.url.endswith("/models/text-embedding-005:predict") for r in upstream.requests)
    assert [len(b["instances"]) for b in bodies] == [2, 1]
    assert bodies[0]["parameters"] == {"outputDimensionality": 8} and "parameters" not in bodies[1]
    one = await provider.embed(call(Operation.EMBED), embeds(3).requests[0])
    assert len(one.embedding.values) == 3 and one._input_tokens == 2


@pytest.mark.parametrize(
    ("model", "methods"),
    [
        ("gemini-embedding-001", ["batchEmbedContents"]),
        ("multimodalembedding-maas", ["embedContent", "embedContent"]),  # one content a call
    ],
)
async def test_gemini_and_maas_embedding_models_embed_content(
    model: str, methods: list[str]
) -> None:
    upstream = VertexUpstream()
    provider = vertex(MockTransport(upstream), model)
    reply = await provider.batch_embed(call(Operation.BATCH_EMBED), embeds(8, None))
    assert [len(e.values) for e in reply.embeddings] == [8, 4]
    assert [r.url.rsplit(":", 1)[1] for r in upstream.requests] == methods
    single = await provider.embed(call(Operation.EMBED), embeds(5).requests[0])
    assert upstream.requests[-1].url.endswith(":embedContent") and len(single.embedding.values) == 5


async def test_claude_has_no_embeddings() -> None:
    provider = vertex(MockTransport(VertexUpstream()), "claude-sonnet-4-5@20250929")
    with pytest.raises(InvalidRequest, match="no embeddings API"):
        await provider.embed(call(Operation.EMBED), embeds(None).requests[0])


# -- errors ------------------------------------------------------------------------------------


async def test_a_401_drops_the_token_vertex_refused() -> None:
    def refuse(request: HttpRequest) -> HttpResponse:
        return HttpResponse(401, {}, error_body("gemini", 401, "Request had invalid authentication credentials."))  # fmt: skip

    for model in ("gemini-2.5-flash", "claude-sonnet-4-5@20250929"):
        tokens = StaticTokens("ya29.revoked")
        provider = vertex(MockTransport(refuse), model, tokens)
        with pytest.raises(UpstreamError) as info:
            await provider.generate(call(), REQUEST)
        assert (info.value.code, info.value.reason) == (401, FailureReason.AUTH)
        assert tokens.invalidated == ["ya29.revoked"]


async def test_vertexs_own_errors_in_front_of_claude_are_googles() -> None:
    quota = {"error": {"code": 429, "message": "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model", "status": "RESOURCE_EXHAUSTED"}}  # fmt: skip
    provider = vertex(MockTransport(lambda r: json_reply(quota, 429)), "claude-sonnet-4-5@20250929")
    with pytest.raises(UpstreamError) as info:
        await provider.generate(call(), REQUEST)
    assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert info.value.reason is FailureReason.RATE_LIMIT and "Quota exceeded" in info.value.message


async def test_a_claude_stream_error_event_names_vertex() -> None:
    from tests.fakes import anthropic_upstream
    from tests.fakes.mock_http import sse_reply

    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
    events = anthropic_upstream.stream_events(anthropic_upstream.message(body, [anthropic_upstream.text("hi")]))  # fmt: skip
    failing = [*events[:3], {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}]  # fmt: skip
    provider = vertex(MockTransport(lambda r: sse_reply(failing)), "claude-sonnet-4-5@20250929")
    with pytest.raises(UpstreamError) as info:
        async for _ in provider.stream(call(Operation.STREAM), REQUEST):
            pass
    assert (info.value.code, info.value.provider) == (503, "vertex_ai")
    assert info.value.reason is FailureReason.OVERLOADED


# -- facts and prices --------------------------------------------------------------------------


def test_model_facts_and_prices_for_vertex_models() -> None:
    gemini = model_facts(*split_model("vertex_ai/gemini-2.5-flash"))
    assert (gemini.family, gemini.reasons, gemini.output_limit) == ("Gemini 2.5", True, 65_536)
    assert model_facts(*split_model("vertex_ai/text-embedding-005")).mode == "embedding"
    claude = model_facts(*split_model("vertex_ai/claude-sonnet-4-5@20250929"))
    assert (claude.family, claude.output_limit) == ("Claude 4.5", 64_000)
    usage = UsageMetadata(prompt_token_count=1_000_000, candidates_token_count=1_000_000)
    for model in ("gemini-2.5-flash", "claude-sonnet-4-5@20250929", "claude-opus-4-1@20250805"):
        cost = call_cost(usage, "vertex_ai", model, ModelInfo())
        assert cost.known and cost.usd > 1, model
