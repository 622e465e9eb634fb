"""Prompt-cache breakpoints for a cached content put in front of a request: where the
translator puts `cache_control`, and that Anthropic (the fake's rules and its SDK's types)
takes the bodies."""

from __future__ import annotations

import json
from typing import Any

from genroute.config import DeploymentParams, ModelInfo
from genroute.providers.anthropic import translate
from genroute.providers.anthropic.caching import EPHEMERAL
from genroute.providers.anthropic.profile import profile_for
from genroute.providers.anthropic.thinking import encode_signature
from genroute.providers.anthropic.tools import JSON_TOOL
from genroute.providers.base import DeploymentSpec
from genroute.wire import GenerateContentRequest
from tests.fakes.anthropic_upstream import rule_problems, sdk_problems, thinking
from tests.fakes.prompt_caches import AnthropicPromptCache, cache_control_problems

PROFILE = profile_for(
    DeploymentSpec(
        "anthropic",
        "claude-sonnet-4-5",
        DeploymentParams(model="anthropic/claude-sonnet-4-5"),
        ModelInfo(),
    )
)
TOOL = {"functionDeclarations": [{"name": "lookup", "description": "Look up a word"}]}


def request(cached: int | None, contents: list[dict[str, Any]], **extra: Any) -> Any:
    made = GenerateContentRequest.model_validate({"contents": contents, **extra})
    made.set_private("_cached_prefix", cached)
    return made


def body_of(made: GenerateContentRequest) -> dict[str, Any]:
    body = translate.to_wire(made, PROFILE).body
    checked = json.loads(json.dumps(body))
    assert not (sdk_problems(checked, "create") or rule_problems(checked)), checked
    assert not cache_control_problems(checked)
    return body


def marked(body: dict[str, Any]) -> list[str]:
    """Where the breakpoints are: tools[i], system[i], messages[i].content[j]."""
    found = [f"tools[{i}]" for i, t in enumerate(body.get("tools") or []) if "cache_control" in t]
    found += [
        f"system[{i}]" for i, b in enumerate(body.get("system") or []) if "cache_control" in b
    ]
    for i, message in enumerate(body["messages"]):
        found += [
            f"messages[{i}].content[{j}]"
            for j, block in enumerate(message["content"])
            if "cache_control" in block
        ]
    return found


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def model(text: str) -> dict[str, Any]:
    return {"role": "model", "parts": [{"text": text}]}


def test_the_end_of_each_part_of_the_cached_prefix_is_a_breakpoint() -> None:
    made = request(
        2,
        [user("the handbook"), model("noted"), user("what does it say?")],
        systemInstruction={"parts": [{"text": "Be exact."}, {"text": "Cite pages."}]},
        tools=[TOOL],
    )
    body = body_of(made)
    assert marked(body) == ["tools[0]", "system[1]", "messages[1].content[0]"]
    assert body["tools"][0]["cache_control"] == EPHEMERAL == {"type": "ephemeral"}


def test_no_cached_content_no_breakpoint() -> None:
    made = request(None, [user("the handbook"), model("noted"), user("what?")], tools=[TOOL])
    assert marked(body_of(made)) == []


def test_a_cached_turn_merged_with_the_calls_first_turn() -> None:
    # The cache ends with a user turn and so does the call's first one: one message, whose
    # first block (the cached one) is the breakpoint.
    body = body_of(request(1, [user("the handbook"), user("summarise it")]))
    assert len(body["messages"]) == 1
    assert marked(body) == ["messages[0].content[0]"]


def test_the_json_output_tool_is_not_part_of_the_prefix() -> None:
    # A model without structured outputs answers JSON through a tool genroute appends,
    # which depends on the call's own generationConfig: the cached tool is the breakpoint.
    no_schema = profile_for(
        DeploymentSpec(
            "anthropic",
            "claude-sonnet-4-5",
            DeploymentParams(model="anthropic/claude-sonnet-4-5"),
            ModelInfo(supports_response_schema=False),
        )
    )
    made = request(
        1,
        [user("the handbook"), user("answer as JSON")],
        tools=[TOOL],
        generationConfig={
            "responseMimeType": "application/json",
            "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}},
        },
    )
    body = translate.to_wire(made, no_schema).body
    assert [t["name"] for t in body["tools"]] == ["lookup", JSON_TOOL]
    assert marked(body) == ["tools[0]", "messages[0].content[0]"]


def test_a_thinking_block_is_not_a_breakpoint() -> None:
    signed = encode_signature([thinking("planning")])
    answer = {"role": "model", "parts": [{"text": "noted", "thoughtSignature": signed}]}
    made = request(2, [user("the handbook"), answer, user("go on")])
    body = body_of(made)
    kinds = [b["type"] for b in body["messages"][1]["content"]]
    assert kinds[0] == "thinking"
    assert marked(body) == [f"messages[1].content[{kinds.index('text')}]"]


def test_the_fake_caches_a_marked_prefix_and_reads_it_back() -> None:
    long = " ".join(["policy"] * 1500)
    cache = AnthropicPromptCache()
    bodies = [
        json.loads(json.dumps(body_of(request(1, [user(long), user(question)]))))
        for question in ("first question?", "second question?")
    ]
    first, second = (cache.usage("key", body) for body in bodies)
    assert first["cache_creation_input_tokens"] == 1500 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == 1500
    assert second["cache_creation_input_tokens"] == 0 and second["input_tokens"] == 2
    # Five breakpoints are refused, as Anthropic refuses them.
    too_many = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"t{i}", "cache_control": {"type": "ephemeral"}}
                    for i in range(5)
                ],
            }
        ]
    }
    assert cache_control_problems(too_many) == [
        "A maximum of 4 blocks with cache_control may be provided. Found 5."
    ]
