"""Golden fixtures for the Anthropic translation, both directions, plus the round trip of
thinking blocks and tool ids through a Gemini client's history.

Every request body is checked against the official `anthropic` SDK types (unknown keys
included) and against the multi-turn rules the fake Anthropic server enforces.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from genroute.errors import InvalidRequest
from genroute.providers.anthropic import translate
from genroute.providers.anthropic.errors import map_error
from genroute.providers.anthropic.profile import (
    DEFAULT_THINKING_BUDGET,
    effort_for_budget,
    parse_family,
)
from genroute.providers.anthropic.thinking import blocks_from_signature, encode_signature
from genroute.wire import CountTokensRequest, GenerateContentRequest
from tests.fakes.anthropic_upstream import redacted, rule_problems, sdk_problems, thinking
from tests.providers.anthropic.golden import (
    FIXTURES,
    context,
    counter_ids,
    expect,
    load,
    names,
    profile,
)


def request_body(case: dict[str, Any]) -> translate.Prepared:
    request = GenerateContentRequest.model_validate(case["request"])
    return translate.to_wire(
        request, profile(case), stream=case.get("stream", False), new_id=counter_ids()
    )


@pytest.mark.parametrize("name", names("request"))
def test_request_matches_golden_and_the_sdk_types(name: str) -> None:
    case = load(FIXTURES / f"{name}.in.json")
    prepared = request_body(case)
    actual = {"body": prepared.body, "context": _context_dict(prepared.context)}
    assert actual == expect(name, actual)
    kind = "stream" if prepared.body.get("stream") else "create"
    assert sdk_problems(prepared.body, kind) == []
    assert rule_problems(prepared.body) == []


def _context_dict(ctx: translate.ReplyContext) -> dict[str, Any]:
    return {"include_thoughts": ctx.include_thoughts, "json_tool": ctx.json_tool} | {
        "json_wrapped": ctx.json_wrapped
    }


@pytest.mark.parametrize("name", names("count"))
def test_count_tokens_body_matches_golden(name: str) -> None:
    case = load(FIXTURES / f"{name}.in.json")
    request = CountTokensRequest.model_validate(case["request"])
    body = translate.count_tokens_body(request, profile(case), new_id=counter_ids())
    assert body == expect(name, body)
    assert sdk_problems(body, "count") == []


@pytest.mark.parametrize("name", names("reject", ".json"))
def test_unsupported_fields_are_a_400_naming_them(name: str) -> None:
    case = load(FIXTURES / f"{name}.json")
    with pytest.raises(InvalidRequest) as info:
        request_body(case)
    assert case["error"] in info.value.message
    assert info.value.code == 400


@pytest.mark.parametrize("name", names("reject", ".json"))
def test_drop_params_leaves_out_what_has_no_equivalent_and_refuses_the_rest(name: str) -> None:
    """With drop_params (LiteLLM's setting) a field whose loss changes the answer is left
    out and listed; a request that is wrong in itself is still refused. `dropped_<name>`
    holds the body sent instead."""
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
    assert sdk_problems(prepared.body, "create") == []
    assert rule_problems(prepared.body) == []


def test_without_drop_params_nothing_is_listed_as_dropped() -> None:
    case = load(FIXTURES / "request_basic_text.in.json")
    assert request_body(case).dropped == ()


@pytest.mark.parametrize("name", names("response"))
def test_response_matches_golden(name: str) -> None:
    case = load(FIXTURES / f"{name}.in.json")
    # The SDK is imported here, not when collecting: ~1.1 s of CPU every xdist worker
    # would otherwise pay.
    from anthropic.types import Message

    Message.model_validate(case["message"])  # the fixture is a real Message
    response = translate.from_wire(orjson.dumps(case["message"]), context(case))
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
    assert error.provider == "anthropic"
    assert error.details[0]["reason"] == expected["reason"]
    assert error.reason.value == expected["failure_reason"]
    if isinstance(body, dict):
        assert error.message == body["error"]["message"]
    if expected["retry_after"] is not None:
        assert error.to_body()["error"]["details"][-1]["@type"].endswith("RetryInfo")


# -- round trips through a Gemini client's history ----------------------------------------


def _history(model_turn: dict[str, Any], responses: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "contents": [
            {"role": "user", "parts": [{"text": "weather in Paris and Rome?"}]},
            model_turn,
            {"role": "user", "parts": [{"functionResponse": r} for r in responses]},
        ],
        "tools": [{"functionDeclarations": [{"name": "get_weather"}]}],
        "generationConfig": {"thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": True}},
    }


BLOCKS = [
    thinking("Two cities, so two calls."),
    redacted("x"),
    {"type": "text", "text": "Checking both."},
    {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
    {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Rome"}},
]


def _reply_parts(include: bool) -> list[dict[str, Any]]:
    message = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": BLOCKS,
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 20},
    }
    ctx = translate.ReplyContext(include_thoughts=include)
    response = translate.from_wire(orjson.dumps(message), ctx).to_dict()
    parts: list[dict[str, Any]] = response["candidates"][0]["content"]["parts"]
    return parts


@pytest.mark.parametrize(
    "style", ["full history", "thoughts dropped (gemini-cli)", "only call signatures"]
)
@pytest.mark.parametrize("include", [True, False])
def test_thinking_blocks_survive_the_client_round_trip(style: str, include: bool) -> None:
    parts = _reply_parts(include)
    assert any(p.get("thought") for p in parts) is include
    if style != "full history":
        parts = [p for p in parts if not p.get("thought")]
    if style == "only call signatures":
        parts = [{k: v for k, v in p.items() if k != "thoughtSignature"} if "text" in p else p
                 for p in parts]  # fmt: skip
    responses = [
        {"id": "toolu_a", "name": "get_weather", "response": {"output": "sunny"}},
        {"id": "toolu_b", "name": "get_weather", "response": {"output": "rainy"}},
    ]
    case = {"request": _history({"role": "model", "parts": parts}, responses)}
    body = request_body(case).body
    assistant = body["messages"][1]["content"]
    assert assistant == BLOCKS
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert [b["tool_use_id"] for b in body["messages"][2]["content"]] == ["toolu_a", "toolu_b"]
    assert rule_problems(body) == [] and sdk_problems(body, "create") == []


def test_python_sdk_urlsafe_signatures_are_read() -> None:
    envelope = encode_signature([thinking("+/+/ needs both alphabets ///???>>>")])
    urlsafe = envelope.replace("+", "-").replace("/", "_").rstrip("=")
    assert blocks_from_signature(urlsafe) == blocks_from_signature(envelope)
    assert blocks_from_signature("c2ln") is None  # a Gemini signature is not ours


def test_responses_without_ids_map_back_by_name_in_call_order() -> None:
    model_turn = {
        "role": "model",
        "parts": [
            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
        ],
    }
    responses = [
        {"name": "get_weather", "response": {"output": "sunny"}},
        {"name": "get_weather", "response": {"output": "rainy"}},
    ]
    body = request_body({"request": _history(model_turn, responses)}).body
    calls = body["messages"][1]["content"]
    results = body["messages"][2]["content"]
    assert [c["id"] for c in calls] == ["call_1", "call_2"]
    assert [(r["tool_use_id"], r["content"]) for r in results] == [
        ("call_1", "sunny"),
        ("call_2", "rainy"),
    ]
    # Thinking needs the blocks of the call being answered; without them it is left off.
    assert "thinking" not in body


def test_real_ids_are_unique_per_call() -> None:
    request = GenerateContentRequest.model_validate(
        _history(
            {"role": "model", "parts": [{"functionCall": {"name": "get_weather"}}] * 3},
            [{"name": "get_weather", "response": {}}] * 3,
        )
    )
    body = translate.to_wire(request, profile({})).body
    ids = [b["id"] for b in body["messages"][1]["content"]]
    assert len(set(ids)) == 3 and all(i.startswith("call_") for i in ids)


# -- model family profile ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "tier", "version"),
    [
        ("claude-sonnet-4-5-20250929", "sonnet", (4, 5)),
        ("claude-opus-4-20250514", "opus", (4, 0)),
        ("claude-opus-4-1", "opus", (4, 1)),
        ("claude-3-7-sonnet-latest", "sonnet", (3, 7)),
        ("claude-3-5-haiku-20241022", "haiku", (3, 5)),
        ("claude-3-opus-20240229", "opus", (3, 0)),
        ("us.anthropic/claude-haiku-4-5", "haiku", (4, 5)),
    ],
)
def test_family_is_parsed_from_the_model_id(
    model: str, tier: str, version: tuple[int, int]
) -> None:
    family = parse_family(model)
    assert family is not None and (family.tier, family.version) == (tier, version)


@pytest.mark.parametrize(
    ("case", "max_tokens", "thinking", "structured"),
    [
        ({"model": "claude-sonnet-4-5"}, 64000, "budget", True),
        ({"model": "claude-opus-4-1-20250805"}, 32000, "budget", True),
        ({"model": "claude-opus-4-7"}, 64000, "adaptive", True),
        ({"model": "claude-3-5-haiku-latest"}, 8192, "none", False),
        ({"model": "my-proxy-model"}, 4096, "budget", False),
        ({"model": "claude-sonnet-4-5", "params": {"max_tokens": 1000}}, 1000, "budget", True),
        ({"model": "x", "model_info": {"max_output_tokens": 2000}}, 2000, "budget", False),
        ({"model": "x", "model_info": {"supports_reasoning": False}}, 4096, "none", False),
        ({"model": "x", "model_info": {"supports_response_schema": True}}, 4096, "budget", True),
    ],
)
def test_profile_defaults_and_overrides(
    case: dict[str, Any], max_tokens: int, thinking: str, structured: bool
) -> None:
    found = profile(case)
    assert (found.max_tokens, found.thinking, found.structured_outputs) == (
        max_tokens,
        thinking,
        structured,
    )


def test_budget_to_effort_table() -> None:
    assert [effort_for_budget(b) for b in (-1, 1024, 8192, 20000, 60000)] == [
        None,
        "low",
        "medium",
        "high",
        "xhigh",
    ]
    assert DEFAULT_THINKING_BUDGET == 8192


def test_every_fixture_is_valid_json_and_used() -> None:
    used = {f"{n}.in.json" for p in ("request", "count", "response") for n in names(p)}
    used |= {f"{n}.out.json" for p in ("request", "count", "response", "stream") for n in names(p)}
    used |= {f"{n}.in.json" for n in names("stream")}
    used |= {f"{n}.json" for p in ("reject", "error") for n in names(p, ".json")}
    used |= {
        f"{n.replace('reject_', 'dropped_', 1)}.out.json"
        for n in names("reject", ".json")
        if load(FIXTURES / f"{n}.json")["drop_params"] != "refused"
    }
    for path in FIXTURES.iterdir():
        json.loads(path.read_text())
        assert path.name in used, f"{path.name} is not driven by any test"
