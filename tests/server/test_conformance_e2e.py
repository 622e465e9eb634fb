"""End to end over every provider: google-genai → genroute (in process) → a fake upstream.

One suite for the upstream genroute passes through (Gemini) and the ones it translates to
(OpenAI, Azure OpenAI, Anthropic), in the manner of tensorzero's `generate_provider_tests!`:
a list of providers by a list of cases. Each provider is a `Target` (targets.py): a fake
upstream that speaks its wire format and refuses what the real API refuses (tests/fakes/),
a gateway in front of it serving the same model names (`chat`, `gemini-2.5-flash`,
`thinking`, `embed`, `wrong-key`), and the few things that differ between wires (how to
script a reply, where a request carries each field). `CASES` names every case and, for
each provider a case does not apply to, why: no case leaves a provider out silently.
`KNOWN_BUGS` marks the cases a bug in genroute fails today (strict xfails).

Gemini-only checks (stream framings, the lossless passthrough, the edge's routes) are in
test_gemini_e2e.py; provider-level translation over a mock transport is
tests/providers/test_conformance.py.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pydantic
import pytest
from google.genai import errors, types

from tests.conftest import InProcessGateway, genai_client
from tests.fakes.anthropic_upstream import redacted, text, thinking, tool_use
from tests.fakes.openai_upstream import DEFAULT_KEY, FakeOpenAI
from tests.server.conftest import MASTER_KEY
from tests.server.targets import (
    ALIAS,
    ANTHROPIC_KEY,
    CHAT,
    EMBED,
    GEMINI_KEY,
    JSON_TOOL,
    SONNET,
    TARGETS,
    THINKING,
    THOUGHT_SIGNATURE,
    WRONG_KEY,
    Target,
    ToolTurns,
    gemini_reply,
)

pytestmark = pytest.mark.e2e

PROVIDERS = tuple(TARGETS)

_NO_EMBEDDINGS = "Anthropic has no embeddings API (test_embeddings_are_refused)"
_HAS_EMBEDDINGS = "the provider has an embeddings API (test_embeddings)"
_NATIVE_JSON = "JSON output is native on this wire (test_json_output_with_a_schema)"

# Every case, with the providers it does not apply to and why (tensorzero's provider lists).
CASES: dict[str, dict[str, str]] = {
    "test_generate": {},
    "test_generate_and_stream_async": {},
    "test_stream": {},
    "test_stream_is_sse_without_nulls_or_empty_parts": {},
    "test_stream_without_alt_is_a_json_array": {},
    "test_parallel_calls_to_one_function_map_back": {},
    "test_streamed_parallel_calls_arrive_whole": {},
    "test_thinking": {},
    "test_thinking_across_a_tool_loop": {},
    "test_thinking_tool_loop_gemini_cli_style": {},
    "test_json_output_with_a_schema": {},
    "test_json_output_through_a_forced_tool": {
        "gemini": _NATIVE_JSON,
        "openai": _NATIVE_JSON,
        "azure": _NATIVE_JSON,
    },
    "test_image_input": {},
    "test_image_data_reaches_the_upstream_in_an_alphabet_it_decodes": {},
    "test_count_tokens": {},
    "test_embeddings": {"anthropic": _NO_EMBEDDINGS},
    "test_embeddings_are_refused": dict.fromkeys(("gemini", "openai", "azure"), _HAS_EMBEDDINGS),
    "test_rate_limit_is_429_with_retry_info": {},
    "test_server_errors": {},
    "test_mid_stream_error": {},
    "test_wrong_upstream_key": {},
    "test_a_gemini_only_tool_is_passed_through_or_refused": {},
    "test_embedded_default_serves_a_key_from_the_environment": {
        "azure": "the embedded default looks for Gemini, Anthropic and OpenAI keys only "
        "(genroute.defaults.DEFAULT_PROVIDERS)",
    },
}


# Cases that apply but fail today because of a bug in src/ (strict: fixing it fails them).
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def conformance(test: Callable[..., Any]) -> Any:
    """Run `test` once per provider, skipping (with the reason) those `CASES` excludes."""
    skip = CASES[test.__name__]  # a KeyError: the case is missing from the table

    def marks(provider: str) -> list[pytest.MarkDecorator]:
        if provider in skip:
            return [pytest.mark.skip(reason=skip[provider])]
        if bug := KNOWN_BUGS.get((test.__name__, provider)):
            return [pytest.mark.xfail(reason=bug, strict=True)]
        return []

    params = [pytest.param(p, id=p, marks=marks(p)) for p in PROVIDERS]
    return pytest.mark.parametrize("target", params, indirect=True)(test)


@pytest.fixture(scope="module")
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """A provider's fake upstream and a gateway in front of it, per module."""
    kind, make_fake = TARGETS[request.param]
    with make_fake() as upstream:
        made = kind(upstream, tmp_path_factory.mktemp(f"{request.param}-gateway"))
        try:
            yield made
        finally:
            made.stop()


@pytest.fixture(autouse=True)
def _fresh_upstream(request: pytest.FixtureRequest) -> None:
    if "target" in request.fixturenames:
        request.getfixturevalue("target").upstream.reset()


def test_the_case_table_names_every_case() -> None:
    assert all(callable(globals().get(case)) for case in CASES)
    assert all(set(skips) <= set(PROVIDERS) for skips in CASES.values())
    assert all(case in CASES and p in PROVIDERS for case, p in KNOWN_BUGS)


# -- helpers of the cases -----------------------------------------------------------------------


def camel(value: Any) -> Any:
    """JSON with every object key in lowerCamel: a Gemini upstream is sent the client's own
    JSON, and the Python SDK writes nested keys in snake_case (Google reads both)."""
    if isinstance(value, dict):
        return {pydantic.alias_generators.to_camel(k): camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def sse_chunks(raw: bytes) -> list[dict[str, Any]]:
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b""
    assert all(e.startswith(b"data: ") and b"\n" not in e for e in events[:-1])
    return [json.loads(e[6:]) for e in events[:-1]]


def parts_of(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for c in chunks for p in c["candidates"][0].get("content", {}).get("parts", [])]


def answer_text(parts: list[dict[str, Any]]) -> str:
    return "".join(p.get("text", "") for p in parts if not p.get("thought"))


WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Current weather in a city",
    parameters_json_schema={
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
)
TWO_CITIES = [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})]
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)


def weather(call: types.FunctionCall, keep_id: bool = True) -> types.Part:
    city = (call.args or {})["city"]
    response = types.FunctionResponse(name=call.name, response={"output": f"sunny in {city}"})
    if keep_id:
        response.id = call.id
    return types.Part(function_response=response)


def assert_paired(turns: ToolTurns) -> None:
    """Each result answers the call it was given for (by id, or in order without ids)."""
    assert len(turns.calls) == len(turns.results) == 2
    if all(i is None for i, _ in turns.calls):
        pairs = [
            (args, out) for (_, args), (_, out) in zip(turns.calls, turns.results, strict=True)
        ]
    else:
        ids = [i for i, _ in turns.calls]
        assert None not in ids and len(set(ids)) == 2
        by_id = dict(turns.calls)
        pairs = [(by_id[i], out) for i, out in turns.results]
    assert sorted(out for _, out in pairs) == ["sunny in Paris", "sunny in Rome"]
    assert all(out == f"sunny in {args['city']}" for args, out in pairs)


# -- generate and stream ------------------------------------------------------------------------


@conformance
@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_generate(target: Target, version: str) -> None:
    response = target.client(version).models.generate_content(
        model=CHAT,
        contents="hello there gateway",
        config=types.GenerateContentConfig(
            system_instruction=["Be brief.", "Be kind."], max_output_tokens=50, temperature=0.3
        ),
    )
    assert response.text == "Echo: hello there gateway"
    assert response.model_version == target.model and response.response_id
    usage = response.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count + (
        usage.thoughts_token_count or 0
    )
    seen = target.seen()
    assert seen.path == target.generate_path
    assert target.credential(seen.headers) == target.key
    assert MASTER_KEY not in json.dumps(seen.headers)
    body = seen.body
    if target.name == "gemini":
        assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}, {"text": "Be kind."}]
        assert body["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.3}
    elif target.name in ("openai", "azure"):
        assert body["messages"][0] == {"role": "system", "content": "Be brief.\nBe kind."}
        tokens = "max_tokens" if target.name == "openai" else "max_completion_tokens"
        assert (body[tokens], body["temperature"]) == (50, 0.3)
        assert response.response_id.startswith("chatcmpl-")
    else:
        assert body["system"] == [text("Be brief."), text("Be kind.")]
        assert (body["model"], body["max_tokens"], body["temperature"]) == (SONNET, 50, 0.3)
    if target.name == "azure":
        assert seen.query == {"api-version": "2024-10-21"}


@conformance
async def test_generate_and_stream_async(target: Target) -> None:
    sync = genai_client(target.gateway.base_url, MASTER_KEY, "v1")
    async with sync.aio as client:
        response = await client.models.generate_content(model=CHAT, contents="async hi")
        assert response.text == "Echo: async hi"
        stream = await client.models.generate_content_stream(model=CHAT, contents="async stream")
        chunks = [c async for c in stream]
    assert "".join(c.text or "" for c in chunks) == "Echo: async stream"


@conformance
def test_stream(target: Target) -> None:
    chunks = list(
        target.client().models.generate_content_stream(
            model=ALIAS, contents="one two three four five six"
        )
    )
    assert "".join(c.text or "" for c in chunks) == "Echo: one two three four five six"
    assert len(chunks) >= 3
    finishes = [c.candidates[0].finish_reason if c.candidates else None for c in chunks]
    assert finishes[-1] == types.FinishReason.STOP and not any(finishes[:-1])
    assert chunks[-1].usage_metadata and chunks[-1].usage_metadata.total_token_count
    seen = target.seen()
    if target.name == "gemini":  # Gemini counts as it goes; the passthrough keeps that
        assert seen.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
        assert seen.query == {"alt": "sse"}
    else:  # translated streams report usage once, at the end
        assert all(c.usage_metadata is None for c in chunks[:-1])
        assert seen.body["stream"] is True
    if target.name in ("openai", "azure"):
        assert seen.body["stream_options"] == {"include_usage": True}


@conformance
def test_stream_is_sse_without_nulls_or_empty_parts(target: Target) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "raw stream please"}]}]}
    status, headers, raw = target.post(f"/v1beta/models/{CHAT}:streamGenerateContent?alt=sse", body)
    assert status == 200 and headers["content-type"] == "text/event-stream"
    assert b"null" not in raw and b'"parts":[]' not in raw and b"[DONE]" not in raw
    chunks = sse_chunks(raw)
    assert len(chunks) >= 3 and answer_text(parts_of(chunks)) == "Echo: raw stream please"


@conformance
def test_stream_without_alt_is_a_json_array(target: Target) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "as an array"}]}]}
    status, headers, raw = target.post(f"/v1/models/{CHAT}:streamGenerateContent", body)
    assert status == 200 and headers["content-type"].startswith("application/json")
    chunks = json.loads(raw)
    assert isinstance(chunks, list) and answer_text(parts_of(chunks)) == "Echo: as an array"


# -- tools --------------------------------------------------------------------------------------


@conformance
@pytest.mark.parametrize("keep_ids", [True, False], ids=["ids-kept", "ids-dropped"])
def test_parallel_calls_to_one_function_map_back(target: Target, keep_ids: bool) -> None:
    client = target.client()
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])], automatic_function_calling=NO_AFC
    )
    question = types.Content(role="user", parts=[types.Part(text="Weather in Paris and Rome?")])
    scripted = target.script_calls(TWO_CITIES, None, stream=False)
    first = client.models.generate_content(model=CHAT, contents=[question], config=config)
    calls = first.function_calls or []
    assert [(c.name, c.args) for c in calls] == TWO_CITIES
    ids = [c.id for c in calls]
    assert all(ids) and len(set(ids)) == 2
    if scripted:
        assert ids == scripted  # the upstream's own ids reach the client
    assert first.candidates and first.candidates[0].content
    model_turn = first.candidates[0].content
    if keep_ids:  # answered out of order: the ids decide
        answers = [weather(c) for c in reversed(calls)]
    else:  # a client that drops ids: answers are matched by name, in order
        for part in model_turn.parts or []:
            if part.function_call:
                part.function_call.id = None
        answers = [weather(c, keep_id=False) for c in calls]
    second = client.models.generate_content(
        model=CHAT,
        contents=[question, model_turn, types.Content(role="user", parts=answers)],
        config=config,
    )
    turns = target.tool_turns(target.seen().body)
    assert_paired(turns)
    if keep_ids:
        assert [i for i, _ in turns.calls] == ids  # mapped back to the upstream's ids
    text = second.text or ""
    if target.name == "gemini":
        assert text == "Echo: [functionResponse]"
    elif target.name == "anthropic":  # the fake lists the results in the order sent
        order = ["Rome", "Paris"] if keep_ids else ["Paris", "Rome"]
        assert text == "Results: " + " | ".join(f"sunny in {city}" for city in order)
    else:
        assert text.startswith("Tool results: ") and "sunny in Paris" in text


@conformance
def test_streamed_parallel_calls_arrive_whole(target: Target) -> None:
    target.script_calls(TWO_CITIES, None, stream=True)  # OpenAI's fragments interleave
    chunks = list(
        target.client().models.generate_content_stream(
            model=CHAT,
            contents="Weather in Paris and Rome?",
            config=types.GenerateContentConfig(
                tools=[types.Tool(function_declarations=[WEATHER])],
                tool_config=types.ToolConfig(
                    function_calling_config=types.FunctionCallingConfig(mode="ANY")
                ),
            ),
        )
    )
    calls = [c for chunk in chunks for c in chunk.function_calls or []]
    assert [(c.name, c.args) for c in calls] == TWO_CITIES
    assert len({c.id for c in calls}) == 2
    body = target.seen().body
    if target.name == "gemini":
        assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    elif target.name == "anthropic":
        assert body["tool_choice"] == {"type": "any"}
    else:
        assert body["tool_choice"] == "required"


# -- thinking -----------------------------------------------------------------------------------

THINK = types.ThinkingConfig(include_thoughts=True, thinking_budget=2048)


@conformance
@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
def test_thinking(target: Target, stream: bool) -> None:
    config = types.GenerateContentConfig(temperature=0.5, thinking_config=THINK)
    client = target.client()
    if stream:
        chunks = list(
            client.models.generate_content_stream(model=THINKING, contents="hi", config=config)
        )
        contents = [c.candidates[0].content for c in chunks if c.candidates]
        parts = [p for content in contents if content for p in content.parts or []]
        usage = chunks[-1].usage_metadata
    else:
        response = client.models.generate_content(model=THINKING, contents="hi", config=config)
        assert response.candidates and response.candidates[0].content
        parts = response.candidates[0].content.parts or []
        usage = response.usage_metadata
    assert "".join(p.text or "" for p in parts if not p.thought) == "Echo: hi"
    thoughts = "".join(p.text or "" for p in parts if p.thought)
    assert usage is not None and usage.thoughts_token_count
    assert (
        usage.total_token_count
        == (usage.prompt_token_count or 0)
        + (usage.candidates_token_count or 0)
        + usage.thoughts_token_count
    )
    body = target.seen().body
    if target.name == "gemini":
        assert thoughts.startswith("**Planning a reply**")
        assert camel(body["generationConfig"]) == {
            "temperature": 0.5,
            "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 2048},
        }
    elif target.name == "anthropic":
        assert thoughts == "The last message has 1 blocks; I answer it."
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    else:  # a reasoning model: an effort, and no sampling settings
        assert thoughts == "Thinking (medium) about the reply." and usage.thoughts_token_count == 5
        assert body["reasoning_effort"] == "medium" and "temperature" not in body


PLAN = "Two cities: I will call get_weather for each."


@conformance
def test_thinking_across_a_tool_loop(target: Target) -> None:
    """The whole model turn, thoughts included, sent back as the Python SDK keeps history:
    what the upstream needs of its thinking reaches it unchanged."""
    target.script_calls(TWO_CITIES, PLAN, stream=False)
    client = target.client("v1")
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        automatic_function_calling=NO_AFC,
        thinking_config=THINK,
    )
    question = types.Content(role="user", parts=[types.Part(text="Paris and Rome?")])
    first = client.models.generate_content(model=THINKING, contents=[question], config=config)
    assert first.candidates and first.candidates[0].content
    parts = first.candidates[0].content.parts or []
    assert parts[0].thought and parts[0].text == PLAN
    calls = [p for p in parts if p.function_call]
    assert len(calls) == 2 and bool(calls[0].thought_signature) is target.signs_thoughts
    answers = [weather(c) for c in first.function_calls or []]
    second = client.models.generate_content(
        model=THINKING,
        contents=[question, first.candidates[0].content, types.Content(role="user", parts=answers)],
        config=config,
    )
    assert second.text
    body = target.seen().body
    assert_paired(target.tool_turns(body))
    if target.name == "gemini":
        model_parts = body["contents"][1]["parts"]
        assert model_parts[0] == {"text": PLAN, "thought": True}
        assert model_parts[1]["thoughtSignature"] == THOUGHT_SIGNATURE
    elif target.name == "anthropic":
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
        assistant = body["messages"][1]["content"]
        assert assistant[0] == thinking(PLAN)  # sent back unchanged, before the tool_use blocks
        assert [b["type"] for b in assistant] == ["thinking", "tool_use", "tool_use"]
        assert second.text == "Results: sunny in Paris | sunny in Rome"
    else:  # Chat Completions takes no reasoning back: the tool calls alone
        assistant = body["messages"][1]
        assert assistant["role"] == "assistant" and "reasoning_content" not in assistant


@conformance
@pytest.mark.parametrize("include_thoughts", [True, False], ids=["thoughts", "no-thoughts"])
def test_thinking_tool_loop_gemini_cli_style(target: Target, include_thoughts: bool) -> None:
    """gemini-cli streams, drops thought parts from its history and echoes thoughtSignature
    on the functionCall part only."""
    command = [("run_shell_command", {"command": "ls"})]
    hidden = redacted("cli")
    if target.name == "anthropic":  # a redacted block too, which must go back as it came
        target.upstream.script("reply", content=[thinking(PLAN), hidden, tool_use(*command[0])])
    else:
        target.script_calls(command, PLAN, stream=True, show_thought=include_thoughts)
    path = f"/v1beta/models/{THINKING}:streamGenerateContent?alt=sse"
    config = {"thinkingConfig": {"includeThoughts": include_thoughts, "thinkingBudget": 8192},
              "temperature": 1, "topP": 0.95, "topK": 64}  # fmt: skip
    tools = [{"functionDeclarations": [{"name": "run_shell_command", "parametersJsonSchema": {
        "type": "object", "properties": {"command": {"type": "string"}}}}]}]  # fmt: skip
    history: list[dict[str, Any]] = [{"role": "user", "parts": [{"text": "list files"}]}]
    status, _, raw = target.post(
        path, {"contents": history, "tools": tools, "generationConfig": config}
    )
    assert status == 200, raw
    parts = parts_of(sse_chunks(raw))
    assert bool([p for p in parts if p.get("thought")]) is include_thoughts
    calls = [p for p in parts if "functionCall" in p]
    assert len(calls) == 1 and bool(calls[0].get("thoughtSignature")) is target.signs_thoughts
    history += [
        {"role": "model", "parts": calls},
        {"role": "user", "parts": [{"functionResponse": {
            "id": calls[0]["functionCall"].get("id"), "name": "run_shell_command",
            "response": {"output": "a.txt b.txt"}}}]},
    ]  # fmt: skip
    status, _, raw = target.post(
        path, {"contents": history, "tools": tools, "generationConfig": config}
    )
    assert status == 200, raw
    final = answer_text(parts_of(sse_chunks(raw)))
    body = target.seen().body
    if target.name == "anthropic":
        assert final == "Results: a.txt b.txt"
        assert body["messages"][1]["content"][:2] == [thinking(PLAN), hidden]
    elif target.name == "gemini":
        assert final == "Echo: [functionResponse]"
        assert body["contents"][1]["parts"][0]["thoughtSignature"] == THOUGHT_SIGNATURE
    else:
        assert final.startswith("Tool results: ") and final.endswith("=a.txt b.txt")


# -- JSON output, images ------------------------------------------------------------------------


class Recipe(pydantic.BaseModel):
    name: str
    minutes: int


@conformance
@pytest.mark.parametrize("shape", ["object", "array"])
def test_json_output_with_a_schema(target: Target, shape: str) -> None:
    schema: Any = Recipe if shape == "object" else list[Recipe]
    example = {"openai": ("text", 1), "azure": ("text", 1)}.get(target.name, ("example", 7))
    recipe = Recipe(name=example[0], minutes=example[1])
    expected = recipe if shape == "object" else [recipe]
    if target.name == "gemini":  # the fake Gemini echoes: it is told what to answer
        text = pydantic.TypeAdapter(schema).dump_json(expected).decode()
        target.upstream.script("reply", body=gemini_reply([{"text": text}]))
    response = target.client().models.generate_content(
        model=CHAT,
        contents="A soup recipe, please.",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=schema
        ),
    )
    assert response.parsed == expected
    body = target.seen().body
    if target.name == "gemini":
        generation = body["generationConfig"]
        assert generation["responseMimeType"] == "application/json"
        assert "responseSchema" in generation or "responseJsonSchema" in generation
    elif target.name == "anthropic":
        output = body["output_config"]["format"]
        recipe_schema = output["schema"] if shape == "object" else output["schema"]["items"]
        assert output["type"] == "json_schema" and recipe_schema["additionalProperties"] is False
    else:
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema"
        sent = fmt["json_schema"]["schema"]
        assert sent["type"] == "object"  # OpenAI wants an object at the top: arrays are wrapped
        if shape == "array":
            assert sent["properties"]["value"]["type"] == "array"


@conformance
@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
def test_json_output_through_a_forced_tool(target: Target, stream: bool) -> None:
    client = target.client()
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_json_schema={"type": "array", "items": {"type": "string"}},
    )
    if stream:
        chunks = client.models.generate_content_stream(
            model=JSON_TOOL, contents="Colours", config=config
        )
        answer = "".join(c.text or "" for c in chunks)
    else:
        answer = (
            client.models.generate_content(model=JSON_TOOL, contents="Colours", config=config).text
            or ""
        )
    assert json.loads(answer) == ["example"]
    assert target.seen().body["tool_choice"] == {"type": "tool", "name": "json_output"}


# A PNG signature and header (64 by 64): its base64 is the same in both alphabets.
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + struct.pack(">II", 64, 64)
# Bytes whose base64 has "+" and "/", which google-genai sends as "-" and "_" (URL-safe).
MIXED_ALPHABET = PNG + bytes([251, 255, 254, 63])


def ask_about(target: Target, image: bytes) -> tuple[str, Any]:
    """Send an image and a question; the answer, and the image as the upstream got it."""
    response = target.client().models.generate_content(
        model=CHAT,
        contents=[types.Part.from_bytes(data=image, mime_type="image/png"), "What is this?"],
    )
    body = target.seen().body
    first = (
        body["contents"][0]["parts"][0]
        if target.name == "gemini"
        else body["messages"][0]["content"][0]
    )
    return response.text or "", first


@conformance
def test_image_input(target: Target) -> None:
    text, sent = ask_about(target, PNG)
    data = base64.b64encode(PNG).decode()
    if target.name == "gemini":
        assert text == "Echo: What is this?"
        assert camel(sent) == {"inlineData": {"mimeType": "image/png", "data": data}}
    elif target.name == "anthropic":
        assert text == "Echo: What is this?"
        source = {"type": "base64", "media_type": "image/png", "data": data}
        assert sent == {"type": "image", "source": source}
    else:
        assert text == "Echo: [image_url] What is this?"
        assert sent == {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}


@conformance
def test_image_data_reaches_the_upstream_in_an_alphabet_it_decodes(target: Target) -> None:
    _, sent = ask_about(target, MIXED_ALPHABET)
    if target.name == "gemini":  # Google decodes either alphabet: the passthrough keeps it
        assert base64.urlsafe_b64decode(sent["inlineData"]["data"]) == MIXED_ALPHABET
    else:  # Anthropic and OpenAI decode the standard alphabet only
        data = sent["source"]["data"] if target.name == "anthropic" else sent["image_url"]["url"]
        assert base64.b64decode(data.rpartition(",")[2], validate=True) == MIXED_ALPHABET


# -- countTokens and embeddings ---------------------------------------------------------------


@conformance
def test_count_tokens(target: Target) -> None:
    client = target.client("v1")
    total = client.models.count_tokens(
        model=CHAT, contents="The quick brown fox jumps over the lazy dog."
    ).total_tokens
    with_tools = {"generateContentRequest": {
        "model": f"models/{CHAT}",
        "contents": [{"role": "user", "parts": [{"text": "a b c"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "tools": [{"functionDeclarations": [{"name": "get_weather"}]}]}}  # fmt: skip
    status, _, raw = target.post(f"/v1beta/models/{CHAT}:countTokens", with_tools)
    assert status == 200
    counted = json.loads(raw)["totalTokens"]
    if target.name in ("openai", "azure"):  # counted here: Chat Completions cannot count
        assert total == 3 + 10 + 3  # framing + o200k_base's 10 tokens + the reply's priming
        del with_tools["generateContentRequest"]["tools"]
        without = json.loads(target.post(f"/v1beta/models/{CHAT}:countTokens", with_tools)[2])
        assert counted > without["totalTokens"] > 3 + 2  # the tools are counted too
        assert target.requests() == []
    elif target.name == "anthropic":
        assert total == 9  # the fake's count: words
        assert counted == 3 + 2 + 5  # words of the message and system, 5 per tool
        sent = target.seen()
        assert sent.path == "/v1/messages/count_tokens"
        assert sent.body["system"] == [text("be brief")]
        assert sent.body["tools"][0]["name"] == "get_weather"
    else:
        assert total == 9 and counted == 3 + 2
        assert target.seen().path == "/v1beta/models/gemini-2.5-flash:countTokens"


@conformance
def test_embeddings(target: Target) -> None:
    result = target.client().models.embed_content(
        model=EMBED,
        contents=["first", "second"],
        config=types.EmbedContentConfig(output_dimensionality=8),
    )
    assert result.embeddings and [len(e.values or []) for e in result.embeddings] == [8, 8]
    assert result.embeddings[0].values != result.embeddings[1].values
    seen = target.seen()
    if target.name == "gemini":
        assert seen.path == "/v1beta/models/text-embedding-004:batchEmbedContents"
        assert {r["model"] for r in seen.body["requests"]} == {"models/text-embedding-004"}
    else:
        path = (
            "/v1/embeddings"
            if target.name == "openai"
            else "/openai/deployments/embed-small/embeddings"
        )
        assert seen.path == path
        model = {"model": "text-embedding-3-small"} if target.name == "openai" else {}
        assert {k: v for k, v in seen.body.items() if k != "model"} == {
            "input": ["first", "second"],
            "encoding_format": "float",
            "dimensions": 8,
        }
        assert model.items() <= seen.body.items()
    status, _, raw = target.post(
        f"/v1beta/models/{EMBED}:embedContent", {"content": {"parts": [{"text": "x"}]}}
    )
    assert status == 200 and json.loads(raw)["embedding"]["values"]


@conformance
def test_embeddings_are_refused(target: Target) -> None:
    with pytest.raises(errors.ClientError) as info:
        target.client().models.embed_content(model=CHAT, contents="x")
    assert info.value.code == 400 and "no embeddings API" in (info.value.message or "")
    assert target.requests() == []


# -- errors -----------------------------------------------------------------------------------


def script_error(target: Target, kind: str, message: str, retry: int | None = None) -> None:
    """A `rate_limit`, `server` (500) or `overloaded` error in the upstream's own words."""
    fake = target.upstream
    if target.name == "gemini":
        code = {"rate_limit": 429, "server": 500, "overloaded": 503}[kind]
        delay = {"retry_delay": f"{retry}s"} if retry else {}
        fake.script("error", code=code, message=message, **delay)
    elif target.name == "anthropic":
        kinds = {
            "rate_limit": "rate_limit_error",
            "server": "api_error",
            "overloaded": "overloaded_error",
        }
        headers = {"headers": {"retry-after": str(retry)}} if retry else {}
        fake.script("error", type=kinds[kind], message=message, **headers)
    else:
        status = {"rate_limit": 429, "server": 500, "overloaded": 503}[kind]
        headers = (
            {"headers": {"retry-after-ms": f"{retry}000", "retry-after": str(retry)}}
            if retry
            else {}
        )
        fake.script("error", status=status, message=message, **headers)


@conformance
def test_rate_limit_is_429_with_retry_info(target: Target) -> None:
    script_error(target, "rate_limit", "Rate limit reached: slow down.", retry=7)
    with pytest.raises(errors.ClientError) as info:
        target.client().models.generate_content(model=CHAT, contents="hi")
    err = info.value
    assert (err.code, err.status) == (429, "RESOURCE_EXHAUSTED")
    assert "Rate limit reached: slow down." in (err.message or "")
    details = err.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in details
    script_error(target, "rate_limit", "again", retry=3)
    status, headers, _ = target.post(
        f"/v1beta/models/{CHAT}:generateContent", {"contents": [{"parts": [{"text": "x"}]}]}
    )
    assert status == 429 and headers["retry-after"] == "3"


@conformance
@pytest.mark.parametrize(
    ("kind", "code", "status"), [("server", 500, "INTERNAL"), ("overloaded", 503, "UNAVAILABLE")]
)
def test_server_errors(target: Target, kind: str, code: int, status: str) -> None:
    script_error(target, kind, "The server had an error.")
    with pytest.raises(errors.ServerError) as info:
        target.client().models.generate_content(model=CHAT, contents="hi")
    assert (info.value.code, info.value.status) == (code, status)


@conformance
def test_mid_stream_error(target: Target) -> None:
    fake, expected = target.upstream, (500, "INTERNAL")
    if target.name == "gemini":
        fake.script("stream_error", after=2, code=500)
    elif target.name == "anthropic":
        fake.script("stream_error", after=5, type="overloaded_error", message="Overloaded")
        expected = (503, "UNAVAILABLE")
    else:
        fake.script("stream_error", after=3, message="The server had an error while streaming.")
    received: list[str] = []
    with pytest.raises(errors.ServerError) as info:
        for chunk in target.client().models.generate_content_stream(
            model=CHAT, contents="one two three four five six"
        ):
            received.append(chunk.text or "")
    assert (info.value.code, info.value.status) == expected
    text = "".join(received)
    assert text and "Echo: one two three four five six".startswith(text)


@conformance
def test_wrong_upstream_key(target: Target) -> None:
    with pytest.raises(errors.ClientError) as info:
        target.client().models.generate_content(model=WRONG_KEY, contents="hi")
    if target.name == "gemini":  # Google answers a bad key with a 400 naming it
        assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
        assert "API_KEY_INVALID" in json.dumps(info.value.details)
    else:
        assert (info.value.code, info.value.status) == (401, "UNAUTHENTICATED")


@conformance
def test_a_gemini_only_tool_is_passed_through_or_refused(target: Target) -> None:
    """googleSearch has no equivalent on the other wires: a 400 naming the field, not a
    request without it."""
    client = target.client()
    config = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])
    if target.name == "gemini":
        assert client.models.generate_content(model=CHAT, contents="search", config=config).text
        assert target.seen().body["tools"] == [{"googleSearch": {}}]
        return
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=CHAT, contents="search the web", config=config)
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert "tools[0].googleSearch" in (info.value.message or "")
    assert target.requests() == []


# -- the embedded default -----------------------------------------------------------------------

ENVIRONMENT = {  # provider → (its variables, a model name the default serves, its wildcard)
    "gemini": ({"GEMINI_API_KEY": GEMINI_KEY, "GEMINI_API_BASE": "{base}"}, "gemini-2.5-flash", "gemini-*"),
    "openai": ({"OPENAI_API_KEY": DEFAULT_KEY, "OPENAI_API_BASE": "{base}/v1"}, "gpt-4o", "gpt-*"),
    "anthropic": ({"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_API_BASE": "{base}"}, "claude-haiku-4-5", "claude-*"),
}  # fmt: skip


@conformance
def test_embedded_default_serves_a_key_from_the_environment(
    target: Target, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """No config: the provider's key in the environment is found and used (in process;
    test_cli.py starts the one real `genroute serve` that reads its own environment)."""
    variables, model, wildcard = ENVIRONMENT[target.name]
    for name, value in variables.items():
        monkeypatch.setenv(name, value.format(base=target.upstream.base_url))
    gateway = InProcessGateway(None, tmp_path)
    try:
        client = genai_client(gateway.base_url, "any-key")  # no master key: anyone may call
        assert client.models.generate_content(model=model, contents="hi env").text == "Echo: hi env"
        seen = target.seen()
        assert target.credential(seen.headers) == target.key
        assert model in (seen.body or {}).get("model", seen.path)
        names = {m.name for m in client.models.list()}
        assert f"models/{wildcard}" in names and "models/demo" not in names
        assert target.key not in gateway.log()
    finally:
        gateway.stop()


# -- OpenAI-compatible servers beyond OpenAI and Azure ------------------------------------------


def test_hosted_vllm_and_ollama_through_api_base(tmp_path: Any) -> None:
    """Servers that differ from OpenAI only by data (providers/openai/prefixes.py): vLLM
    takes top_k and a key, Ollama no key; both get /v1 added to a bare api_base."""
    with FakeOpenAI(anonymous_models=("llama3.2",)) as fake:
        config = {
            "model_list": [
                {
                    "model_name": "local-llama",
                    "params": {
                        "model": "hosted_vllm/meta-llama/Llama-3.1-8B-Instruct",
                        "api_key": DEFAULT_KEY,
                        "api_base": fake.base_url,
                    },
                },
                {
                    "model_name": "ollama-llama",
                    "params": {"model": "ollama/llama3.2", "api_base": fake.base_url},
                },
            ],
            "general_settings": {"master_key": MASTER_KEY},
        }
        gateway = InProcessGateway(config, tmp_path)
        try:
            client = genai_client(gateway.base_url, MASTER_KEY)
            config_ = types.GenerateContentConfig(top_k=40, max_output_tokens=20)
            reply = client.models.generate_content(
                model="local-llama", contents="hi vllm", config=config_
            )
            assert reply.text == "Echo: hi vllm"
            seen = fake.last_request
            assert seen.path == "/v1/chat/completions"
            assert seen.body["model"] == "meta-llama/Llama-3.1-8B-Instruct"
            assert (seen.body["top_k"], seen.body["max_tokens"]) == (40, 20)
            reply = client.models.generate_content(model="ollama-llama", contents="hi ollama")
            assert reply.text == "Echo: hi ollama"
            seen = fake.last_request
            assert seen.path == "/v1/chat/completions" and "authorization" not in seen.headers
        finally:
            gateway.stop()
