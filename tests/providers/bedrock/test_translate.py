"""Golden fixtures for the Bedrock Converse translation, both directions, plus the round
trip of reasoning blocks and tool ids through a Gemini client's history.

Every request body is checked against botocore's service model for bedrock-runtime
(`Converse` / `CountTokens` input shapes: types, required and unknown members, unions,
enums, lengths, ranges, patterns, base64) and against the Converse rules the fake Bedrock
enforces; every reply fixture against the `Converse` output shape.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from genroute.errors import InvalidRequest
from genroute.providers.anthropic.thinking import blocks_from_signature, encode_signature
from genroute.providers.bedrock import translate
from genroute.providers.bedrock.errors import map_error
from genroute.wire import CountTokensRequest, GenerateContentRequest
from tests.fakes.bedrock_upstream import (
    input_shape,
    output_shape,
    reasoning,
    redacted,
    rule_problems,
    shape_problems,
    text,
    tool_use,
)
from tests.providers.bedrock.golden import (
    FIXTURES,
    SONNET,
    context,
    counter_ids,
    expect,
    load,
    names,
    profile,
)


def request_body(case: dict[str, Any]) -> translate.Prepared:
    request = GenerateContentRequest.model_validate(case["request"])
    return translate.to_wire(request, profile(case), new_id=counter_ids())


def problems(body: dict[str, Any], model: str = SONNET) -> list[str]:
    return shape_problems(body, input_shape("Converse")) + rule_problems(body, model)


@pytest.mark.parametrize("name", names("request"))
def test_request_matches_golden_and_the_service_model(name: str) -> None:
    case = load(FIXTURES / f"{name}.in.json")
    prepared = request_body(case)
    ctx = prepared.context
    actual = {
        "body": prepared.body,
        "context": {"include_thoughts": ctx.include_thoughts, "json_tool": ctx.json_tool}
        | {"json_wrapped": ctx.json_wrapped},
    }
    assert actual == expect(name, actual)
    assert problems(prepared.body, case.get("model", SONNET)) == []
    assert prepared.dropped == ()


@pytest.mark.parametrize("name", names("count"))
def test_count_tokens_body_matches_golden_and_the_service_model(name: str) -> None:
    case = load(FIXTURES / f"{name}.in.json")
    request = CountTokensRequest.model_validate(case["request"])
    body = translate.count_tokens_body(request, profile(case), new_id=counter_ids())
    assert body == expect(name, body)
    assert shape_problems(body, input_shape("CountTokens")) == []
    assert rule_problems(body["input"]["converse"]) == []


@pytest.mark.parametrize("name", names("reject", ".json"))
def test_unsupported_fields_are_a_400_naming_them(name: str) -> None:
    case = load(FIXTURES / f"{name}.json")
    with pytest.raises(InvalidRequest) as info:
        request_body(case)
    assert case["error"] in info.value.message
    assert info.value.code == 400


@pytest.mark.parametrize("name", names("reject", ".json"))
def test_drop_params_leaves_out_what_has_no_equivalent_and_refuses_the_rest(name: str) -> None:
    """With drop_params a field whose loss changes the answer is left out and listed; a
    request wrong in itself is still refused. `dropped_<name>` holds the body sent."""
    case = load(FIXTURES / f"{name}.json")
    case = {**case, "params": {**case.get("params", {}), "drop_params": True}}
    if case["drop_params"] == "refused":
        with pytest.raises(InvalidRequest) as info:
            request_body(case)
        assert case["error"] in info.value.message
        return
    prepared = request_body(case)
    assert list(prepared.dropped) == case["drop_params"]["dropped"]
    assert prepared.body == expect(name.replace("reject_", "dropped_", 1), prepared.body)
    assert problems(prepared.body, case.get("model", SONNET)) == []


@pytest.mark.parametrize("name", names("response"))
def test_response_matches_golden(name: str) -> None:
    case = load(FIXTURES / f"{name}.in.json")
    if "future" not in case:  # else: a value the service model does not list yet
        assert shape_problems(case["reply"], output_shape("Converse")) == []
    response = translate.from_wire(orjson.dumps(case["reply"]), context(case), "req-1")
    actual = response.to_dict()
    assert actual == expect(name, actual)


@pytest.mark.parametrize("name", names("error", ".json"))
def test_map_error_matches_golden(name: str) -> None:
    case = load(FIXTURES / f"{name}.json")
    body = case["body"]
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
    error = map_error(case["status"], raw, case["headers"])
    expected = case["expected"]
    assert (error.code, error.status, error.retry_after) == (
        expected["code"],
        expected["status"],
        expected["retry_after"],
    )
    assert error.provider == "bedrock" and error.reason.value == expected["failure_reason"]
    info = error.details[0]
    assert info["reason"] == expected["reason"] and info["domain"] == "bedrock.amazonaws.com"
    if request_id := case["headers"].get("x-amzn-RequestId"):
        assert info["metadata"]["requestId"] == request_id
    if isinstance(body, dict):
        assert error.message == (body.get("message") or body.get("Message"))
    violations = [d for d in error.details if d["@type"].endswith("BadRequest")]
    fields = [v["field"] for d in violations for v in d["fieldViolations"]]
    assert fields == expected.get("fields", [])
    if expected["retry_after"] is not None:
        assert error.to_body()["error"]["details"][-1]["retryDelay"] == "{:g}s".format(
            expected["retry_after"]
        )


# -- round trips through a Gemini client's history ------------------------------------------


BLOCKS = [
    reasoning("Two cities, so two calls."),
    redacted("x"),
    text("Checking both."),
    tool_use("get_weather", {"city": "Paris"}, "tooluse_a"),
    tool_use("get_weather", {"city": "Rome"}, "tooluse_b"),
]


def _reply_parts(include: bool, blocks: list[dict[str, Any]] = BLOCKS) -> list[dict[str, Any]]:
    reply = {
        "output": {"message": {"role": "assistant", "content": blocks}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 10, "outputTokens": 20, "totalTokens": 30},
        "metrics": {"latencyMs": 1},
    }
    ctx = translate.ReplyContext(include_thoughts=include)
    response = translate.from_wire(orjson.dumps(reply), ctx).to_dict()
    parts: list[dict[str, Any]] = response["candidates"][0]["content"]["parts"]
    return parts


def _history(parts: list[dict[str, Any]], budget: int = 2048) -> dict[str, Any]:
    responses = [
        {"id": "tooluse_a", "name": "get_weather", "response": {"output": "sunny"}},
        {"id": "tooluse_b", "name": "get_weather", "response": {"output": "rainy"}},
    ]
    return {
        "request": {
            "contents": [
                {"role": "user", "parts": [{"text": "weather in Paris and Rome?"}]},
                {"role": "model", "parts": parts},
                {"role": "user", "parts": [{"functionResponse": r} for r in responses]},
            ],
            "tools": [{"functionDeclarations": [{"name": "get_weather"}]}],
            "generationConfig": {"thinkingConfig": {"thinkingBudget": budget}},
        }
    }


@pytest.mark.parametrize(
    "style", ["full history", "thoughts dropped (gemini-cli)", "only call signatures"]
)
@pytest.mark.parametrize("include", [True, False])
def test_reasoning_blocks_survive_the_client_round_trip(style: str, include: bool) -> None:
    parts = _reply_parts(include)
    assert any(p.get("thought") for p in parts) is include
    if style != "full history":
        parts = [p for p in parts if not p.get("thought")]
    if style == "only call signatures":
        parts = [{k: v for k, v in p.items() if k != "thoughtSignature"} if "text" in p else p
                 for p in parts]  # fmt: skip
    body = request_body(_history(parts)).body
    assert body["messages"][1]["content"] == BLOCKS
    assert body["additionalModelRequestFields"] == {
        "reasoning_config": {"type": "enabled", "budget_tokens": 2048}
    }
    results = [b["toolResult"]["toolUseId"] for b in body["messages"][2]["content"]]
    assert results == ["tooluse_a", "tooluse_b"]
    assert problems(body) == []


def test_an_anthropic_envelope_is_read_by_bedrock_and_back() -> None:
    """The envelope is the Anthropic provider's: a tool loop that falls back between
    `anthropic/` and `bedrock/` Claude keeps its thinking."""
    anthropic_block = {"type": "thinking", "thinking": "plan", "signature": "c2ln"}
    signature = encode_signature([anthropic_block])
    parts = [{"functionCall": {"id": "tooluse_a", "name": "get_weather", "args": {}},
              "thoughtSignature": signature},
             {"functionCall": {"id": "tooluse_b", "name": "get_weather", "args": {}}}]  # fmt: skip
    body = request_body(_history(parts)).body
    first = body["messages"][1]["content"][0]
    assert first == {"reasoningContent": {"reasoningText": {"text": "plan", "signature": "c2ln"}}}
    back = _reply_parts(False, [reasoning("plan"), tool_use("f", {}, "t")])[0]
    assert blocks_from_signature(back["thoughtSignature"]) == [
        {"type": "thinking", "thinking": "plan", "signature": json.loads(
            json.dumps(reasoning("plan")["reasoningContent"]["reasoningText"]["signature"]))}
    ]  # fmt: skip


def test_tool_ids_are_unique_per_call_and_results_map_back() -> None:
    case = load(FIXTURES / "request_gemini_cli_made_up_ids.in.json")
    body = request_body(case).body
    calls = [b["toolUse"]["toolUseId"] for b in body["messages"][1]["content"]]
    results = [b["toolResult"]["toolUseId"] for b in body["messages"][2]["content"]]
    assert len(set(calls)) == 2 and results == calls


def test_reasoning_from_claude_is_not_sent_to_other_models() -> None:
    parts = [p for p in _reply_parts(False) if not p.get("thought")]
    case = {**_history(parts), "model": "amazon.nova-pro-v1:0"}
    body = request_body(case).body
    kinds = [next(iter(b)) for b in body["messages"][1]["content"]]
    assert kinds == ["text", "toolUse", "toolUse"]
    assert "additionalModelRequestFields" not in body
    assert problems(body, "amazon.nova-pro-v1:0") == []


def test_without_drop_params_nothing_is_listed_as_dropped() -> None:
    assert request_body(load(FIXTURES / "request_basic_text.in.json")).dropped == ()
