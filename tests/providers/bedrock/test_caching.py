"""Bedrock prompt-cache checkpoints for a cached content put in front of a request: where
the translator puts `cachePoint` blocks, on which models, and that the fake Bedrock (the
service model and its rules) takes the bodies and plays the cache."""

from __future__ import annotations

import json
from typing import Any

from genroute.providers.bedrock import translate
from genroute.providers.bedrock.profile import BedrockProfile, supports_prompt_cache
from genroute.providers.bedrock.tools import JSON_TOOL
from genroute.wire import GenerateContentRequest
from tests.fakes.bedrock_upstream import input_shape, rule_problems, shape_problems, words
from tests.fakes.prompt_caches import BedrockPromptCache, cache_point_problems
from tests.providers.bedrock.golden import SONNET, profile

NOVA = "us.amazon.nova-pro-v1:0"
TOOL = {"functionDeclarations": [{"name": "lookup", "description": "Look up a word"}]}
POINT = {"cachePoint": {"type": "default"}}


def request(cached: int | None, contents: list[dict[str, Any]], **extra: Any) -> Any:
    made = GenerateContentRequest.model_validate({"contents": contents, **extra})
    made.set_private("_cached_prefix", cached)
    return made


def body_of(made: GenerateContentRequest, model: str = SONNET) -> dict[str, Any]:
    body = translate.to_wire(made, profile({"model": model})).body
    checked = json.loads(json.dumps(body))
    assert not shape_problems(checked, input_shape("Converse")), checked
    assert not rule_problems(checked, model), checked
    assert not cache_point_problems(checked, model), checked
    return body


def marked(body: dict[str, Any]) -> list[str]:
    """Where the checkpoints are: tools[i], system[i], messages[i].content[j]."""
    found = [
        f"tools[{i}]"
        for i, t in enumerate((body.get("toolConfig") or {}).get("tools") or [])
        if t == POINT
    ]
    found += [f"system[{i}]" for i, b in enumerate(body.get("system") or []) if b == POINT]
    for i, message in enumerate(body["messages"]):
        found += [
            f"messages[{i}].content[{j}]" for j, b in enumerate(message["content"]) if b == POINT
        ]
    return found


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "parts": [{"text": text}]}


def model(text: str) -> dict[str, Any]:
    return {"role": "model", "parts": [{"text": text}]}


def test_a_checkpoint_follows_each_part_of_the_cached_prefix() -> None:
    made = request(
        2,
        [user("the book"), model("read it"), user("what is chapter 2 about?")],
        systemInstruction={"parts": [{"text": "You are a librarian."}]},
        tools=[TOOL],
    )
    body = body_of(made)
    assert marked(body) == ["tools[1]", "system[1]", "messages[1].content[1]"]
    assert body["messages"][2]["content"] == [{"text": "what is chapter 2 about?"}]


def test_a_cached_turn_merged_with_the_call_s_own_gets_its_checkpoint_in_the_middle() -> None:
    made = request(1, [user("the whole book"), user("and a question")])
    body = body_of(made)
    assert body["messages"][0]["content"] == [
        {"text": "the whole book"},
        POINT,
        {"text": "and a question"},
    ]


def test_the_json_output_tool_stays_after_the_checkpoint() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    config = {"responseMimeType": "application/json", "responseSchema": schema}
    made = request(1, [user("cached"), user("go")], tools=[TOOL], generationConfig=config)
    body = body_of(made, "us.anthropic.claude-3-5-haiku-20241022-v1:0")
    names = [
        (t.get("toolSpec") or {}).get("name", "cachePoint") for t in body["toolConfig"]["tools"]
    ]
    assert names == ["lookup", "cachePoint", JSON_TOOL]


def test_no_checkpoint_without_a_cached_content_or_on_a_model_without_prompt_caching() -> None:
    contents = [user("the book"), user("a question")]
    assert marked(body_of(request(None, contents, tools=[TOOL]))) == []
    for old in ("anthropic.claude-3-5-sonnet-20240620-v1:0", "meta.llama3-70b-instruct-v1:0"):
        assert marked(body_of(request(1, contents, tools=[TOOL]), old)) == []


def test_nova_takes_checkpoints_in_system_and_messages_but_not_tools() -> None:
    made = request(1, [user("cached"), user("go")], tools=[TOOL],
                   systemInstruction={"parts": [{"text": "Be brief."}]})  # fmt: skip
    assert marked(body_of(made, NOVA)) == ["system[1]", "messages[0].content[1]"]


def test_which_models_support_prompt_caching() -> None:
    assert supports_prompt_cache(SONNET) == (True, True)
    assert supports_prompt_cache("anthropic.claude-3-7-sonnet-20250219-v1:0") == (True, True)
    assert supports_prompt_cache("global.anthropic.claude-opus-4-1-20250805-v1:0") == (True, True)
    assert supports_prompt_cache("amazon.nova-lite-v1:0") == (True, False)
    assert supports_prompt_cache("anthropic.claude-3-haiku-20240307-v1:0") == (False, False)
    assert not BedrockProfile("x").prompt_cache


def test_the_fake_refuses_what_bedrock_refuses() -> None:
    body = {"messages": [{"role": "user", "content": [{"text": "a"}, POINT, {"text": "b"}, POINT]}]}
    assert cache_point_problems(body, SONNET) == []
    assert cache_point_problems(body, "anthropic.claude-3-haiku-20240307-v1:0")
    many = {"system": [{"text": "s"}, POINT], "messages": [
        {"role": "user", "content": [{"text": w} if i % 2 == 0 else POINT for i, w in enumerate("abcdefgh")]}
    ]}  # fmt: skip
    assert any("maximum of 4" in p for p in cache_point_problems(many, SONNET))
    first = {"messages": [{"role": "user", "content": [POINT, {"text": "a"}]}]}
    assert cache_point_problems(first, SONNET)
    tools = {"toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}, POINT]},
             "messages": [{"role": "user", "content": [{"text": "a"}]}]}  # fmt: skip
    assert cache_point_problems(tools, SONNET) == []
    assert cache_point_problems(tools, NOVA)
    bad = {
        "messages": [{"role": "user", "content": [{"text": "a"}, {"cachePoint": {"type": "x"}}]}]
    }
    assert shape_problems(bad, input_shape("Converse"))


def test_the_fake_writes_a_prefix_then_reads_it() -> None:
    book = " ".join(["word"] * 1500)
    made = request(1, [user(book), user("first question")])
    body = json.loads(json.dumps(body_of(made)))
    cache = BedrockPromptCache()
    first = cache.usage("k", SONNET, body, words(body))
    assert first == {"inputTokens": 2, "cacheReadInputTokens": 0, "cacheWriteInputTokens": 1500}
    body["messages"][0]["content"][-1] = {"text": "second one"}
    second = cache.usage("k", SONNET, body, words(body))
    assert second == {"inputTokens": 2, "cacheReadInputTokens": 1500, "cacheWriteInputTokens": 0}
    short = json.loads(json.dumps(body_of(request(1, [user("short"), user("q")]))))
    assert cache.usage("k", SONNET, short, words(short))["cacheWriteInputTokens"] == 0
