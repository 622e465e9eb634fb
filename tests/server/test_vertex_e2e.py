"""End to end: google-genai and gemini-cli, unchanged → genroute (in process) → the fake
Vertex AI, for a Gemini model and a Claude model, with real OAuth2: genroute gets its
token from the fake's token endpoint with a service account the test made, and the fake
takes no other credential.

The cases mirror the conformance suite's (tests/server/test_conformance_e2e.py, whose
helpers they use) for both wires behind Vertex; then what only Vertex has (the lossless
passthrough of Vertex's fields, fields only the Gemini API takes, embeddings by predict
and embedContent), the Router around Vertex deployments (fallbacks when credentials are
refused, cooldowns, virtual keys and spend), the embedded default picking Vertex up from
the environment, and gemini-cli's tool loop.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types

from tests.conftest import InProcessGateway, eventually, genai_client
from tests.curl import curl, sse_events
from tests.fakes.anthropic_upstream import redacted, text, thinking, tool_use
from tests.fakes.vertex_upstream import FakeVertex
from tests.providers.vertex.mock import GOOGLE_CLOUD_ENV
from tests.server.conftest import MASTER_KEY
from tests.server.targets import ToolTurns, gemini_reply
from tests.server.test_conformance_e2e import (
    MIXED_ALPHABET,
    NO_AFC,
    PLAN,
    PNG,
    THINK,
    TWO_CITIES,
    WEATHER,
    answer_text,
    assert_paired,
    parts_of,
    sse_chunks,
    weather,
)
from tests.server.test_gemini_cli_e2e import SECRET, gemini_bin, run_gemini_cli, workspace

__all__ = ["gemini_bin"]
pytestmark = pytest.mark.e2e

GEMINI, CLAUDE = "gemini-2.5-flash", "claude-sonnet-4-5@20250929"
MODELS = {"gemini": "chat", "claude": "claude"}  # wire → the name the gateway serves it as
SIGNATURE = "CiQBVKhc7Eu0c2lnbmVkIGJ5IFZlcnRleA=="
wires = pytest.mark.parametrize("wire", list(MODELS))


def deployment(fake: FakeVertex, model: str, credentials: Any, **extra: Any) -> dict[str, Any]:
    """LiteLLM's Vertex params, pointed at the fake."""
    return {
        "model": f"vertex_ai/{model}",
        "vertex_project": fake.project,
        "vertex_location": fake.location,
        "vertex_credentials": credentials,
        "api_base": fake.base_url,
        **extra,
    }


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeVertex]:
    with FakeVertex(pause=0.002) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def credentials(fake: FakeVertex, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """One service account two ways: a file's path (Gemini) and its JSON (Claude)."""
    account = fake.service_account()
    path = tmp_path_factory.mktemp("vertex-sa") / "service-account.json"
    path.write_text(json.dumps(account))
    return str(path), json.dumps(account)


@pytest.fixture(scope="module")
def gateway(
    fake: FakeVertex, credentials: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    path, inline = credentials
    entries = [
        ("chat", deployment(fake, GEMINI, path), None),
        (GEMINI, deployment(fake, GEMINI, path), None),
        ("claude", deployment(fake, CLAUDE, inline), None),
        ("embed", deployment(fake, "text-embedding-005", path), {"mode": "embedding"}),
        # (a name with "gemini" in it makes google-genai merge the texts, as for
        # multimodal embedding models)
        ("vectors", deployment(fake, "gemini-embedding-001", path), {"mode": "embedding"}),
    ]
    config = {
        "model_list": [
            {"model_name": n, "params": p, **({"model_info": i} if i else {})}
            for n, p, i in entries
        ],
        "router_settings": {"allowed_fails": 1000},  # error cases must not cool these down
        "general_settings": {"master_key": MASTER_KEY},
    }
    gw = InProcessGateway(config, tmp_path_factory.mktemp("vertex-gateway"))
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def _fresh(fake: FakeVertex, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.reset()
    for name in GOOGLE_CLOUD_ENV:  # the shell's Google Cloud settings change nothing here
        monkeypatch.delenv(name, raising=False)


_CLIENTS: dict[tuple[str, str], Any] = {}


def client(gateway: InProcessGateway, version: str = "v1beta") -> Any:
    """google-genai on the gateway with the master key, kept (a client closes its
    connections when it is garbage-collected)."""
    key = (gateway.base_url, version)
    if key not in _CLIENTS:
        _CLIENTS[key] = genai_client(gateway.base_url, MASTER_KEY, version)
    return _CLIENTS[key]


def post(gateway: InProcessGateway, path: str, body: Any) -> tuple[int, dict[str, str], bytes]:
    import urllib.error
    import urllib.request

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


def assert_authenticated_by_the_fake(fake: FakeVertex) -> None:
    """What reached Vertex carried a token Vertex issued, and nothing of genroute's."""
    for request in fake.requests:
        assert request.headers["authorization"].removeprefix("Bearer ") in fake.issued()
        assert MASTER_KEY not in json.dumps(request.headers)
        assert "x-goog-api-key" not in request.headers and "x-api-key" not in request.headers


def script_calls(fake: FakeVertex, wire: str, calls: list[tuple[str, dict[str, Any]]],
                 thought: str | None, stream: bool, show_thought: bool = True) -> list[str]:  # fmt: skip
    """Make the next answer these calls (after a thought), with ids of the test's."""
    ids = [f"call-{args.get('city', name).lower()}" for name, args in calls]
    if wire == "claude":
        content = [thinking(thought)] if thought else [text("Checking.")]
        content += [tool_use(n, a, i) for (n, a), i in zip(calls, ids, strict=True)]
        fake.script("reply", content=content)
        return ids
    parts: list[dict[str, Any]] = (
        [{"text": thought, "thought": True}] if thought and show_thought else []
    )
    for i, ((name, args), ident) in enumerate(zip(calls, ids, strict=True)):
        part: dict[str, Any] = {"functionCall": {"id": ident, "name": name, "args": args}}
        if thought and i == 0:
            part["thoughtSignature"] = SIGNATURE
        parts.append(part)
    if stream:
        chunks = [gemini_reply([p], None) for p in parts[:-1]]
        fake.script("reply", chunks=[*chunks, gemini_reply(parts[-1:])])
    else:
        fake.script("reply", body=gemini_reply(parts))
    return ids


def tool_turns(wire: str, body: Any) -> ToolTurns:
    if wire == "gemini":
        parts = [p for content in body["contents"] for p in content["parts"]]
        calls = [p["functionCall"] for p in parts if "functionCall" in p]
        results = [p["functionResponse"] for p in parts if "functionResponse" in p]
        return ToolTurns(
            [(c.get("id"), c["args"]) for c in calls],
            [(r.get("id"), r["response"]["output"]) for r in results],
        )
    blocks = [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]]
    return ToolTurns(
        [(b["id"], b["input"]) for b in blocks if b["type"] == "tool_use"],
        [(b["tool_use_id"], b["content"]) for b in blocks if b["type"] == "tool_result"],
    )


# -- generate and stream -----------------------------------------------------------------------


@wires
@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_generate(gateway: InProcessGateway, fake: FakeVertex, wire: str, version: str) -> None:
    response = client(gateway, version).models.generate_content(
        model=MODELS[wire],
        contents="hello there gateway",
        config=types.GenerateContentConfig(
            system_instruction=["Be brief.", "Be kind."], max_output_tokens=50, temperature=0.3,
            labels={"team": "search"},
        ),
    )  # fmt: skip
    assert response.text == "Echo: hello there gateway" and response.response_id
    usage = response.usage_metadata
    assert usage and usage.prompt_token_count and usage.candidates_token_count
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count + (
        usage.thoughts_token_count or 0
    )
    seen = fake.last_request
    assert_authenticated_by_the_fake(fake)
    if wire == "gemini":
        assert seen.path == fake.model_path(GEMINI, "generateContent")
        assert seen.body["systemInstruction"]["parts"] == [
            {"text": "Be brief."},
            {"text": "Be kind."},
        ]
        assert seen.body["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.3}
        assert seen.body["labels"] == {"team": "search"}  # only Vertex takes labels
        assert response.model_version == GEMINI and usage.traffic_type == "ON_DEMAND"
    else:
        assert seen.path == fake.model_path(CLAUDE, "rawPredict", "anthropic")
        assert seen.body["anthropic_version"] == "vertex-2023-10-16" and "model" not in seen.body
        assert seen.body["system"] == [text("Be brief."), text("Be kind.")]
        assert (seen.body["max_tokens"], seen.body["temperature"]) == (50, 0.3)
        assert "labels" not in seen.body


@wires
async def test_generate_and_stream_async(gateway: InProcessGateway, wire: str) -> None:
    async with client(gateway, "v1").aio as aio:
        response = await aio.models.generate_content(model=MODELS[wire], contents="async hi")
        assert response.text == "Echo: async hi"
        stream = await aio.models.generate_content_stream(model=MODELS[wire], contents="go on")
        chunks = [c async for c in stream]
    assert "".join(c.text or "" for c in chunks) == "Echo: go on"


@wires
def test_stream(gateway: InProcessGateway, fake: FakeVertex, wire: str) -> None:
    chunks = list(
        client(gateway).models.generate_content_stream(
            model=MODELS[wire], contents="one two three four five six"
        )
    )
    assert "".join(c.text or "" for c in chunks) == "Echo: one two three four five six"
    finishes = [c.candidates[0].finish_reason if c.candidates else None for c in chunks]
    assert len(chunks) >= 3 and finishes[-1] == types.FinishReason.STOP and not any(finishes[:-1])
    assert chunks[-1].usage_metadata and chunks[-1].usage_metadata.total_token_count
    seen = fake.last_request
    if wire == "gemini":
        assert seen.path == fake.model_path(GEMINI, "streamGenerateContent")
        assert seen.query == {"alt": "sse"}
    else:
        assert seen.path == fake.model_path(CLAUDE, "streamRawPredict", "anthropic")
        assert seen.body["stream"] is True


@wires
def test_stream_is_sse_without_nulls_or_empty_parts(gateway: InProcessGateway, wire: str) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "raw stream please"}]}]}
    path = f"/v1beta/models/{MODELS[wire]}:streamGenerateContent?alt=sse"
    status, headers, raw = post(gateway, path, body)
    assert status == 200 and headers["content-type"] == "text/event-stream"
    assert b"null" not in raw and b'"parts":[]' not in raw
    assert answer_text(parts_of(sse_chunks(raw))) == "Echo: raw stream please"


# -- tools and thinking ------------------------------------------------------------------------


@wires
@pytest.mark.parametrize("keep_ids", [True, False], ids=["ids-kept", "ids-dropped"])
def test_parallel_calls_to_one_function_map_back(
    gateway: InProcessGateway, fake: FakeVertex, wire: str, keep_ids: bool
) -> None:
    sdk = client(gateway)
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])], automatic_function_calling=NO_AFC
    )
    question = types.Content(role="user", parts=[types.Part(text="Weather in Paris and Rome?")])
    ids = script_calls(fake, wire, TWO_CITIES, None, stream=False)
    first = sdk.models.generate_content(model=MODELS[wire], contents=[question], config=config)
    calls = first.function_calls or []
    assert [(c.name, c.args) for c in calls] == TWO_CITIES and [c.id for c in calls] == ids
    assert first.candidates and first.candidates[0].content
    model_turn = first.candidates[0].content
    if keep_ids:
        answers = [weather(c) for c in reversed(calls)]
    else:
        for part in model_turn.parts or []:
            if part.function_call:
                part.function_call.id = None
        answers = [weather(c, keep_id=False) for c in calls]
    second = sdk.models.generate_content(
        model=MODELS[wire],
        contents=[question, model_turn, types.Content(role="user", parts=answers)],
        config=config,
    )
    turns = tool_turns(wire, fake.last_request.body)
    assert_paired(turns)
    if keep_ids:  # mapped back to Vertex's ids
        assert [i for i, _ in turns.calls] == ids
    order = ["Rome", "Paris"] if keep_ids else ["Paris", "Rome"]
    results = "Results: " + " | ".join(f"sunny in {city}" for city in order)
    assert second.text == (results if wire == "claude" else f"Echo: {results}")


@wires
def test_thinking_across_a_tool_loop(
    gateway: InProcessGateway, fake: FakeVertex, wire: str
) -> None:
    """The model turn, thoughts included, sent back as the Python SDK keeps history: the
    thought signature reaches Vertex unchanged (Gemini), the thinking block before the
    tool_use blocks (Claude)."""
    script_calls(fake, wire, TWO_CITIES, PLAN, stream=False)
    sdk = client(gateway, "v1")
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        automatic_function_calling=NO_AFC,
        thinking_config=THINK,
    )
    question = types.Content(role="user", parts=[types.Part(text="Paris and Rome?")])
    first = sdk.models.generate_content(model=MODELS[wire], contents=[question], config=config)
    assert first.candidates and first.candidates[0].content
    parts = first.candidates[0].content.parts or []
    assert parts[0].thought and parts[0].text == PLAN
    assert next(p for p in parts if p.function_call).thought_signature
    answers = [weather(c) for c in first.function_calls or []]
    second = sdk.models.generate_content(
        model=MODELS[wire],
        contents=[question, first.candidates[0].content, types.Content(role="user", parts=answers)],
        config=config,
    )
    body = fake.last_request.body
    assert_paired(tool_turns(wire, body))
    if wire == "gemini":
        model_parts = body["contents"][1]["parts"]
        assert model_parts[0] == {"text": PLAN, "thought": True}
        assert model_parts[1]["thoughtSignature"].rstrip("=") == SIGNATURE.rstrip("=")
        assert second.text == "Echo: Results: sunny in Paris | sunny in Rome"
    else:
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
        assistant = body["messages"][1]["content"]
        assert assistant[0] == thinking(PLAN)
        assert [b["type"] for b in assistant] == ["thinking", "tool_use", "tool_use"]
        assert second.text == "Results: sunny in Paris | sunny in Rome"


@wires
@pytest.mark.parametrize("include_thoughts", [True, False], ids=["thoughts", "no-thoughts"])
def test_thinking_tool_loop_gemini_cli_style(
    gateway: InProcessGateway, fake: FakeVertex, wire: str, include_thoughts: bool
) -> None:
    """gemini-cli streams, drops thought parts from its history and echoes thoughtSignature
    on the functionCall part only."""
    command = [("run_shell_command", {"command": "ls"})]
    hidden = redacted("cli")
    if wire == "claude":
        fake.script("reply", content=[thinking(PLAN), hidden, tool_use(*command[0])])
    else:
        script_calls(fake, wire, command, PLAN, stream=True, show_thought=include_thoughts)
    path = f"/v1beta/models/{MODELS[wire]}:streamGenerateContent?alt=sse"
    config = {"thinkingConfig": {"includeThoughts": include_thoughts, "thinkingBudget": 8192},
              "temperature": 1, "topP": 0.95, "topK": 64}  # fmt: skip
    tools = [{"functionDeclarations": [{"name": "run_shell_command", "parametersJsonSchema": {
        "type": "object", "properties": {"command": {"type": "string"}}}}]}]  # fmt: skip
    history: list[dict[str, Any]] = [{"role": "user", "parts": [{"text": "list files"}]}]
    status, _, raw = post(
        gateway, path, {"contents": history, "tools": tools, "generationConfig": config}
    )
    assert status == 200, raw
    parts = parts_of(sse_chunks(raw))
    assert bool([p for p in parts if p.get("thought")]) is include_thoughts
    calls = [p for p in parts if "functionCall" in p]
    assert len(calls) == 1 and calls[0].get("thoughtSignature")
    history += [
        {"role": "model", "parts": calls},
        {"role": "user", "parts": [{"functionResponse": {
            "id": calls[0]["functionCall"].get("id"), "name": "run_shell_command",
            "response": {"output": "a.txt b.txt"}}}]},
    ]  # fmt: skip
    status, _, raw = post(
        gateway, path, {"contents": history, "tools": tools, "generationConfig": config}
    )
    assert status == 200, raw
    final = answer_text(parts_of(sse_chunks(raw)))
    body = fake.last_request.body
    if wire == "claude":
        assert final == "Results: a.txt b.txt"
        assert body["messages"][1]["content"][:2] == [thinking(PLAN), hidden]
    else:
        assert final == "Echo: Results: a.txt b.txt"
        assert body["contents"][1]["parts"][0]["thoughtSignature"] == SIGNATURE


@wires
def test_image_input(gateway: InProcessGateway, fake: FakeVertex, wire: str) -> None:
    for image in (PNG, MIXED_ALPHABET):
        response = client(gateway).models.generate_content(
            model=MODELS[wire],
            contents=[types.Part.from_bytes(data=image, mime_type="image/png"), "What is this?"],
        )
        assert response.text == "Echo: What is this?"
        body = fake.last_request.body
        if wire == "gemini":
            data = body["contents"][0]["parts"][0]["inlineData"]["data"]
        else:
            source = body["messages"][0]["content"][0]["source"]
            assert source["type"] == "base64" and source["media_type"] == "image/png"
            data = source["data"]
        assert base64.urlsafe_b64decode(data.replace("+", "-").replace("/", "_")) == image


# -- countTokens and embeddings ----------------------------------------------------------------


@wires
def test_count_tokens(gateway: InProcessGateway, fake: FakeVertex, wire: str) -> None:
    total = (
        client(gateway, "v1")
        .models.count_tokens(
            model=MODELS[wire], contents="The quick brown fox jumps over the lazy dog."
        )
        .total_tokens
    )
    assert total == 9
    with_tools = {"generateContentRequest": {
        "model": f"models/{MODELS[wire]}",
        "contents": [{"role": "user", "parts": [{"text": "a b c"}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "tools": [{"functionDeclarations": [{"name": "get_weather"}]}]}}  # fmt: skip
    status, _, raw = post(gateway, f"/v1beta/models/{MODELS[wire]}:countTokens", with_tools)
    assert status == 200, raw
    seen = fake.last_request
    if wire == "gemini":  # Vertex takes the request's fields at the top
        assert json.loads(raw)["totalTokens"] == 3 + 2
        assert seen.path == fake.model_path(GEMINI, "countTokens")
        assert set(seen.body) == {"contents", "systemInstruction", "tools"}
    else:  # Vertex's count-tokens endpoint for Claude: the body names the model
        assert json.loads(raw)["totalTokens"] == 3 + 2 + 5
        assert seen.path == fake.model_path("count-tokens", "rawPredict", "anthropic")
        assert seen.body["model"] == CLAUDE and seen.body["system"] == [text("be brief")]


@pytest.mark.parametrize(("model", "method"), [("embed", "predict"), ("vectors", "batchEmbedContents")])  # fmt: skip
def test_embeddings(gateway: InProcessGateway, fake: FakeVertex, model: str, method: str) -> None:
    result = client(gateway).models.embed_content(
        model=model,
        contents=["first", "second"],
        config=types.EmbedContentConfig(output_dimensionality=8, task_type="RETRIEVAL_DOCUMENT"),
    )
    assert result.embeddings and [len(e.values or []) for e in result.embeddings] == [8, 8]
    assert result.embeddings[0].values != result.embeddings[1].values
    seen = fake.last_request
    assert seen.action == method
    if method == "predict":
        assert seen.body == {"instances": [{"content": "first", "task_type": "RETRIEVAL_DOCUMENT"},
                                           {"content": "second", "task_type": "RETRIEVAL_DOCUMENT"}],
                             "parameters": {"outputDimensionality": 8}}  # fmt: skip
    else:
        config = {"taskType": "RETRIEVAL_DOCUMENT", "outputDimensionality": 8}
        assert [r["embedContentConfig"] for r in seen.body["requests"]] == [config, config]
    status, _, raw = post(
        gateway, f"/v1beta/models/{model}:embedContent", {"content": {"parts": [{"text": "x"}]}}
    )
    assert status == 200 and json.loads(raw)["embedding"]["values"]


def test_claude_has_no_embeddings(gateway: InProcessGateway, fake: FakeVertex) -> None:
    with pytest.raises(errors.ClientError) as info:
        client(gateway).models.embed_content(model="claude", contents="x")
    assert info.value.code == 400 and "no embeddings API" in (info.value.message or "")
    assert fake.requests == []


# -- what only Vertex has ----------------------------------------------------------------------


def test_the_passthrough_is_lossless_both_ways(gateway: InProcessGateway, fake: FakeVertex) -> None:
    """Vertex's own fields reach the client (createTime, trafficType, fields no SDK knows
    yet), labels reach Vertex, and what only the Gemini API takes is left out."""
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi", "partMetadata": {"ui": 1}}]}],
        "labels": {"cost-center": "42"},
        "store": True,
    }
    status, _, raw = post(gateway, "/v1beta/models/chat:generateContent", body)
    assert status == 200, raw
    reply = json.loads(raw)
    assert reply["createTime"] and reply["usageMetadata"]["trafficType"] == "ON_DEMAND"
    assert reply["futureField"] == {"note": "unknown to current SDKs", "values": [1, 2, 3]}
    assert reply["candidates"][0]["futureCandidateField"] and reply["responseId"]
    assert fake.last_request.body == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                                      "labels": {"cost-center": "42"}}  # fmt: skip


def test_what_only_the_gemini_api_takes_is_a_400_naming_it(
    gateway: InProcessGateway, fake: FakeVertex
) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"fileSearch": {"fileSearchStoreNames": ["fileSearchStores/a"]}}]}  # fmt: skip
    status, _, raw = post(gateway, "/v1beta/models/chat:generateContent", body)
    error = json.loads(raw)["error"]
    assert status == 400 and error["status"] == "INVALID_ARGUMENT"
    assert error["message"].startswith("tools[0].fileSearch:") and fake.requests == []
    config = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])
    with pytest.raises(errors.ClientError) as info:  # Claude has no Google Search
        client(gateway).models.generate_content(model="claude", contents="x", config=config)
    assert "tools[0].googleSearch" in (info.value.message or "") and fake.requests == []


# -- errors ------------------------------------------------------------------------------------


@wires
def test_vertexs_quota_error_is_429_with_retry_info(
    gateway: InProcessGateway, fake: FakeVertex, wire: str
) -> None:
    fake.script("error", code=429, retry_delay="7s")
    with pytest.raises(errors.ClientError) as info:
        client(gateway).models.generate_content(model=MODELS[wire], contents="hi")
    assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert "Resource exhausted" in (info.value.message or "")
    details = info.value.details["error"]["details"]
    assert {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"} in details


@wires
def test_mid_stream_error(gateway: InProcessGateway, fake: FakeVertex, wire: str) -> None:
    if wire == "gemini":
        fake.script("stream_error", after=2, code=500)
        expected = (500, "INTERNAL")
    else:
        fake.script("stream_error", after=5, type="overloaded_error")
        expected = (503, "UNAVAILABLE")
    received: list[str] = []
    with pytest.raises(errors.ServerError) as info:
        for chunk in client(gateway).models.generate_content_stream(
            model=MODELS[wire], contents="one two three four five six"
        ):
            received.append(chunk.text or "")
    assert (info.value.code, info.value.status) == expected
    said = "".join(received)
    assert said and "Echo: one two three four five six".startswith(said)


# -- the Router around Vertex: fallbacks, cooldowns, keys, spend, logs --------------------------


@pytest.fixture(scope="module")
def routed(
    fake: FakeVertex, credentials: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    path, _ = credentials
    forged = fake.service_account("forged@genroute-test.iam.gserviceaccount.com")
    forged["private_key"] = json.loads(credentials[1])["private_key"]  # not this account's key
    tmp = tmp_path_factory.mktemp("vertex-routed")

    def item(group: str, params: dict[str, Any], ident: str) -> dict[str, Any]:
        return {"model_name": group, "params": params, "model_info": {"id": ident}}

    config = {
        "model_list": [
            item("chat", deployment(fake, GEMINI, path), "chat-1"),
            item("refused", deployment(fake, GEMINI, forged), "refused-1"),
            item("cooling", deployment(fake, GEMINI, path, order=1), "cooling-bad"),
            item("cooling", deployment(fake, GEMINI, path, order=2), "cooling-good"),
        ],
        "router_settings": {
            "num_retries": 1,
            "retry_backoff_base": 0.01,
            "allowed_fails": 0,
            "cooldown_time": 60,
            "fallbacks": [{"refused": ["chat"]}],
        },
        "general_settings": {
            "master_key": MASTER_KEY,
            "database_url": f"sqlite:///{tmp / 'spend.db'}",
            "spend_flush_interval": 0.2,
        },
    }
    gw = InProcessGateway(config, tmp)
    yield gw
    gw.stop()


def test_refused_credentials_fall_back_and_cool_down(
    routed: InProcessGateway, fake: FakeVertex
) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
    refusals = fake.token_refusals
    status, headers, raw = post(routed, "/v1beta/models/refused:generateContent", body)
    assert status == 200 and json.loads(raw)["candidates"]
    assert headers["x-genroute-fallback"] == "chat" and headers["x-genroute-deployment"] == "chat-1"
    assert fake.token_refusals == refusals + 1  # the token endpoint refused the JWT
    assert [r.path for r in fake.requests] == [fake.model_path(GEMINI, "generateContent")]
    status, headers, _ = post(routed, "/v1beta/models/refused:generateContent", body)
    assert status == 200 and headers["x-genroute-fallback"] == "chat"
    assert fake.token_refusals == refusals + 1  # cooling down: not tried again


def test_an_overloaded_deployment_is_retried_elsewhere_then_cools_down(
    routed: InProcessGateway, fake: FakeVertex
) -> None:
    fake.script("error", code=503)
    body = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}
    status, headers, _ = post(routed, "/v1beta/models/cooling:generateContent", body)
    assert status == 200 and headers["x-genroute-attempts"] == "2"
    assert headers["x-genroute-deployment"] == "cooling-good"
    status, headers, _ = post(routed, "/v1beta/models/cooling:generateContent", body)
    assert (
        headers["x-genroute-attempts"] == "1" and headers["x-genroute-deployment"] == "cooling-good"
    )


def test_virtual_keys_spend_and_logs(routed: InProcessGateway, fake: FakeVertex) -> None:
    import urllib.request

    def manage(method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            routed.base_url + path,
            data=None if body is None else json.dumps(body).encode(),
            headers={"content-type": "application/json", "x-goog-api-key": MASTER_KEY},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())

    key = manage("POST", "/key/generate", {"models": ["chat"], "key_alias": "vertex"})["key"]
    sdk = genai_client(routed.base_url, key)
    assert sdk.models.generate_content(model="chat", contents="spend this").text
    chunks = list(sdk.models.generate_content_stream(model="chat", contents="and this"))
    assert chunks[-1].usage_metadata
    with pytest.raises(errors.ClientError) as info:
        sdk.models.generate_content(model="cooling", contents="not allowed")
    assert info.value.code == 403
    for request in fake.requests:
        assert key not in json.dumps(request.headers) and MASTER_KEY not in json.dumps(
            request.headers
        )

    def spent() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = manage("GET", f"/spend/logs?api_key={key}&limit=100")
        return [r for r in rows if r["cost"] > 0]

    eventually(lambda: len(spent()) >= 2)
    rows = spent()
    assert {(r["provider"], r["provider_model"]) for r in rows} == {("vertex_ai", GEMINI)}
    key_spend = manage("GET", f"/key/info?key={key}")["info"]["spend"]
    assert key_spend == pytest.approx(sum(r["cost"] for r in rows)) and key_spend > 0
    eventually(lambda: "vertex_ai" in routed.log())  # request lines are written off the loop
    log = routed.log()
    assert key not in log
    assert not any(token in log for token in fake.issued())


# -- the embedded default ----------------------------------------------------------------------


def test_the_embedded_default_picks_vertex_up_from_the_environment(
    fake: FakeVertex, credentials: tuple[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """GOOGLE_APPLICATION_CREDENTIALS + VERTEXAI_PROJECT / VERTEXAI_LOCATION, no config:
    gemini-* and claude-* are served on Vertex (its host is the fake here)."""
    from genroute.providers.vertex import provider

    path, _ = credentials
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", path)
    monkeypatch.setenv("VERTEXAI_PROJECT", fake.project)
    monkeypatch.setenv("VERTEXAI_LOCATION", fake.location)
    monkeypatch.setattr(provider, "default_base", lambda location: fake.base_url)
    gateway = InProcessGateway(None, tmp_path)
    try:
        sdk = genai_client(gateway.base_url, "any-key")
        assert (
            sdk.models.generate_content(model="gemini-2.5-pro", contents="hi env").text
            == "Echo: hi env"
        )
        assert fake.last_request.path == fake.model_path("gemini-2.5-pro", "generateContent")
        assert (
            sdk.models.generate_content(model=CLAUDE, contents="hi claude").text
            == "Echo: hi claude"
        )
        assert fake.last_request.path == fake.model_path(CLAUDE, "rawPredict", "anthropic")
        names = {m.name for m in sdk.models.list()}
        assert {"models/gemini-*", "models/claude-*", "models/vertex_ai/*"} <= names
        assert "models/demo" not in names
        assert_authenticated_by_the_fake(fake)
    finally:
        gateway.stop()


# -- gemini-cli --------------------------------------------------------------------------------


@wires
def test_gemini_cli_tool_loop_through_vertex(
    gemini_bin: Path, gateway: InProcessGateway, fake: FakeVertex, wire: str, tmp_path: Path
) -> None:
    work, secret = workspace(tmp_path)
    call = ("read_file", {"file_path": str(secret)})
    if wire == "claude":
        fake.script("reply", content=[tool_use(*call)])
    else:
        part = {"functionCall": {"name": call[0], "args": call[1]}, "thoughtSignature": SIGNATURE}
        fake.script("reply", chunks=[gemini_reply([part])])
    prompt = "What does secret.txt say?"
    output = run_gemini_cli(gemini_bin, gateway, MODELS[wire], work, prompt, key=MASTER_KEY)
    assert SECRET in output["response"]
    assert output["stats"]["tools"]["byName"]["read_file"]["success"] == 1
    generations = [r for r in fake.requests if r.action in ("streamGenerateContent", "streamRawPredict", "generateContent", "rawPredict")]  # fmt: skip
    last = generations[-1].body
    if wire == "claude":
        results = [b for m in last["messages"] if isinstance(m["content"], list)
                   for b in m["content"] if b.get("type") == "tool_result"]  # fmt: skip
        assert results and SECRET in json.dumps(results)
    else:
        responses = [p for c in last["contents"] for p in c["parts"] if "functionResponse" in p]
        assert responses and SECRET in json.dumps(responses)
        calls = [p for c in last["contents"] for p in c["parts"] if "functionCall" in p]
        assert calls[-1]["thoughtSignature"] == SIGNATURE  # gemini-cli echoed it; Vertex got it
    assert_authenticated_by_the_fake(fake)


@wires
def test_curl_as_in_vertex_ais_rest_samples(
    gateway: InProcessGateway, fake: FakeVertex, wire: str
) -> None:
    """Vertex AI's REST samples, with only the host and the token changed (genroute's key
    as the Bearer token), for a Gemini and a Claude group: an answer and a stream."""
    base = f"/v1/projects/my-project/locations/us-central1/publishers/google/models/{MODELS[wire]}"
    body = {"contents": {"role": "user", "parts": {"text": "Explain how AI works"}}}
    status, text = curl(gateway.base_url, base + ":generateContent", body, MASTER_KEY, bearer=True)
    assert status == 200, text
    assert answer_text(json.loads(text)["candidates"][0]["content"]["parts"])
    path = base + ":streamGenerateContent?alt=sse"
    status, text = curl(gateway.base_url, path, body, MASTER_KEY, stream=True, bearer=True)
    events = sse_events(text)
    assert status == 200 and events, text
    assert all(e["candidates"][0]["content"]["role"] == "model" for e in events)
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    status, text = curl(gateway.base_url, base + ":generateContent", body, "sk-wrong", bearer=True)
    assert status in (400, 401) and json.loads(text)["error"]["status"] in (
        "INVALID_ARGUMENT",
        "UNAUTHENTICATED",
    )
