"""End to end: google-genai → genroute (real process) → fake Anthropic Messages API.

Covers generate and stream, a multi-turn tool loop with two parallel calls of one function,
thinking with signatures across tool loops (whole history as the Python SDK keeps it, and
gemini-cli's history without thought parts), JSON output both ways, an image, countTokens,
embeddings refused, and errors (429 with RetryInfo, 529 → 503, mid-stream, bad upstream key).
The fake checks every body against the anthropic SDK types and Anthropic's multi-turn rules,
so a request it accepts is one Anthropic accepts.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types
from pydantic import BaseModel

from tests.conftest import Gateway, InProcessGateway
from tests.fakes.anthropic_upstream import FakeAnthropic, redacted, text, thinking, tool_use
from tests.server.conftest import MASTER_KEY, client_for

pytestmark = pytest.mark.e2e
KEY = "anthropic-test-key"
SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-3-5-haiku-20241022"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather for a city",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic(KEY, split=True) as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _fresh(fake: FakeAnthropic) -> None:
    fake.reset()


@pytest.fixture(scope="module")
def gateway(fake: FakeAnthropic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    def entry(name: str, upstream: str = SONNET, **params: Any) -> dict[str, Any]:
        params = {"api_key": KEY, "api_base": fake.base_url, **params}
        return {"model_name": name, "params": {"model": f"anthropic/{upstream}", **params}}

    config = {
        "model_list": [
            entry("claude-sonnet-4-5"),
            entry("claude-haiku", HAIKU),
            entry("gemini-2.5-flash"),  # a Gemini name clients send on their own, served by Claude
            # Error cases get deployments of their own, so that cooling one down is harmless.
            entry("err-429"),
            entry("err-529"),
            entry("err-stream"),
            entry("wrong-key", api_key="not-the-key"),
        ],
        "general_settings": {"master_key": MASTER_KEY},
    }
    gw = InProcessGateway(config, Path(tmp_path_factory.mktemp("anthropic-gateway")))
    yield gw
    gw.stop()


def post(gateway: Gateway, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        gateway.base_url + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-goog-api-key": MASTER_KEY},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def sse_chunks(raw: bytes) -> list[dict[str, Any]]:
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b""
    assert all(e.startswith(b"data: ") and b"\n" not in e for e in events[:-1])
    return [json.loads(e[6:]) for e in events[:-1]]


def parts_of(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for c in chunks for p in c["candidates"][0].get("content", {}).get("parts", [])]


# -- generate and stream --------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_generate(gateway: Gateway, fake: FakeAnthropic, version: str) -> None:
    client = client_for(gateway, version)
    response = client.models.generate_content(
        model="claude-sonnet-4-5",
        contents="hello claude",
        config=types.GenerateContentConfig(
            system_instruction=["Be terse.", "Be kind."], max_output_tokens=300
        ),
    )
    assert response.text == "Echo: hello claude"
    seen = fake.last_request
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == KEY and seen.headers["anthropic-version"] == "2023-06-01"
    assert MASTER_KEY not in json.dumps(seen.headers)
    assert seen.body["model"] == SONNET and seen.body["max_tokens"] == 300
    assert seen.body["system"] == [text("Be terse."), text("Be kind.")]
    assert response.model_version == SONNET and response.response_id
    usage = response.usage_metadata
    assert usage and usage.prompt_token_count == 6 and usage.candidates_token_count == 3
    assert usage.total_token_count == 9


def test_stream(gateway: Gateway, fake: FakeAnthropic) -> None:
    client = client_for(gateway)
    chunks = list(
        client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="one two three four five six"
        )
    )
    assert "".join(c.text or "" for c in chunks) == "Echo: one two three four five six"
    assert len(chunks) >= 3 and fake.last_request.body["stream"] is True
    finish = [c.candidates[0].finish_reason if c.candidates else None for c in chunks]
    assert finish[-1] == types.FinishReason.STOP and not any(finish[:-1])
    assert chunks[-1].usage_metadata and chunks[-1].usage_metadata.total_token_count
    assert all(c.usage_metadata is None for c in chunks[:-1])


def test_stream_sse_has_no_null_finish_reason_or_empty_parts(gateway: Gateway) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "raw stream please"}]}]}
    status, raw = post(
        gateway, "/v1beta/models/claude-sonnet-4-5:streamGenerateContent?alt=sse", body
    )
    assert status == 200
    assert b'"finishReason":null' not in raw and b'"parts":[]' not in raw
    chunks = sse_chunks(raw)
    assert "".join(p["text"] for p in parts_of(chunks)) == "Echo: raw stream please"


# -- tools ------------------------------------------------------------------------------------


def test_parallel_calls_of_one_function_map_back(gateway: Gateway, fake: FakeAnthropic) -> None:
    fake.script(
        "reply",
        content=[
            text("Checking both."),
            tool_use("get_weather", {"city": "Paris"}, "toolu_paris"),
            tool_use("get_weather", {"city": "Rome"}, "toolu_rome"),
        ],
    )
    client = client_for(gateway)
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    question = types.Content(role="user", parts=[types.Part(text="Weather in Paris and Rome?")])
    first = client.models.generate_content(
        model="claude-sonnet-4-5", contents=[question], config=config
    )
    calls = first.function_calls or []
    assert [(c.id, c.name, c.args) for c in calls] == [
        ("toolu_paris", "get_weather", {"city": "Paris"}),
        ("toolu_rome", "get_weather", {"city": "Rome"}),
    ]
    assert first.candidates and first.candidates[0].content
    answers = [  # answered in the other order, by id
        types.Part(function_response=types.FunctionResponse(
            id=c.id, name=c.name, response={"output": f"weather in {(c.args or {})['city']}"}))
        for c in reversed(calls)
    ]  # fmt: skip
    second = client.models.generate_content(
        model="claude-sonnet-4-5",
        contents=[question, first.candidates[0].content, types.Content(role="user", parts=answers)],
        config=config,
    )
    assert second.text == "Results: weather in Rome | weather in Paris"
    messages = fake.last_request.body["messages"]
    assert [b["id"] for b in messages[1]["content"] if b["type"] == "tool_use"] == [
        "toolu_paris",
        "toolu_rome",
    ]
    assert {r["tool_use_id"]: r["content"] for r in messages[2]["content"]} == {
        "toolu_paris": "weather in Paris",
        "toolu_rome": "weather in Rome",
    }


def test_calls_and_responses_without_ids_get_unique_ids(
    gateway: Gateway, fake: FakeAnthropic
) -> None:
    call = {"name": "get_weather", "args": {"city": "Paris"}}
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "Weather twice?"}]},
            {"role": "model", "parts": [{"functionCall": call}, {"functionCall": {**call, "args": {"city": "Rome"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
                {"functionResponse": {"name": "get_weather", "response": {"output": "rainy"}}}]},
        ],
        "tools": [{"functionDeclarations": [{"name": "get_weather"}]}],
    }  # fmt: skip
    status, raw = post(gateway, "/v1beta/models/claude-sonnet-4-5:generateContent", body)
    assert status == 200, raw
    messages = fake.last_request.body["messages"]
    ids = [b["id"] for b in messages[1]["content"]]
    assert len(set(ids)) == 2
    by_id = {r["tool_use_id"]: r["content"] for r in messages[2]["content"]}
    assert [by_id[i] for i in ids] == ["sunny", "rainy"]


# -- thinking across tool loops ------------------------------------------------------------


PLAN = thinking("Two cities: I will call get_weather for each.")


def test_thinking_tool_loop_with_the_python_sdk_history(
    gateway: Gateway, fake: FakeAnthropic
) -> None:
    fake.script(
        "reply",
        content=[PLAN, tool_use("get_weather", {"city": "Paris"}), tool_use("get_weather", {"city": "Rome"})],
    )  # fmt: skip
    client = client_for(gateway, "v1")
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=2048),
    )
    question = types.Content(role="user", parts=[types.Part(text="Paris and Rome?")])
    first = client.models.generate_content(
        model="claude-sonnet-4-5", contents=[question], config=config
    )
    assert first.candidates and first.candidates[0].content
    parts = first.candidates[0].content.parts or []
    assert parts[0].thought and parts[0].text == PLAN["thinking"]
    assert parts[1].function_call and parts[1].thought_signature
    assert fake.last_request.body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    answers = [
        types.Part.from_function_response(name="get_weather", response={"output": city})
        for city in ("sunny", "rainy")
    ]
    for part, call in zip(answers, first.function_calls or [], strict=True):
        assert part.function_response is not None
        part.function_response.id = call.id
    second = client.models.generate_content(
        model="claude-sonnet-4-5",
        contents=[question, first.candidates[0].content, types.Content(role="user", parts=answers)],
        config=config,
    )
    assert second.text == "Results: sunny | rainy"
    assistant = fake.last_request.body["messages"][1]["content"]
    assert assistant[0] == PLAN  # sent back unchanged, before the tool_use blocks
    assert [b["type"] for b in assistant] == ["thinking", "tool_use", "tool_use"]


@pytest.mark.parametrize("include_thoughts", [True, False])
def test_thinking_tool_loop_gemini_cli_style(
    gateway: Gateway, fake: FakeAnthropic, include_thoughts: bool
) -> None:
    """gemini-cli streams, drops thought parts from its history and echoes thoughtSignature
    on the functionCall part only."""
    hidden = redacted("cli")
    fake.script("reply", content=[PLAN, hidden, tool_use("run_shell_command", {"command": "ls"})])
    path = "/v1beta/models/claude-sonnet-4-5:streamGenerateContent?alt=sse"
    config = {"thinkingConfig": {"includeThoughts": include_thoughts, "thinkingBudget": 8192},
              "temperature": 1, "topP": 0.95, "topK": 64}  # fmt: skip
    tools = [{"functionDeclarations": [{"name": "run_shell_command", "parametersJsonSchema": {
        "type": "object", "properties": {"command": {"type": "string"}}}}]}]  # fmt: skip
    history: list[dict[str, Any]] = [{"role": "user", "parts": [{"text": "list files"}]}]
    status, raw = post(
        gateway, path, {"contents": history, "tools": tools, "generationConfig": config}
    )
    assert status == 200, raw
    parts = parts_of(sse_chunks(raw))
    thoughts = [p for p in parts if p.get("thought")]
    assert bool(thoughts) is include_thoughts
    calls = [p for p in parts if "functionCall" in p]
    assert len(calls) == 1 and calls[0]["thoughtSignature"]
    history += [
        {"role": "model", "parts": calls},
        {"role": "user", "parts": [{"functionResponse": {
            "id": calls[0]["functionCall"]["id"], "name": "run_shell_command",
            "response": {"output": "a.txt b.txt"}}}]},
    ]  # fmt: skip
    status, raw = post(
        gateway, path, {"contents": history, "tools": tools, "generationConfig": config}
    )
    assert status == 200, raw
    final = parts_of(sse_chunks(raw))
    assert "".join(p["text"] for p in final if not p.get("thought")) == "Results: a.txt b.txt"
    assistant = fake.last_request.body["messages"][1]["content"]
    assert assistant[:2] == [PLAN, hidden]


# -- JSON output, images, tokens, embeddings -----------------------------------------------


class Recipe(BaseModel):
    name: str
    minutes: int


def test_json_output_with_native_structured_outputs(gateway: Gateway, fake: FakeAnthropic) -> None:
    client = client_for(gateway)
    response = client.models.generate_content(
        model="claude-sonnet-4-5",
        contents="A soup recipe",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=Recipe
        ),
    )
    assert response.parsed == Recipe(name="example", minutes=7)
    output = fake.last_request.body["output_config"]["format"]
    assert output["type"] == "json_schema" and output["schema"]["additionalProperties"] is False


@pytest.mark.parametrize("stream", [False, True])
def test_json_output_through_a_forced_tool(
    gateway: Gateway, fake: FakeAnthropic, stream: bool
) -> None:
    client = client_for(gateway)
    config = types.GenerateContentConfig(
        response_mime_type="application/json",
        response_json_schema={"type": "array", "items": {"type": "string"}},
    )
    if stream:
        chunks = client.models.generate_content_stream(
            model="claude-haiku", contents="Colours", config=config
        )
        answer = "".join(c.text or "" for c in chunks)
    else:
        answer = (
            client.models.generate_content(
                model="claude-haiku", contents="Colours", config=config
            ).text
            or ""
        )
    assert json.loads(answer) == ["example"]
    assert fake.last_request.body["tool_choice"] == {"type": "tool", "name": "json_output"}


def test_image_input(gateway: Gateway, fake: FakeAnthropic) -> None:
    png = bytes([137, 80, 78, 71, 13, 10, 26, 10, 251, 255, 254, 63, 62])  # + and / in base64
    client = client_for(gateway)
    response = client.models.generate_content(
        model="claude-sonnet-4-5",
        contents=["What is this?", types.Part.from_bytes(data=png, mime_type="image/png")],
    )
    assert response.text == "Echo: What is this?"
    image = fake.last_request.body["messages"][0]["content"][1]
    assert image == {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": base64.b64encode(png).decode(),
        },
    }


def test_count_tokens(gateway: Gateway, fake: FakeAnthropic) -> None:
    client = client_for(gateway, "v1")
    assert (
        client.models.count_tokens(model="claude-sonnet-4-5", contents="a b c d").total_tokens == 4
    )
    assert fake.last_request.path == "/v1/messages/count_tokens"
    body = {"generateContentRequest": {
        "model": "models/claude-sonnet-4-5",
        "contents": [{"role": "user", "parts": [{"text": "a b c"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "tools": [{"functionDeclarations": [{"name": "get_weather"}]}]}}  # fmt: skip
    status, raw = post(gateway, "/v1beta/models/claude-sonnet-4-5:countTokens", body)
    assert status == 200 and json.loads(raw) == {"totalTokens": 3 + 2 + 5}
    sent = fake.last_request.body
    assert sent["system"] == [text("be brief")] and sent["tools"][0]["name"] == "get_weather"


def test_embeddings_are_a_clear_400(gateway: Gateway) -> None:
    client = client_for(gateway)
    with pytest.raises(errors.ClientError) as info:
        client.models.embed_content(model="claude-sonnet-4-5", contents="x")
    assert info.value.code == 400 and "no embeddings API" in (info.value.message or "")


# -- errors ---------------------------------------------------------------------------------


def test_rate_limit_is_429_with_retry_info(gateway: Gateway, fake: FakeAnthropic) -> None:
    fake.script(
        "error",
        status=429,
        type="rate_limit_error",
        message="slow down",
        headers={"retry-after": "7"},
    )
    client = client_for(gateway)
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="err-429", contents="hi")
    err = info.value
    assert (err.code, err.status, err.message) == (429, "RESOURCE_EXHAUSTED", "slow down")
    details = err.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in details


def test_overloaded_is_503(gateway: Gateway, fake: FakeAnthropic) -> None:
    fake.script("error", type="overloaded_error", message="Overloaded")
    client = client_for(gateway)
    with pytest.raises(errors.ServerError) as info:
        client.models.generate_content(model="err-529", contents="hi")
    assert (info.value.code, info.value.status) == (503, "UNAVAILABLE")


def test_mid_stream_error_after_chunks(gateway: Gateway, fake: FakeAnthropic) -> None:
    fake.script("stream_error", after=5, type="overloaded_error", message="Overloaded")
    received: list[str] = []
    client = client_for(gateway)
    with pytest.raises(errors.ServerError) as info:
        for chunk in client.models.generate_content_stream(
            model="err-stream", contents="a long answer please"
        ):
            received.append(chunk.text or "")
    assert received and "".join(received).startswith("Echo")
    assert (info.value.code, info.value.status) == (503, "UNAVAILABLE")


def test_wrong_upstream_key_is_401(gateway: Gateway) -> None:
    client = client_for(gateway)
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="wrong-key", contents="hi")
    assert (info.value.code, info.value.status) == (401, "UNAUTHENTICATED")


# -- embedded default -------------------------------------------------------------------------


def test_embedded_default_serves_claude_with_an_anthropic_key(
    start_gateway: Any, fake: FakeAnthropic
) -> None:
    gateway = start_gateway(
        None, env={"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_API_BASE": fake.base_url}
    )
    client = client_for(gateway)
    assert (
        client.models.generate_content(model="claude-haiku-4-5", contents="hi env").text
        == "Echo: hi env"
    )
    assert fake.last_request.body["model"] == "claude-haiku-4-5"
    names = {m.name for m in client.models.list()}
    assert "models/claude-*" in names and "models/demo" not in names
    assert KEY not in gateway.log()
