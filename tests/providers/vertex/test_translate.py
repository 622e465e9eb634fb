"""Golden fixtures of the Vertex translation, both directions, each checked against what
the official SDKs send Vertex themselves: google-genai's `_to_vertex` converters (and its
types, which refuse unknown fields) for Gemini models, the anthropic SDK's AnthropicVertex
client for Claude. Every Claude golden of the Anthropic provider holds on Vertex too."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from google.genai import models as genai_models
from google.genai import types

from genroute.errors import InvalidRequest, UpstreamError, UpstreamMalformed
from genroute.providers.anthropic import translate as anthropic
from genroute.providers.drops import Drops
from genroute.providers.vertex import gemini
from genroute.providers.vertex.errors import map_claude_error, map_error
from genroute.providers.vertex.provider import ANTHROPIC_VERSION, VertexClaudeProvider
from genroute.wire import (
    BatchEmbedContentsRequest,
    CountTokensRequest,
    GenerateContentRequest,
)
from tests.fakes.anthropic_upstream import rule_problems, sdk_problems
from tests.fakes.vertex_upstream import FakeVertex
from tests.providers.anthropic import golden as anthropic_golden
from tests.providers.anthropic.test_translate import request_body as anthropic_request
from tests.providers.vertex.golden import (
    FIXTURES,
    LOCATION,
    PROJECT,
    anthropic_vertex,
    canonical,
    expect,
    genai_count,
    genai_embed,
    genai_generate,
    load,
    names,
)

# -- Gemini models: requests -------------------------------------------------------------------


def vertex_body(case: dict[str, Any], drop_params: bool = False) -> dict[str, Any]:
    request = GenerateContentRequest.model_validate(case["request"])
    body: dict[str, Any] = orjson.loads(
        gemini.to_wire(request, Drops(drop_params), case.get("location"))
    )
    return body


@pytest.mark.parametrize("name", names("request"))
def test_gemini_request_matches_golden_and_what_google_genai_sends_vertex(name: str) -> None:
    case = load(FIXTURES / f"{name}.in.json")
    body = vertex_body(case)
    assert body == expect(name, body)
    assert "model" not in body
    # google-genai, in Vertex mode, sends the same request (its types refuse any field
    # Vertex does not take, its converters any field only the Gemini API takes).
    assert canonical(genai_generate(body)) == canonical(body)


def test_the_passthrough_keeps_fields_genroute_does_not_know() -> None:
    """Unknown fields pass to Vertex as they came (Vertex answers for them): the
    passthrough stays lossless, thought signatures in either base64 alphabet included."""
    request = {
        "contents": [{"role": "model", "parts": [{"text": "x", "thoughtSignature": "a-_b"}]}],
        "futureTopLevelField": {"keep_me": [1, 2]},
        "generationConfig": {"futureConfigField": 3},
    }
    body = vertex_body({"request": request})
    assert body == request


LEFT_OUT = ["store", "contents[0].parts[0].partMetadata", "contents[2].parts[0].functionResponse.willContinue"]  # fmt: skip


def test_fields_only_the_gemini_api_takes_are_left_out_and_noted() -> None:
    case = load(FIXTURES / "request_gemini_api_only_left_out.in.json")
    drops = Drops()
    gemini.to_wire(GenerateContentRequest.model_validate(case["request"]), drops)
    assert list(drops) == sorted(LEFT_OUT)


TOOL_CALL = {"role": "model", "parts": [{"toolCall": {"id": "t1", "toolType": "GOOGLE_SEARCH_WEB"}},
                                        {"text": "Searching."}]}  # fmt: skip
USER = {"role": "user", "parts": [{"text": "hi"}]}
# (request, the field the 400 names); with drop_params the field is left out instead.
REFUSED = {
    "server_side_tool_call": (
        {"contents": [USER, TOOL_CALL, USER]},
        "contents[1].parts[0].toolCall: Vertex AI takes no server-side tool invocations",
    ),
    "server_side_tool_invocations": (
        {"contents": [USER], "toolConfig": {"includeServerSideToolInvocations": True}},
        "toolConfig.includeServerSideToolInvocations:",
    ),
    "file_search": (
        {"contents": [USER], "tools": [{"fileSearch": {"fileSearchStoreNames": ["s/1"]}}]},
        "tools[0].fileSearch: File Search stores are a Gemini API feature",
    ),
    "civic_answers": (
        {"contents": [USER], "generationConfig": {"enableEnhancedCivicAnswers": True}},
        "generationConfig.enableEnhancedCivicAnswers: only the Gemini API takes it",
    ),
    "gemini_files_api": (
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": "describe"},
                        {
                            "fileData": {
                                "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc",
                                "mimeType": "image/png",
                            }
                        },
                    ],
                }
            ]
        },
        "contents[0].parts[1].fileData: a Gemini API file cannot be read by Vertex AI",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_fields_only_the_gemini_api_takes_are_refused_naming_them(case: str) -> None:
    request, message = REFUSED[case]
    with pytest.raises(InvalidRequest) as info:
        vertex_body({"request": request})
    assert info.value.message.startswith(message) and info.value.code == 400
    if case != "gemini_files_api":  # ... which google-genai refuses in Vertex mode too
        with pytest.raises((ValueError, TypeError)):
            genai_generate(request)


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_drop_params_leaves_them_out_and_vertex_takes_the_rest(case: str) -> None:
    request, message = REFUSED[case]
    drops = Drops(drop_params=True)
    body = orjson.loads(gemini.to_wire(GenerateContentRequest.model_validate(request), drops))
    assert list(drops) == [message.split(":")[0]]
    assert canonical(genai_generate(body)) == canonical(body)
    FakeVertex()._check_gemini("generateContent", "gemini-2.5-flash", body)


def test_a_request_left_with_nothing_to_send_is_refused() -> None:
    request = GenerateContentRequest.model_validate({"contents": [TOOL_CALL["parts"][0]]})
    with pytest.raises(InvalidRequest, match="nothing is left"):
        gemini.to_wire(
            GenerateContentRequest.model_validate({"contents": [{"parts": [{"toolCall": {}}]}]}),
            Drops(drop_params=True),
        )
    assert request.contents


def test_a_bare_cache_name_becomes_the_deployments_resource_name() -> None:
    request = GenerateContentRequest.model_validate(
        {"contents": [USER], "cachedContent": "cachedContents/abc"}
    )
    assert gemini.needs_location(request)
    prefix = f"projects/{PROJECT}/locations/{LOCATION}"
    body = orjson.loads(gemini.to_wire(request, Drops(), prefix))
    assert body["cachedContent"] == f"{prefix}/cachedContents/abc"
    full = request.model_copy(update={"cached_content": f"{prefix}/cachedContents/x"})
    assert not gemini.needs_location(full)


# -- Gemini models: countTokens and embeddings -------------------------------------------------


@pytest.mark.parametrize("name", names("count"))
def test_count_tokens_body_matches_golden_and_google_genai(name: str) -> None:
    case = load(FIXTURES / f"{name}.in.json")
    drops = Drops()
    body = orjson.loads(
        gemini.count_to_wire(CountTokensRequest.model_validate(case["request"]), drops)
    )
    assert body == expect(name, body)
    assert set(body) <= set(gemini.COUNT_FIELDS)
    assert canonical(genai_count(body)) == canonical(body)
    FakeVertex()._check_gemini("countTokens", "gemini-2.5-flash", body)


def test_count_tokens_with_a_cached_content_is_refused_unless_drop_params() -> None:
    inner = {"contents": [USER], "cachedContent": "cachedContents/abc"}
    request = CountTokensRequest.model_validate({"generateContentRequest": inner})
    with pytest.raises(InvalidRequest, match=r"generateContentRequest\.cachedContent"):
        gemini.count_to_wire(request, Drops())
    drops = Drops(drop_params=True)
    assert orjson.loads(gemini.count_to_wire(request, drops)) == {"contents": [USER]}
    assert list(drops) == ["generateContentRequest.cachedContent"]


def embed_bodies(case: dict[str, Any]) -> list[dict[str, Any]]:
    requests = BatchEmbedContentsRequest.model_validate({"requests": case["requests"]}).requests
    if not gemini.embeds_by_content(case["model"]):
        return [gemini.predict_body(requests, 0, Drops())]
    if len(requests) == 1:
        return [gemini.embed_content_body(requests[0])]
    return [gemini.batch_embed_body(requests)]


@pytest.mark.parametrize("name", names("embed"))
def test_embedding_bodies_match_golden_and_google_genai(name: str) -> None:
    case = load(FIXTURES / f"{name}.in.json")
    bodies = embed_bodies(case)
    assert bodies == expect(name, bodies)
    for body in bodies:
        if "requests" in body:  # each entry is an embedContent body of its own
            for entry in body["requests"]:
                assert canonical(genai_embed(case["model"], entry)) == canonical(entry)
        else:
            assert canonical(genai_embed(case["model"], body)) == canonical(body)


def test_text_embedding_models_refuse_media_unless_drop_params() -> None:
    request = BatchEmbedContentsRequest.model_validate(
        {
            "requests": [
                {
                    "content": {
                        "parts": [
                            {"text": "a"},
                            {"inlineData": {"mimeType": "image/png", "data": "iVBORw=="}},
                        ]
                    }
                }
            ]
        }
    )
    with pytest.raises(InvalidRequest, match=r"requests\[0\]\.content\.parts\[1\]: .*text only"):
        gemini.predict_body(request.requests, 0, Drops())
    body = gemini.predict_body(request.requests, 0, Drops(drop_params=True))
    assert body == {"instances": [{"content": "a"}]}


def test_embeddings_go_where_google_genai_sends_them() -> None:
    assert gemini.embeds_by_content("gemini-embedding-001")
    assert gemini.embeds_by_content("multimodalembedding-maas")
    assert not gemini.embeds_by_content("text-embedding-005")
    assert not gemini.embeds_by_content("text-multilingual-embedding-002")


# -- Gemini models: replies --------------------------------------------------------------------


@pytest.mark.parametrize("name", names("response"))
def test_responses_match_golden_and_read_as_google_genai_reads_the_gemini_api(name: str) -> None:
    raw = (FIXTURES / f"{name}.in.json").read_bytes()
    response = gemini.from_wire(raw)
    actual = response.to_dict()
    assert actual == expect(name, actual)
    # A Gemini API client (google-genai without vertexai) sees what a Vertex client sees.
    as_gemini = genai_models._GenerateContentResponse_from_mldev(actual)
    as_vertex = genai_models._GenerateContentResponse_from_vertex(json.loads(raw))
    seen = types.GenerateContentResponse._from_response(response=as_gemini, kwargs={})
    meant = types.GenerateContentResponse._from_response(response=as_vertex, kwargs={})
    assert seen.candidates == meant.candidates
    assert seen.usage_metadata == meant.usage_metadata


def test_everything_but_the_citation_name_passes_unchanged() -> None:
    raw = load(FIXTURES / "response_rich.in.json")
    actual = gemini.from_wire(orjson.dumps(raw)).to_dict()
    citations = raw["candidates"][0]["citationMetadata"].pop("citations")
    assert actual["candidates"][0]["citationMetadata"].pop("citationSources") == citations
    assert actual == raw


def test_stream_events_decode_and_an_error_event_raises_vertexs_error() -> None:
    chunk = gemini.decode_event(b'{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}')
    assert chunk.text == "a"
    with pytest.raises(UpstreamError) as info:
        gemini.decode_event(b'{"error":{"code":429,"message":"q","status":"RESOURCE_EXHAUSTED"}}')
    assert (info.value.code, info.value.provider) == (429, "vertex_ai")


PREDICTION = {"embeddings": {"values": [0.5, -1], "statistics": {"token_count": 3, "truncated": False}}}  # fmt: skip


def test_predict_and_embed_content_replies() -> None:
    reply = gemini.predict_reply(orjson.dumps({"predictions": [PREDICTION, PREDICTION]}), 2)
    assert [e.values for e in reply.embeddings] == [[0.5, -1.0]] * 2 and reply._input_tokens == 6
    one = gemini.embed_reply(
        orjson.dumps({"embedding": {"values": [1]}, "usageMetadata": {"promptTokenCount": 4}}), None
    )
    assert one.embeddings[0].values == [1.0] and one._input_tokens == 4
    unreported = {"predictions": [{"embeddings": {"values": [1]}}]}
    assert gemini.predict_reply(orjson.dumps(unreported), 1)._input_tokens is None


@pytest.mark.parametrize(
    ("data", "count"),
    [
        (b"[]", 1),
        (b'{"predictions": [{"embeddings": {"values": ["x"]}}]}', 1),
        (b'{"predictions": []}', 1),
        (b'{"predictions": [{"embeddings": 5}]}', 1),
    ],
)
def test_embedding_replies_that_are_not_vertexs_shape_are_malformed(
    data: bytes, count: int
) -> None:
    with pytest.raises(UpstreamMalformed) as info:
        gemini.predict_reply(data, count)
    assert "vertex_ai" in info.value.message and info.value.provider == "vertex_ai"


# -- Claude models -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", anthropic_golden.names("request"))
def test_every_anthropic_request_golden_holds_on_vertex(name: str) -> None:
    """The Anthropic translator's own goldens (thinking with signatures, parallel tool ids,
    images, system parts, JSON output...): on Vertex the same body, without `model`, with
    `anthropic_version`; exactly what AnthropicVertex sends, and what the fake takes."""
    case = anthropic_golden.load(anthropic_golden.FIXTURES / f"{name}.in.json")
    expected = anthropic_golden.load(anthropic_golden.FIXTURES / f"{name}.out.json")["body"]
    body = orjson.loads(VertexClaudeProvider.raw_body(anthropic_request(case).body))
    assert body == {"anthropic_version": ANTHROPIC_VERSION} | {
        k: v for k, v in expected.items() if k != "model"
    }
    path, sent = anthropic_vertex(expected)
    assert sent == body
    model = expected["model"]
    method = "streamRawPredict" if body.get("stream") else "rawPredict"
    assert path.endswith(f"/publishers/anthropic/models/{model}:{method}")
    served = model if model.startswith("claude") else f"claude-{model}"  # a Claude id here
    FakeVertex._check_claude(json.loads(json.dumps(body)), served, method)


@pytest.mark.parametrize("name", anthropic_golden.names("count"))
def test_claude_count_bodies_are_what_anthropic_vertex_sends_count_tokens(name: str) -> None:
    case = anthropic_golden.load(anthropic_golden.FIXTURES / f"{name}.in.json")
    request = CountTokensRequest.model_validate(case["request"])
    body = anthropic.count_tokens_body(
        request, anthropic_golden.profile(case), new_id=anthropic_golden.counter_ids()
    )
    path, sent = anthropic_vertex(body, count=True)
    assert path.endswith("/publishers/anthropic/models/count-tokens:rawPredict")
    assert sent == {**body, "anthropic_version": ANTHROPIC_VERSION}
    FakeVertex._check_claude(sent, "count-tokens", "rawPredict")


def test_a_vertex_claude_request_golden() -> None:
    """One request spelt out (fixtures/vertex/claude_*): system parts, an image, thinking,
    and two parallel calls answered out of order."""
    case = load(FIXTURES / "claude_thinking_tools.in.json")
    body = orjson.loads(VertexClaudeProvider.raw_body(anthropic_request(case).body))
    assert body == expect("claude_thinking_tools", body)
    checked = {k: v for k, v in body.items() if k != "anthropic_version"}
    checked["model"] = case["model"]
    assert sdk_problems(checked, "create") == [] and rule_problems(checked) == []


# -- errors ------------------------------------------------------------------------------------


def test_google_shaped_errors_keep_their_code_status_and_details() -> None:
    body = {"error": {"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED",
                      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                   "retryDelay": "7s"}]}}  # fmt: skip
    for mapper in (map_error, map_claude_error):
        error = mapper(429, orjson.dumps([body]), {})
        assert (error.code, error.status, error.retry_after) == (429, "RESOURCE_EXHAUSTED", 7)
        assert error.provider == "vertex_ai" and error.reason.value == "rate_limit"


def test_claudes_own_errors_read_as_anthropics() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    error = map_claude_error(529, orjson.dumps(body), {"request-id": "r1"})
    assert (error.code, error.status, error.reason.value) == (503, "UNAVAILABLE", "overloaded")
    assert error.provider == "vertex_ai" and error.details[0]["metadata"]["requestId"] == "r1"
    context = {"type": "error", "error": {"type": "invalid_request_error",
                                          "message": "prompt is too long: 210000 tokens"}}  # fmt: skip
    assert map_claude_error(400, orjson.dumps(context), {}).reason.value == "context_window"
    assert map_claude_error(529, b"overloaded", {}).code == 503


def test_a_context_window_error_from_vertex_gemini() -> None:
    message = (
        "The input token count (1594712) exceeds the maximum number of tokens allowed (1048576)."
    )
    body = {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
    assert map_error(400, orjson.dumps(body), {}).reason.value == "context_window"
    plain = map_error(502, b"<html>bad gateway</html>", {})
    assert plain.code == 502 and plain.message.startswith("vertex_ai upstream answered HTTP 502")
