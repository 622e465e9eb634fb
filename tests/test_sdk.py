"""The Python SDK: google-genai shapes in and out, the seed examples, sync and async, Router."""

from __future__ import annotations

import asyncio
import os
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from google.genai import types

import genroute
from genroute.errors import InvalidRequest, NotFound
from genroute.sdk.convert import build_request, to_contents
from tests.fakes.gemini_upstream import FakeGemini

SEED_NON_STREAMING = """
from genroute import agenerate_content
from google.genai.types import ContentDict, PartDict
import os

# Set API key
os.environ["GEMINI_API_KEY"] = "your-gemini-api-key"

contents = ContentDict(
    parts=[
        PartDict(text="Hello, can you tell me a short joke?")
    ],
    role="user",
)

response = await agenerate_content(
    contents=contents,
    model="gemini/gemini-2.0-flash",
    max_tokens=100,
)
print(response)
"""

SEED_STREAMING = """
from genroute import agenerate_content_stream
from google.genai.types import ContentDict, PartDict
import os

# Set API key
os.environ["GEMINI_API_KEY"] = "your-gemini-api-key"

contents = ContentDict(
    parts=[
        PartDict(text="Write a long story about space exploration")
    ],
    role="user",
)

response = await agenerate_content_stream(
    contents=contents,
    model="gemini/gemini-2.0-flash",
    max_tokens=500,
)

async for chunk in response:
    print(chunk)
"""


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGemini]:
    """A fake Gemini upstream that accepts the key the seed examples set."""
    with FakeGemini("your-gemini-api-key") as upstream:
        monkeypatch.setenv("GEMINI_API_BASE", upstream.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", "your-gemini-api-key")
        yield upstream


async def run_example(source: str) -> dict[str, Any]:
    """Run an example as written: top-level await inside an async function."""
    namespace: dict[str, Any] = {"print": lambda *a, **k: None}
    body = textwrap.indent(source, "    ")
    exec(f"async def __example():\n{body}\n    return locals()", namespace)
    result: dict[str, Any] = await namespace["__example"]()
    return result


async def test_seed_non_streaming_example_runs_as_written(fake: FakeGemini) -> None:
    scope = await run_example(SEED_NON_STREAMING)
    response = scope["response"]
    assert isinstance(response, types.GenerateContentResponse)
    assert response.text == "Echo: Hello, can you tell me a short joke?"
    assert response.usage_metadata is not None and response.usage_metadata.prompt_token_count
    sent = fake.last_request
    assert sent.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert sent.body["generationConfig"] == {"maxOutputTokens": 100}


async def test_seed_streaming_example_runs_as_written(fake: FakeGemini) -> None:
    chunks: list[types.GenerateContentResponse] = []
    source = SEED_STREAMING.replace("    print(chunk)", "    chunks.append(chunk)")
    namespace_source = source.replace(
        "async for chunk in response:", "chunks = []\nasync for chunk in response:"
    )
    scope = await run_example(namespace_source)
    chunks = scope["chunks"]
    assert len(chunks) > 2
    assert all(isinstance(c, types.GenerateContentResponse) for c in chunks)
    assert (
        "".join(c.text or "" for c in chunks) == "Echo: Write a long story about space exploration"
    )
    assert fake.last_request.query.get("alt") == "sse"
    assert fake.last_request.body["generationConfig"] == {"maxOutputTokens": 500}


def test_sync_stream_works_in_a_plain_for_loop() -> None:
    texts = [
        c.text for c in genroute.generate_content_stream(model="demo/echo", contents="a b c d e")
    ]
    assert len(texts) > 1
    assert "".join(t or "" for t in texts).endswith("You said: a b c d e")


def test_sync_generate_inside_a_running_loop() -> None:
    async def caller() -> str | None:
        return genroute.generate_content(model="demo/echo", contents="inside").text

    assert (asyncio.run(caller()) or "").endswith("You said: inside")


def test_api_key_and_api_base_kwargs(fake: FakeGemini) -> None:
    os.environ.pop("GEMINI_API_BASE", None)
    response = genroute.generate_content(
        model="gemini/gemini-2.5-flash",
        contents="kw",
        api_key="your-gemini-api-key",
        api_base=fake.base_url,
    )
    assert response.text == "Echo: kw"


def test_upstream_errors_surface_with_code_and_status(fake: FakeGemini) -> None:
    fake.script("error", code=429)
    with pytest.raises(genroute.GenrouteError) as info:
        genroute.generate_content(model="gemini/gemini-2.5-flash", contents="x")
    assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert info.value.retry_after is not None


def test_contents_forms_follow_google_rules() -> None:
    assert to_contents("hi") == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert to_contents(["a", {"text": "b"}]) == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]}
    ]
    turns = to_contents(
        [
            types.Content(role="user", parts=[types.Part(text="q")]),
            types.Content(role="model", parts=[types.Part(text="a")]),
            "follow-up",
        ]
    )
    assert [t["role"] for t in turns] == ["user", "model", "user"]
    blob = to_contents([types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png")])
    assert blob[0]["parts"][0]["inline_data"] == {"data": "iVBORw==", "mime_type": "image/png"}


def test_config_object_and_conveniences_map_to_the_request() -> None:
    config = types.GenerateContentConfig(
        system_instruction="be brief",
        temperature=0.2,
        tools=[types.Tool(google_search=types.GoogleSearch())],
        safety_settings=[
            types.SafetySetting(category="HARM_CATEGORY_HARASSMENT", threshold="BLOCK_NONE")
        ],
        thinking_config=types.ThinkingConfig(thinking_budget=0),
        http_options=types.HttpOptions(timeout=1000),
    )
    request = build_request("hi", config, {"max_tokens": 7, "stop": "END", "seed": 3})
    out = request.to_dict()
    assert out["systemInstruction"] == {"role": "user", "parts": [{"text": "be brief"}]}
    assert out["tools"] == [{"googleSearch": {}}]
    assert out["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    assert out["generationConfig"] == {
        "temperature": 0.2,
        "maxOutputTokens": 7,
        "stopSequences": ["END"],
        "seed": 3,
        "thinkingConfig": {"thinkingBudget": 0},
    }


def test_bad_arguments_are_clear() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        build_request("hi", None, {"colour": "red"})
    with pytest.raises(InvalidRequest, match=r"generationConfig\.temperature"):
        build_request("hi", {"temperature": "hot"}, {})


async def test_client_methods_and_errors() -> None:
    async with genroute.Client(
        [{"model_name": "fast", "params": {"model": "demo/echo"}}]
    ) as client:
        response = await client.agenerate_content(model="fast", contents="via client")
        assert (response.text or "").endswith("You said: via client")
        stream = await client.agenerate_content_stream(model="fast", contents="s")
        assert [c async for c in stream]
        count = await client.acount_tokens(model="fast", contents="one two three")
        assert isinstance(count, types.CountTokensResponse) and count.total_tokens == 3
        embedded = await client.aembed_content(model="fast", contents=["a", "b c"])
        assert isinstance(embedded, types.EmbedContentResponse)
        assert embedded.embeddings is not None and len(embedded.embeddings) == 2
        with pytest.raises(NotFound):
            await client.agenerate_content(model="other", contents="x")
        with pytest.raises(InvalidRequest, match="api_base"):
            await client.agenerate_content(model="fast", contents="x", api_base="http://elsewhere")


def test_client_blocking_methods_reuse_one_loop() -> None:
    with genroute.Client([{"model_name": "fast", "params": {"model": "demo/echo"}}]) as client:
        first = client.generate_content(model="fast", contents="one")
        second = [c.text for c in client.generate_content_stream(model="fast", contents="two")]
        assert (first.text or "").endswith("one")
        assert "".join(t or "" for t in second).endswith("two")
        assert client.count_tokens(model="fast", contents="a b").total_tokens == 2
        assert len(client.embed_content(model="fast", contents="a").embeddings or []) == 1


def test_router_routes_wire_models_only() -> None:
    router = genroute.Router([{"model_name": "fast", "params": {"model": "demo/echo"}}])
    for name in ("agenerate_content", "generate_content", "generate_content_stream"):
        assert not hasattr(router, name)
