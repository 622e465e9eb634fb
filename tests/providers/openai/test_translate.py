"""Golden fixtures for the OpenAI Chat Completions translation, both ways, and its errors.

Every request body the translator produces is also checked against the official `openai`
SDK request types and OpenAI's own rules (tool-call order, tool_choice, JSON mode).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from genroute.config import DeploymentParams, ModelInfo
from genroute.errors import InvalidRequest, UpstreamError, UpstreamMalformed
from genroute.providers.base import DeploymentSpec
from genroute.providers.drops import Drops
from genroute.providers.openai import translate
from genroute.providers.openai.errors import map_error
from genroute.providers.openai.prefixes import SERVERS, endpoint
from genroute.providers.openai.provider import chat_options
from genroute.providers.registry import split_model
from genroute.wire import BatchEmbedContentsRequest, GenerateContentRequest
from tests.fakes.openai_models import model_refusal
from tests.fakes.openai_upstream import openai_rules, validation_problems

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openai"
EXTENSIONS = frozenset({"top_k", "random_seed"})
ENVIRON = {
    "AZURE_API_BASE": "https://example.openai.azure.com",
    "HOSTED_VLLM_API_BASE": "http://vllm:8000",
}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def names(pattern: str) -> list[str]:
    return sorted(p.name for p in FIXTURES.glob(pattern))


def counter_ids() -> translate.IdFactory:
    count = itertools.count(1)
    return lambda: f"call_gen{next(count)}"


def options_for(case: dict[str, Any]) -> translate.ChatOptions:
    """The options a fixture's deployment gets (`deployment`: model, params, model_info),
    as the provider computes them: the server's row and the model's facts."""
    if "options" in case:  # the translator alone, with options as given
        return translate.ChatOptions(**case["options"])
    deployment = case["deployment"]
    provider, upstream = split_model(deployment["model"])
    params = DeploymentParams(model=deployment["model"], **deployment.get("params", {}))
    info = ModelInfo(**deployment.get("model_info", {}))
    spec = DeploymentSpec(provider, upstream, params, info)
    return chat_options(spec, endpoint(SERVERS[provider], params, upstream, ENVIRON))


def assert_valid_body(body: dict[str, Any]) -> None:
    kind = "chat_stream" if body.get("stream") else "chat"
    assert validation_problems(kind, body, EXTENSIONS) == []
    assert openai_rules(body) is None


@pytest.mark.parametrize("name", names("request_*.in.json"))
def test_request_matches_golden_and_the_sdk_types(name: str) -> None:
    case = load(name)
    expected = load(name.replace(".in.json", ".out.json"))
    request = GenerateContentRequest.model_validate(case["request"])
    out = translate.to_wire(request, options_for(case), stream=case["stream"], new_id=counter_ids())
    assert out.body == expected["body"]
    assert list(out.dropped) == expected["dropped"]
    assert (out.include_thoughts, out.unwrap) == (expected["include_thoughts"], expected["unwrap"])
    assert_valid_body(out.body)
    if case.get("deployment", {}).get("model", "").startswith(("openai/", "azure/")):
        # What OpenAI itself refuses for the model (an Azure deployment: its base_model).
        base = case["deployment"].get("model_info", {}).get("base_model")
        real = (base or case["deployment"]["model"]).rsplit("/", 1)[-1]
        assert model_refusal(real, out.body) is None


@pytest.mark.parametrize("case", load("request_invalid.json"), ids=lambda c: c["name"])
def test_request_without_equivalent_is_400_naming_the_field(case: dict[str, Any]) -> None:
    request = GenerateContentRequest.model_validate(case["request"])
    with pytest.raises(InvalidRequest) as info:
        translate.to_wire(request, translate.ChatOptions(model="gpt-4o"))
    assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
    assert info.value.message.startswith(case["field"] + ":"), info.value.message


@pytest.mark.parametrize("case", load("request_invalid.json"), ids=lambda c: c["name"])
def test_drop_params_leaves_out_what_has_no_equivalent_and_refuses_the_rest(
    case: dict[str, Any],
) -> None:
    """With drop_params (LiteLLM's setting) a field whose loss changes the answer is left
    out and listed; a request that is wrong in itself is still refused."""
    request = GenerateContentRequest.model_validate(case["request"])
    options = translate.ChatOptions(model="gpt-4o", drop_params=True)
    if case["drop_params"] == "refused":
        with pytest.raises(InvalidRequest) as info:
            translate.to_wire(request, options)
        assert info.value.message.startswith(case["field"] + ":"), info.value.message
        return
    out = translate.to_wire(request, options, new_id=counter_ids())
    assert list(out.dropped) == case["drop_params"]["dropped"]
    assert case["field"] in out.dropped
    assert out.body == case["drop_params"]["body"]
    assert_valid_body(out.body)


def test_drop_params_lets_embeddings_leave_out_what_is_not_text() -> None:
    batch = BatchEmbedContentsRequest.model_validate(
        {
            "requests": [
                {
                    "content": {
                        "parts": [
                            {"inlineData": {"mimeType": "image/png", "data": "AA=="}},
                            {"text": "a"},
                        ]
                    }
                },
                {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}},
            ]
        }
    )
    dropped = Drops(drop_params=True)
    with pytest.raises(InvalidRequest, match=r"requests\[1\]\.content: no text is left to embed"):
        translate.embed_bodies(batch, "m", dropped)
    one = BatchEmbedContentsRequest(requests=batch.requests[:1])
    dropped = Drops(drop_params=True)
    assert translate.embed_bodies(one, "m", dropped) == [
        ([0], {"model": "m", "input": ["a"], "encoding_format": "float"})
    ]
    assert list(dropped) == ["requests[0].content.parts[0]"]


def test_parallel_calls_to_one_function_get_unique_ids_and_their_own_responses() -> None:
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    other = {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}
    request = GenerateContentRequest.model_validate(
        {
            "contents": [
                {"role": "user", "parts": [{"text": "weather?"}]},
                {"role": "model", "parts": [call, other]},
                {
                    "role": "user",
                    "parts": [
                        {"functionResponse": {"name": "get_weather", "response": {"output": "P"}}},
                        {"functionResponse": {"name": "get_weather", "response": {"output": "R"}}},
                    ],
                },
            ]
        }
    )
    first = translate.to_wire(request, translate.ChatOptions(model="m")).body["messages"]
    second = translate.to_wire(request, translate.ChatOptions(model="m")).body["messages"]
    ids = [c["id"] for c in first[1]["tool_calls"]]
    assert len(set(ids)) == 2 and all(re.fullmatch(r"call_[0-9a-f]{32}", i) for i in ids)
    assert [(m["tool_call_id"], m["content"]) for m in first[2:]] == list(
        zip(ids, "PR", strict=True)
    )
    assert not set(ids) & {c["id"] for c in second[1]["tool_calls"]}


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"thinkingBudget": 1}, "low"),
        ({"thinkingBudget": 1024}, "low"),
        ({"thinkingBudget": 1025}, "medium"),
        ({"thinkingBudget": 8192}, "medium"),
        ({"thinkingBudget": 24576}, "high"),
        ({"thinkingBudget": -1}, None),
        ({"thinkingBudget": 0}, None),
        ({"thinkingLevel": "MINIMAL"}, "minimal"),
        ({"thinking_level": "medium"}, "medium"),
        ({"thinkingLevel": "XHIGH", "thinkingBudget": 10}, "xhigh"),
        ({"includeThoughts": True}, None),
    ],
)
def test_thinking_config_becomes_reasoning_effort(
    thinking: dict[str, Any], effort: str | None
) -> None:
    request = GenerateContentRequest.model_validate(
        {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"thinkingConfig": thinking}}
    )
    body = translate.to_wire(request, translate.ChatOptions(model="m")).body
    assert body.get("reasoning_effort") == effort
    off = translate.to_wire(request, translate.ChatOptions(model="m", reasoning_effort=False))
    assert "reasoning_effort" not in off.body


@pytest.mark.parametrize(
    ("config", "choice", "tools"),
    [
        ({"mode": "AUTO"}, "auto", ["a", "b"]),
        ({"mode": "VALIDATED"}, "auto", ["a", "b"]),
        ({"mode": "ANY"}, "required", ["a", "b"]),
        (
            {"mode": "ANY", "allowedFunctionNames": ["b"]},
            {"type": "function", "function": {"name": "b"}},
            ["a", "b"],
        ),
        ({"mode": "NONE", "allowedFunctionNames": ["b"]}, "none", ["a", "b"]),
        ({"mode": "AUTO", "allowedFunctionNames": ["b"]}, "auto", ["b"]),
        ({}, None, ["a", "b"]),
    ],
)
def test_function_calling_modes(config: dict[str, Any], choice: Any, tools: list[str]) -> None:
    request = GenerateContentRequest.model_validate(
        {
            "contents": [{"parts": [{"text": "x"}]}],
            "tools": [{"functionDeclarations": [{"name": "a"}, {"name": "b"}]}],
            "toolConfig": {"functionCallingConfig": config},
        }
    )
    body = translate.to_wire(request, translate.ChatOptions(model="m")).body
    assert body.get("tool_choice") == choice
    assert [t["function"]["name"] for t in body["tools"]] == tools
    assert_valid_body(body)


@pytest.mark.parametrize("name", names("response_*.in.json"))
def test_response_matches_golden(name: str) -> None:
    case = load(name)
    response = translate.from_wire(
        orjson.dumps(case["body"]),
        include_thoughts=case["include_thoughts"],
        unwrap=case.get("unwrap"),
    )
    assert response.to_dict() == load(name.replace(".in.json", ".out.json"))
    usage = response.usage_metadata
    assert usage is not None and usage.total_token_count == (usage.prompt_token_count or 0) + (
        usage.candidates_token_count or 0
    ) + (usage.thoughts_token_count or 0)


def test_error_body_inside_a_200_reply_and_garbage_are_upstream_errors() -> None:
    with pytest.raises(UpstreamError) as info:
        translate.from_wire(b'{"error": {"message": "nope", "type": "server_error"}}')
    assert (info.value.code, info.value.status) == (500, "INTERNAL")
    with pytest.raises(UpstreamError) as info:
        translate.from_wire(b"<html>")
    assert info.value.code == 502
    with pytest.raises(UpstreamError):
        translate.from_wire(b'{"id": "x"}')


@pytest.mark.parametrize("name", names("error_*.json"))
def test_map_error_matches_golden(name: str) -> None:
    case = load(name)
    body = case["body"]
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
    error = map_error(case["status"], raw, case["headers"])
    assert error.to_body() == case["expected"]["body"]
    assert error.retry_after == case["expected"]["retry_after"]
    assert error.reason.value == case["expected"]["failure_reason"]
    assert error.provider == "openai"
    if error.retry_after is not None:
        assert error.headers() == {"retry-after": str(int(-(-error.retry_after // 1)))}


def test_embeddings_are_grouped_by_dimensions_and_text_only() -> None:
    batch = BatchEmbedContentsRequest.model_validate(
        {
            "requests": [
                {"content": {"parts": [{"text": "a"}, {"text": "b"}]}, "outputDimensionality": 8},
                {"content": {"parts": [{"text": "c"}]}, "taskType": "RETRIEVAL_QUERY"},
                {"content": {"parts": [{"text": "d"}]}, "outputDimensionality": 8},
            ]
        }
    )
    dropped = Drops()
    bodies = translate.embed_bodies(batch, "text-embedding-3-small", dropped)
    assert bodies == [
        (
            [0, 2],
            {
                "model": "text-embedding-3-small",
                "input": ["a\nb", "d"],
                "encoding_format": "float",
                "dimensions": 8,
            },
        ),
        ([1], {"model": "text-embedding-3-small", "input": ["c"], "encoding_format": "float"}),
    ]
    assert list(dropped) == ["taskType/title"]
    for _, body in bodies:
        assert validation_problems("embeddings", body) == []
    reply = {
        "data": [{"index": 1, "embedding": [2.0]}, {"index": 0, "embedding": [1]}],
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    }
    parsed = translate.embeddings_from_wire(orjson.dumps(reply), 2)
    assert (parsed.vectors, parsed.input_tokens) == ([[1.0], [2.0]], 4)
    with pytest.raises(UpstreamMalformed):
        translate.embeddings_from_wire(orjson.dumps(reply), 3)
    image = BatchEmbedContentsRequest.model_validate(
        {
            "requests": [
                {"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "AA=="}}]}}
            ]
        }
    )
    with pytest.raises(InvalidRequest, match=r"requests\[0\]\.content\.parts\[0\]"):
        translate.embed_bodies(image, "m", Drops())


def test_the_validator_catches_what_openai_would_refuse() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "assistant", "content": "x", "reasoning_content": "y"}],
        "max_output_tokens": 5,
    }
    problems = validation_problems("chat", body)
    assert problems == [
        "messages[0].reasoning_content: unknown field",
        "max_output_tokens: unknown field",
    ]
    bad_order = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "a", "content": "y"},
        ],
    }
    assert "must be a response" in (openai_rules(bad_order) or "")


def test_a_wrapped_root_keeps_its_definitions_at_the_root() -> None:
    schema = {
        "type": "array",
        "items": {"$ref": "#/$defs/Recipe"},
        "$defs": {"Recipe": {"type": "object", "properties": {"name": {"type": "string"}}}},
    }
    request = GenerateContentRequest.model_validate(
        {
            "contents": [{"parts": [{"text": "recipes"}]}],
            "generationConfig": {
                "responseMimeType": "application/json",
                "responseJsonSchema": schema,
            },
        }
    )
    out = translate.to_wire(request, translate.ChatOptions(model="m"))
    wrapped = out.body["response_format"]["json_schema"]["schema"]
    assert out.unwrap == "value"
    assert wrapped["properties"]["value"] == {"type": "array", "items": {"$ref": "#/$defs/Recipe"}}
    assert wrapped["$defs"] == schema["$defs"]
    answer = translate.from_wire(
        orjson.dumps({"choices": [{"message": {"content": '{"value": [{"name": "Soup"}]}'}}]}),
        unwrap=out.unwrap,
    )
    assert answer.text == '[{"name":"Soup"}]'
