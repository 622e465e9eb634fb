"""End to end: google-genai → genroute (real process) → fake OpenAI-compatible upstream.

Covers openai/, azure/, hosted_vllm/ and ollama/ deployments: generate and stream, a
multi-turn tool loop with two parallel calls to one function, JSON output with a schema,
an image, thinking, countTokens, embeddings, and errors (429 with RetryInfo, 500, 400,
mid-stream). What the upstream received is asserted from the fake's records.
"""

from __future__ import annotations

import base64
import json
import struct
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydantic
import pytest
from google.genai import errors, types

from tests.conftest import Gateway, InProcessGateway
from tests.fakes.openai_upstream import AZURE_KEY, DEFAULT_KEY, FakeOpenAI
from tests.server.conftest import MASTER_KEY, client_for

pytestmark = pytest.mark.e2e

# -- fixtures of this module ----------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    """One fake OpenAI-compatible upstream per module; `llama3.2` needs no key (Ollama)."""
    with FakeOpenAI(anonymous_models=("llama3.2",)) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_upstream(upstream: FakeOpenAI) -> None:
    upstream.reset()


def gateway_config(fake: FakeOpenAI) -> dict[str, Any]:
    def openai(model: str, **extra: Any) -> dict[str, Any]:
        return {
            "model": f"openai/{model}",
            "api_key": DEFAULT_KEY,
            "api_base": f"{fake.base_url}/v1",
            **extra,
        }

    return {
        "model_list": [
            {"model_name": "gpt-4o", "params": openai("gpt-4o", timeout=5)},
            {"model_name": "o4-mini", "params": openai("o4-mini")},
            {
                "model_name": "embed",
                "params": openai("text-embedding-3-small"),
                "model_info": {"mode": "embedding"},
            },
            {"model_name": "wrong-key", "params": {**openai("gpt-4o"), "api_key": "sk-nope"}},
            {
                "model_name": "azure-gpt",
                "params": {
                    "model": "azure/prod-gpt4o",
                    "api_key": AZURE_KEY,
                    "api_base": fake.base_url,
                    "api_version": "2024-10-21",
                },
            },
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
        "router_settings": {"model_group_alias": {"gemini-2.5-flash": "gpt-4o"}},
        "general_settings": {"master_key": MASTER_KEY},
    }


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = InProcessGateway(gateway_config(upstream), Path(tmp_path_factory.mktemp("openai-gateway")))
    yield gw
    gw.stop()


def post(gateway: Gateway, path: str, body: object) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        gateway.base_url + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-goog-api-key": MASTER_KEY},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


WEATHER = types.Tool(
    function_declarations=[
        types.FunctionDeclaration(
            name="get_weather",
            description="Current weather in a city",
            parameters_json_schema={
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        )
    ]
)

# -- generate and stream --------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_generate(gateway: Gateway, upstream: FakeOpenAI, version: str) -> None:
    client = client_for(gateway, version)
    response = client.models.generate_content(
        model="gpt-4o",
        contents="hello there gateway",
        config=types.GenerateContentConfig(
            system_instruction=["Be brief.", "Be kind."], max_output_tokens=50, temperature=0.3
        ),
    )
    assert response.text == "Echo: hello there gateway"
    seen = upstream.last_request
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {DEFAULT_KEY}"
    assert MASTER_KEY not in json.dumps(seen.headers)
    assert seen.body["messages"][0] == {"role": "system", "content": "Be brief.\nBe kind."}
    assert (seen.body["max_tokens"], seen.body["temperature"]) == (50, 0.3)
    usage = response.usage_metadata
    assert usage is not None and usage.total_token_count and usage.prompt_token_count
    assert response.response_id and response.response_id.startswith("chatcmpl-")
    assert response.model_version == "gpt-4o"


def test_stream(gateway: Gateway, upstream: FakeOpenAI) -> None:
    client = client_for(gateway)
    chunks = list(
        client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="one two three four five"
        )
    )
    assert "".join(c.text or "" for c in chunks) == "Echo: one two three four five"
    assert len(chunks) >= 4
    finishes = [c.candidates[0].finish_reason for c in chunks if c.candidates]
    assert finishes[-1] == types.FinishReason.STOP and not any(finishes[:-1])
    assert chunks[-1].usage_metadata and chunks[-1].usage_metadata.total_token_count
    body = upstream.last_request.body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_stream_wire_framing(gateway: Gateway) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "frame me"}]}]}
    status, headers, raw = post(
        gateway, "/v1beta/models/gpt-4o:streamGenerateContent?alt=sse", body
    )
    assert status == 200 and headers["content-type"] == "text/event-stream"
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b"" and len(events) > 3
    for event in events[:-1]:
        assert event.startswith(b"data: ") and b"null" not in event
        assert b'"parts":[]' not in event and b"[DONE]" not in event


# -- tools ----------------------------------------------------------------------------------


def weather_reply(call: types.FunctionCall) -> types.Part:
    city = (call.args or {})["city"]
    return types.Part(
        function_response=types.FunctionResponse(
            id=call.id, name=call.name, response={"output": f"sunny in {city}"}
        )
    )


@pytest.mark.parametrize("keep_ids", [True, False])
def test_tool_loop_with_two_parallel_calls_to_one_function(
    gateway: Gateway, upstream: FakeOpenAI, keep_ids: bool
) -> None:
    client = client_for(gateway)
    config = types.GenerateContentConfig(tools=[WEATHER])
    question = types.Content(role="user", parts=[types.Part(text="Weather in Paris and Rome?")])
    upstream.script("reply", tool_calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})])  # fmt: skip
    first = client.models.generate_content(model="gpt-4o", contents=[question], config=config)
    calls = first.function_calls or []
    assert [(c.name, c.args) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    upstream_ids = [c.id for c in calls]
    assert len(set(upstream_ids)) == 2 and all(upstream_ids)
    assert first.candidates and first.candidates[0].content
    model_turn = first.candidates[0].content
    if not keep_ids:  # a client that drops ids: responses are matched by name, in order
        for part in model_turn.parts or []:
            assert part.function_call is not None
            part.function_call.id = None
    answers = [weather_reply(c) for c in (p.function_call for p in model_turn.parts or []) if c]
    if keep_ids:
        answers.reverse()  # answered out of order: ids decide
    second = client.models.generate_content(
        model="gpt-4o",
        contents=[question, model_turn, types.Content(role="user", parts=answers)],
        config=config,
    )
    body = upstream.last_request.body
    assistant = body["messages"][1]
    sent = {
        c["id"]: json.loads(c["function"]["arguments"])["city"] for c in assistant["tool_calls"]
    }
    assert len(sent) == 2
    if keep_ids:
        assert list(sent) == upstream_ids
    tool_messages = [m for m in body["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 2
    for message in tool_messages:
        assert message["content"] == f"sunny in {sent[message['tool_call_id']]}"
    assert second.text and second.text.startswith("Tool results: ")


def test_streamed_parallel_calls_arrive_whole(gateway: Gateway, upstream: FakeOpenAI) -> None:
    upstream.script(
        "reply",
        tool_calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})],
        interleave=True,
    )
    client = client_for(gateway)
    chunks = list(
        client.models.generate_content_stream(
            model="gpt-4o",
            contents="Weather in Paris and Rome?",
            config=types.GenerateContentConfig(
                tools=[WEATHER],
                tool_config=types.ToolConfig(
                    function_calling_config=types.FunctionCallingConfig(mode="ANY")
                ),
            ),
        )
    )
    calls = [c for chunk in chunks for c in chunk.function_calls or []]
    assert [c.args for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    assert len({c.id for c in calls}) == 2
    assert upstream.last_request.body["tool_choice"] == "required"


# -- output formats, media, thinking --------------------------------------------------------


class Recipe(pydantic.BaseModel):
    name: str
    minutes: int


def test_json_output_with_a_schema(gateway: Gateway, upstream: FakeOpenAI) -> None:
    client = client_for(gateway)
    response = client.models.generate_content(
        model="gpt-4o",
        contents="Two recipes, please.",
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=list[Recipe]
        ),
    )
    assert response.parsed == [Recipe(name="text", minutes=1)]
    fmt = upstream.last_request.body["response_format"]
    assert fmt["type"] == "json_schema"
    schema = fmt["json_schema"]["schema"]
    assert schema["type"] == "object" and schema["properties"]["value"]["type"] == "array"


def test_image_input(gateway: Gateway, upstream: FakeOpenAI) -> None:
    image = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + struct.pack(">II", 64, 64)
    client = client_for(gateway)
    response = client.models.generate_content(
        model="gpt-4o",
        contents=[types.Part.from_bytes(data=image, mime_type="image/png"), "What is this?"],
    )
    assert response.text == "Echo: [image_url] What is this?"
    part = upstream.last_request.body["messages"][0]["content"][0]
    assert part == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64," + base64.b64encode(image).decode()},
    }


@pytest.mark.parametrize("stream", [False, True])
def test_thinking(gateway: Gateway, upstream: FakeOpenAI, stream: bool) -> None:
    config = types.GenerateContentConfig(
        temperature=0.5,
        thinking_config=types.ThinkingConfig(include_thoughts=True, thinking_budget=2048),
    )
    client = client_for(gateway)
    if stream:
        chunks = list(
            client.models.generate_content_stream(model="o4-mini", contents="hi", config=config)
        )
        contents = [c.candidates[0].content for c in chunks if c.candidates]
        parts = [p for content in contents if content for p in content.parts or []]
        usage = chunks[-1].usage_metadata
        text = "".join(c.text or "" for c in chunks)
    else:
        response = client.models.generate_content(model="o4-mini", contents="hi", config=config)
        assert response.candidates and response.candidates[0].content
        parts = response.candidates[0].content.parts or []
        usage, text = response.usage_metadata, response.text or ""
    body = upstream.last_request.body
    assert body["reasoning_effort"] == "medium" and "temperature" not in body
    thoughts = "".join(p.text or "" for p in parts if p.thought)
    assert thoughts == "Thinking (medium) about the reply."
    assert text == "Echo: hi"
    assert usage is not None and usage.thoughts_token_count == 5
    assert usage.total_token_count == (usage.prompt_token_count or 0) + (
        usage.candidates_token_count or 0
    ) + (usage.thoughts_token_count or 0)


# -- countTokens and embeddings -------------------------------------------------------------


def test_count_tokens_is_local(gateway: Gateway, upstream: FakeOpenAI) -> None:
    client = client_for(gateway, "v1")
    result = client.models.count_tokens(
        model="gpt-4o", contents="The quick brown fox jumps over the lazy dog."
    )
    assert result.total_tokens == 3 + 10 + 3  # framing + o200k_base's 10 tokens + reply
    assert upstream.requests == []


def test_embeddings(gateway: Gateway, upstream: FakeOpenAI) -> None:
    client = client_for(gateway)
    result = client.models.embed_content(
        model="embed",
        contents=["first", "second"],
        config=types.EmbedContentConfig(output_dimensionality=8),
    )
    assert result.embeddings and [len(e.values or []) for e in result.embeddings] == [8, 8]
    assert result.embeddings[0].values != result.embeddings[1].values
    seen = upstream.last_request
    assert seen.path == "/v1/embeddings"
    assert seen.body == {
        "model": "text-embedding-3-small",
        "input": ["first", "second"],
        "encoding_format": "float",
        "dimensions": 8,
    }


# -- other servers --------------------------------------------------------------------------


def test_azure_deployment(gateway: Gateway, upstream: FakeOpenAI) -> None:
    client = client_for(gateway)
    response = client.models.generate_content(
        model="azure-gpt",
        contents="hi azure",
        config=types.GenerateContentConfig(max_output_tokens=9),
    )
    assert response.text == "Echo: hi azure"
    seen = upstream.last_request
    assert seen.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert seen.query == {"api-version": "2024-10-21"}
    assert seen.headers["api-key"] == AZURE_KEY and "authorization" not in seen.headers
    assert seen.body["max_completion_tokens"] == 9
    chunks = list(client.models.generate_content_stream(model="azure-gpt", contents="stream az"))
    assert "".join(c.text or "" for c in chunks) == "Echo: stream az"


def test_hosted_vllm_and_ollama_through_api_base(gateway: Gateway, upstream: FakeOpenAI) -> None:
    client = client_for(gateway)
    config = types.GenerateContentConfig(top_k=40, max_output_tokens=20)
    assert client.models.generate_content(model="local-llama", contents="hi vllm", config=config).text == "Echo: hi vllm"  # fmt: skip
    seen = upstream.last_request
    assert seen.path == "/v1/chat/completions"
    assert seen.body["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert (seen.body["top_k"], seen.body["max_tokens"]) == (40, 20)
    assert client.models.generate_content(model="ollama-llama", contents="hi ollama").text == "Echo: hi ollama"  # fmt: skip
    seen = upstream.last_request
    assert seen.path == "/v1/chat/completions" and "authorization" not in seen.headers


# -- errors ---------------------------------------------------------------------------------


def test_429_is_resource_exhausted_with_retry_info(gateway: Gateway, upstream: FakeOpenAI) -> None:
    upstream.script(
        "error",
        status=429,
        type="tokens",
        code="rate_limit_exceeded",
        message="Rate limit reached for gpt-4o on tokens per min (TPM).",
        headers={"retry-after-ms": "7000", "retry-after": "7"},
    )
    client = client_for(gateway)
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="gpt-4o", contents="hi")
    err = info.value
    assert (err.code, err.status) == (429, "RESOURCE_EXHAUSTED")
    assert "Rate limit reached" in (err.message or "")
    details = err.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in details
    upstream.script("error", status=429, headers={"retry-after": "3"})
    status, headers, _ = post(
        gateway, "/v1beta/models/gpt-4o:generateContent", {"contents": [{"parts": [{"text": "x"}]}]}
    )
    assert status == 429 and headers["retry-after"] == "3"


def test_500_is_a_server_error(gateway: Gateway, upstream: FakeOpenAI) -> None:
    upstream.script("error", status=500, message="The server had an error.")
    client = client_for(gateway)
    with pytest.raises(errors.ServerError) as info:
        client.models.generate_content(model="gpt-4o", contents="hi")
    assert (info.value.code, info.value.status) == (500, "INTERNAL")


def test_wrong_upstream_key_and_field_without_equivalent(gateway: Gateway) -> None:
    client = client_for(gateway)
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="wrong-key", contents="hi")
    assert (info.value.code, info.value.status) == (401, "UNAUTHENTICATED")
    with pytest.raises(errors.ClientError) as info:
        client.models.generate_content(
            model="gpt-4o",
            contents="search the web",
            config=types.GenerateContentConfig(
                tools=[types.Tool(google_search=types.GoogleSearch())]
            ),
        )
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert "tools[0].googleSearch" in (info.value.message or "")


def test_mid_stream_error(gateway: Gateway, upstream: FakeOpenAI) -> None:
    upstream.script("stream_error", after=2, message="The server had an error while streaming.")
    received = []
    client = client_for(gateway)
    with pytest.raises(errors.ServerError) as info:
        for chunk in client.models.generate_content_stream(
            model="gpt-4o", contents="one two three four five six"
        ):
            received.append(chunk)
    assert (info.value.code, info.value.status) == (500, "INTERNAL")
    text = "".join(c.text or "" for c in received)
    assert text and "Echo: one two three four five six".startswith(text)
