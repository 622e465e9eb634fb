"""Self-tests for the fake Gemini upstream: google-genai and raw HTTP must see Google."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from google import genai
from google.genai import errors, types

from tests.conftest import genai_client

from .gemini_upstream import (
    DEFAULT_API_KEY,
    FRAMINGS,
    FakeGemini,
    build_count_tokens_response,
    build_generate_response,
    build_stream_chunks,
    embedding_values,
)

MODEL = "gemini-2.5-flash"
BODY: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": "hello fake gemini"}]}]}
GEN = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent"


@pytest.fixture(autouse=True)
def _no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage() for r in bad]


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini() as server:
        yield server


def sdk(fake: FakeGemini, key: str = DEFAULT_API_KEY, version: str = "v1beta") -> genai.Client:
    client: genai.Client = genai_client(fake.base_url, key, version)
    return client


def call(
    fake: FakeGemini,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = DEFAULT_API_KEY,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    """One request with http.client; returns status, lower-cased headers, body."""
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        hdrs["x-goog-api-key"] = key
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def raw_reads(fake: FakeGemini, path: str, body: Any) -> tuple[bytes, list[bytes]]:
    """POST over a bare socket; returns the response head and every recv() after it."""
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-goog-api-key: {DEFAULT_API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n"
    )
    reads: list[bytes] = []
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(head.encode() + payload)
        while chunk := sock.recv(65536):
            reads.append(chunk)
    response_head, _, rest = reads[0].partition(b"\r\n\r\n")
    return response_head, [rest, *reads[1:]] if rest else reads[1:]


def dechunk(data: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out, data = out + data[:size], data[size + 2 :]


def sse_events(body: bytes) -> list[Any]:
    text = body.decode().replace("\r\n", "\n")
    return [json.loads(e.removeprefix("data: ")) for e in text.split("\n\n") if e]


# ------------------------------------------------------------------ generateContent


def test_generate_content_with_sdk(fake: FakeGemini) -> None:
    thinking = types.ThinkingConfig(include_thoughts=True, thinking_budget=128)
    with sdk(fake) as client:
        reply = client.models.generate_content(
            model=MODEL,
            contents="hello fake gemini",
            config=types.GenerateContentConfig(thinking_config=thinking, temperature=0.5),
        )
    assert reply.text == "Echo: hello fake gemini"
    assert reply.candidates
    candidate = reply.candidates[0]
    assert candidate.content and candidate.content.parts
    thought, text = candidate.content.parts
    assert thought.thought is True and text.thought_signature
    assert candidate.citation_metadata and candidate.citation_metadata.citations
    assert candidate.safety_ratings and candidate.grounding_metadata and candidate.avg_logprobs
    usage = reply.usage_metadata
    assert usage and usage.total_token_count == (
        (usage.prompt_token_count or 0)
        + (usage.candidates_token_count or 0)
        + (usage.thoughts_token_count or 0)
    )
    assert reply.model_version == MODEL and reply.response_id
    rec = fake.last_request
    assert (rec.method, rec.path, rec.model, rec.action) == ("POST", GEN, MODEL, "generateContent")
    assert rec.headers["x-goog-api-key"] == DEFAULT_API_KEY
    assert rec.body["generationConfig"]["thinkingConfig"]["thinking_budget"] == 128


def test_raw_reply_is_rich_deterministic_and_lossless(fake: FakeGemini) -> None:
    status, headers, data = call(fake, "POST", GEN, BODY)
    assert status == 200 and headers["content-type"].startswith("application/json")
    reply = json.loads(data)
    assert reply == build_generate_response(BODY, MODEL)
    assert "futureField" in reply and "futureCandidateField" in reply["candidates"][0]
    usage = reply["usageMetadata"]
    for name in ("cachedContentTokenCount", "promptTokensDetails", "candidatesTokensDetails"):
        assert name in usage
    assert call(fake, "POST", GEN, BODY)[2] == data
    for path in (
        f"/v1/models/{MODEL}:generateContent",
        f"/v1alpha/models/{MODEL}:generateContent",
        f"/some/prefix/v1beta/models/{MODEL}:generateContent?alt=sse",
    ):
        assert call(fake, "POST", path, BODY)[0] == 200


def test_snake_case_and_rich_requests_are_accepted(fake: FakeGemini) -> None:
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "hi"},
                    {"inline_data": {"mime_type": "image/png", "data": "iVBORw=="}},
                ],
            },
            {
                "role": "model",
                "parts": [
                    {"function_call": {"name": "f", "args": {}}, "thought_signature": "c2ln"}
                ],
            },
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "f", "response": {"output": "ok"}}}],
            },
        ],
        "system_instruction": {"role": "user", "parts": [{"text": "be nice"}]},
        "generation_config": {"thinking_config": {"include_thoughts": True}, "topK": 40.0},
        "tools": [{"googleSearch": {}}],
        "safety_settings": [],
    }
    status, _, data = call(fake, "POST", GEN, body)
    assert status == 200
    assert (
        json.loads(data)["candidates"][0]["content"]["parts"][1]["text"]
        == "Echo: [functionResponse]"
    )


def test_large_body_is_accepted(fake: FakeGemini) -> None:
    image = {"inlineData": {"mimeType": "image/png", "data": "A" * 5_000_000}}
    body = {"contents": [{"role": "user", "parts": [{"text": "look"}, image]}]}
    assert call(fake, "POST", GEN, body)[0] == 200
    assert len(fake.last_request.raw_body) > 5_000_000


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        (b"{not json", 400, "Invalid JSON payload"),
        ({}, 400, "contents is not specified"),
        ({"contents": []}, 400, "contents is not specified"),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, 400, "valid role"),
        ({"contents": [{"role": "user", "parts": []}]}, 400, "must not be empty"),
        ({"contents": [{"role": "user", "parts": [{"thought": True}]}]}, 400, "oneof"),
        ({"contents": [{"parts": [{"text": "x", "inline_data": {}}]}]}, 400, "already set"),
        ({"contents": [{"parts": [{"text": "x", "bogus": 1}]}]}, 400, 'Unknown name "bogus"'),
        ({**BODY, "frobnicate": 1}, 400, 'Unknown name "frobnicate"'),
        ([1, 2], 400, "Expected an object"),
    ],
)
def test_invalid_requests_are_refused(fake: FakeGemini, body: Any, code: int, needle: str) -> None:
    status, headers, data = call(fake, "POST", GEN, body)
    error = json.loads(data)["error"]
    assert (status, error["code"], error["status"]) == (code, code, "INVALID_ARGUMENT")
    assert needle in error["message"]
    assert headers["content-type"].startswith("application/json")


def test_unknown_model_and_routes(fake: FakeGemini) -> None:
    status, _, data = call(fake, "POST", "/v1beta/models/gpt-4o:generateContent", BODY)
    assert status == 404 and json.loads(data)["error"]["status"] == "NOT_FOUND"
    assert call(fake, "POST", f"/v1beta/models/{MODEL}:frobnicate", BODY)[0] == 404
    assert call(fake, "GET", "/nope")[0] == 404
    with FakeGemini(models=["org/custom-model"]) as custom:
        path = "/v1beta/models/org/custom-model:generateContent"
        assert call(custom, "POST", path, BODY)[0] == 200
        assert custom.last_request.model == "org/custom-model"
        assert call(custom, "POST", GEN, BODY)[0] == 404


# ------------------------------------------------------------------------------ auth


def test_auth_checks(fake: FakeGemini) -> None:
    with sdk(fake, key="wrong-key") as client, pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model=MODEL, contents="hi")
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert info.value.details["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    status, _, data = call(fake, "POST", GEN, BODY, key=None)
    assert (status, json.loads(data)["error"]["status"]) == (403, "PERMISSION_DENIED")
    status, _, _ = call(fake, "POST", GEN, BODY, key=None, headers={"Authorization": "Bearer x"})
    assert status == 401
    assert call(fake, "POST", f"{GEN}?key={DEFAULT_API_KEY}", BODY, key=None)[0] == 200
    assert call(fake, "POST", GEN, BODY, key=f" {DEFAULT_API_KEY} ")[0] == 200


# ------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("framing", FRAMINGS)
def test_stream_framings_parse_with_sdk(fake: FakeGemini, framing: str) -> None:
    fake.framing = framing
    with sdk(fake) as client:
        chunks = list(
            client.models.generate_content_stream(model=MODEL, contents="one two three four five")
        )
    expected = build_stream_chunks(fake.last_request.body, MODEL)
    assert len(chunks) == len(expected) == 5
    assert "".join(c.text or "" for c in chunks) == "Echo: one two three four five"
    assert (
        chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    )
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks[:-1])
    assert all(c.usage_metadata and c.usage_metadata.prompt_token_count == 5 for c in chunks)
    last_parts = chunks[-1].candidates[0].content.parts  # type: ignore[union-attr]
    assert last_parts and last_parts[0].text == "" and last_parts[0].thought_signature
    assert fake.events_sent == 5
    assert fake.last_request.query == {"alt": "sse"}


@pytest.mark.parametrize("framing", FRAMINGS)
def test_stream_wire_bytes(fake: FakeGemini, framing: str) -> None:
    fake.framing = framing
    head, reads = raw_reads(fake, f"{STREAM}?alt=sse", BODY)
    assert b"Transfer-Encoding: chunked" in head and b"Content-Type: text/event-stream" in head
    body = dechunk(b"".join(reads))
    expected = build_stream_chunks(BODY, MODEL)
    sep = "\n\n" if framing == "lf" else "\r\n\r\n"
    assert body.decode() == "".join(
        f"data: {json.dumps(c, separators=(',', ':'))}{sep}" for c in expected
    )
    events = len(expected)
    if framing == "split":
        assert len(reads) >= 3 * events
    elif framing == "merged":
        assert len(reads) < events
    else:
        assert events <= len(reads) <= events + 1


def test_stream_without_alt_is_a_json_array(fake: FakeGemini) -> None:
    status, headers, data = call(fake, "POST", STREAM, BODY)
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(data) == build_stream_chunks(BODY, MODEL)


@pytest.mark.asyncio
# google-genai 3.6.1 subclasses aiohttp.ClientSession for its async client, which aiohttp warns about.
@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
async def test_async_split_pieces_arrive_separately(fake: FakeGemini) -> None:
    headers = {"x-goog-api-key": DEFAULT_API_KEY, "x-fake-framing": "split"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.base_url}{STREAM}?alt=sse", json=BODY, headers=headers) as resp,
    ):
        assert resp.status == 200
        pieces = [piece async for piece in resp.content.iter_any()]
    assert len(pieces) >= 3 * len(build_stream_chunks(BODY, MODEL))
    assert any(p.endswith(b"\r\n\r") or p == b"\n" for p in pieces)
    assert sse_events(b"".join(pieces)) == build_stream_chunks(BODY, MODEL)
    fake.framing = "lf"
    async with sdk(fake).aio as client:
        stream = await client.models.generate_content_stream(model=MODEL, contents="async works")
        texts = [chunk.text or "" async for chunk in stream]
    assert "".join(texts) == "Echo: async works"


# --------------------------------------------------------------------------- scripts


@pytest.mark.parametrize(
    ("code", "exc", "status"),
    [
        (429, errors.ClientError, "RESOURCE_EXHAUSTED"),
        (500, errors.ServerError, "INTERNAL"),
        (503, errors.ServerError, "UNAVAILABLE"),
        (504, errors.ServerError, "DEADLINE_EXCEEDED"),
    ],
)
def test_error_scripts_raise_in_sdk(
    fake: FakeGemini, code: int, exc: type[errors.APIError], status: str
) -> None:
    fake.script("error", code=code)
    with sdk(fake) as client:
        with pytest.raises(exc) as info:
            client.models.generate_content(model=MODEL, contents="hi")
        assert (info.value.code, info.value.status) == (code, status)
        fake.script("error", code=code)
        with pytest.raises(exc) as info:
            list(client.models.generate_content_stream(model=MODEL, contents="hi"))
        assert (info.value.code, info.value.status) == (code, status)
        assert client.models.generate_content(model=MODEL, contents="hi").text == "Echo: hi"


def test_quota_error_details(fake: FakeGemini) -> None:
    fake.script("error", code=429, retry_delay="2s")
    status, headers, data = call(fake, "POST", GEN, BODY)
    error = json.loads(data)["error"]
    assert (status, error["status"], headers["retry-after"]) == (429, "RESOURCE_EXHAUSTED", "2")
    retry = [d for d in error["details"] if d["@type"].endswith("google.rpc.RetryInfo")]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]
    fake.script("error", code=400, status="FAILED_PRECONDITION", message="nope")
    error = json.loads(call(fake, "POST", GEN, BODY)[2])["error"]
    assert error == {"code": 400, "message": "nope", "status": "FAILED_PRECONDITION"}


def test_script_match_times_and_reset(fake: FakeGemini) -> None:
    fake.script("error", code=503, times=2, match=":streamGenerateContent")
    assert call(fake, "POST", GEN, BODY)[0] == 200
    assert [call(fake, "POST", STREAM, BODY)[0] for _ in range(3)] == [503, 503, 200]
    fake.script("error", code=500, times=None)
    assert [call(fake, "POST", GEN, BODY)[0] for _ in range(2)] == [500, 500]
    fake.reset()
    assert fake.requests == [] and call(fake, "POST", GEN, BODY)[0] == 200
    assert len(fake.wait_for_requests(1, timeout=1)) == 1
    with pytest.raises(ValueError):
        fake.script("explode")
    with pytest.raises(TypeError):
        fake.script("drop", code=500)


def test_stream_error_after_n_chunks(fake: FakeGemini) -> None:
    fake.script("stream_error", after=2, code=429)
    seen: list[types.GenerateContentResponse] = []
    with sdk(fake) as client, pytest.raises(errors.ClientError) as info:
        for chunk in client.models.generate_content_stream(model=MODEL, contents="hi"):
            seen.append(chunk)
    assert len(seen) == 2 and (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")
    fake.script("stream_error", after=1, code=500)
    _, reads = raw_reads(fake, f"{STREAM}?alt=sse", BODY)
    events = sse_events(dechunk(b"".join(reads)))
    assert len(events) == 2 and list(events[1]) == ["error"] and events[1]["error"]["code"] == 500


def test_drop_after_n_chunks(fake: FakeGemini) -> None:
    fake.script("drop", after=2)
    seen: list[types.GenerateContentResponse] = []
    with sdk(fake) as client, pytest.raises(Exception, match=r"(?i)incomplete|closed|disconnect"):
        for chunk in client.models.generate_content_stream(model=MODEL, contents="hi"):
            seen.append(chunk)
    assert len(seen) == 2 and not fake.cancelled.is_set()
    fake.script("drop")
    with pytest.raises(http.client.RemoteDisconnected):
        call(fake, "POST", GEN, BODY)


def test_slow_stream_records_client_disconnect(fake: FakeGemini) -> None:
    fake.script("slow_stream", interval=0.05, max_chunks=100)
    payload = json.dumps(BODY).encode()
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(
            f"POST {STREAM}?alt=sse HTTP/1.1\r\nHost: x\r\nx-goog-api-key: {DEFAULT_API_KEY}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        received = b""
        while received.count(b"data: ") < 2:
            received += sock.recv(65536)
        assert b"tick 0" in received and not fake.cancelled.is_set()
    assert fake.cancelled.wait(2)
    assert fake.events_sent < 10


def test_delay_script_and_client_timeout(fake: FakeGemini) -> None:
    fake.script("delay", seconds=0.1)
    started = time.monotonic()
    assert call(fake, "POST", GEN, BODY)[0] == 200
    assert time.monotonic() - started >= 0.1
    fake.script("error", code=500, delay=0.5)
    with pytest.raises(TimeoutError):
        call(fake, "POST", GEN, BODY, timeout=0.05)
    assert fake.cancelled.wait(2)


def test_reply_and_raw_scripts(fake: FakeGemini) -> None:
    call_part = {"functionCall": {"id": "c1", "name": "get_weather", "args": {"city": "x"}}}
    body = {
        "candidates": [{"content": {"role": "model", "parts": [call_part]}, "finishReason": "STOP"}]
    }
    fake.script("reply", body=body, times=2)
    with sdk(fake) as client:
        reply = client.models.generate_content(model=MODEL, contents="weather?")
        assert reply.function_calls and reply.function_calls[0].name == "get_weather"
        chunks = list(client.models.generate_content_stream(model=MODEL, contents="weather?"))
        assert len(chunks) == 1 and chunks[0].function_calls
        fake.script("raw", status=502, body="<html>bad gateway</html>")
        with pytest.raises(errors.ServerError) as info:
            client.models.generate_content(model=MODEL, contents="hi")
        assert info.value.code == 502


# -------------------------------------------------------------------- other routes


def test_count_embed_and_models_with_sdk(fake: FakeGemini) -> None:
    with sdk(fake) as client:
        assert client.models.count_tokens(model=MODEL, contents="a b c d").total_tokens == 4
        config = types.EmbedContentConfig(output_dimensionality=8)
        result = client.models.embed_content(
            model="text-embedding-004", contents=["x", "y z"], config=config
        )
        assert result.embeddings and [e.values for e in result.embeddings] == [
            embedding_values("x", 8),
            embedding_values("y z", 8),
        ]
        assert fake.last_request.action == "batchEmbedContents"
        names = [m.name for m in client.models.list()]
        assert "models/gemini-2.5-pro" in names and "models/text-embedding-004" in names
        model = client.models.get(model="gemini-2.5-pro")
        assert model.name == "models/gemini-2.5-pro" and model.input_token_limit
        with pytest.raises(errors.ClientError) as info:
            client.models.get(model="claude-3")
        assert info.value.code == 404


def test_count_embed_and_models_raw(fake: FakeGemini) -> None:
    body = {"contents": [{"parts": [{"text": "one two three"}]}]}
    data = call(fake, "POST", f"/v1beta/models/{MODEL}:countTokens", body)[2]
    assert (
        json.loads(data) == build_count_tokens_response(body)
        and json.loads(data)["totalTokens"] == 3
    )
    embed = {"content": {"parts": [{"text": "hi"}]}, "output_dimensionality": 4}
    data = call(fake, "POST", "/v1/models/text-embedding-004:embedContent", embed)[2]
    assert json.loads(data) == {"embedding": {"values": embedding_values("hi", 4)}}
    batch = {
        "requests": [{"model": "models/gemini-2.5-flash", "content": {"parts": [{"text": "x"}]}}]
    }
    assert call(fake, "POST", "/v1/models/text-embedding-004:batchEmbedContents", batch)[0] == 400
    status, _, data = call(fake, "GET", "/v1beta/models?pageSize=2")
    page = json.loads(data)
    assert status == 200 and len(page["models"]) == 2 and page["nextPageToken"] == "2"
    rest = json.loads(call(fake, "GET", "/v1beta/models?pageSize=50&pageToken=2")[2])
    assert "nextPageToken" not in rest and len(rest["models"]) == 4
