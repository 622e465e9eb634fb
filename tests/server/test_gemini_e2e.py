"""End to end, Gemini only: google-genai and raw HTTP → genroute (in process) → fake Gemini.

What only the Gemini passthrough and the edge have: nothing the upstream sent is lost and
unknown request fields reach it, streams under every TCP framing and Google's exact SSE
and JSON-array framing, streams relayed as they arrive and cancelled with their client,
models, aliases and ids with `/`, keys in a header, the query or a bearer token, request
ids and health. What every provider does (generate, stream, tools, thinking, countTokens,
embeddings, errors) is tests/server/test_conformance_e2e.py, Gemini included.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from google.genai import types

from tests.conftest import Gateway, InProcessGateway
from tests.fakes.gemini_upstream import FakeGemini, build_generate_response, build_stream_chunks
from tests.server.conftest import MASTER_KEY, client_for, gateway_config

pytestmark = pytest.mark.e2e
VERSIONS = ["v1", "v1beta"]


def post(
    gateway: Gateway, path: str, body: object, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A raw POST, returning status, headers and body bytes (errors included)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        gateway.base_url + path,
        data=data,
        headers={
            "content-type": "application/json",
            "x-goog-api-key": MASTER_KEY,
            **(headers or {}),
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


BODY = {"contents": [{"role": "user", "parts": [{"text": "hello there gateway"}]}]}


def test_response_is_passed_through_losslessly(gateway: Gateway, fake: FakeGemini) -> None:
    status, headers, raw = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", BODY)
    assert status == 200 and headers["content-type"].startswith("application/json")
    expected = build_generate_response(fake.last_request.body, "gemini-2.5-flash")
    assert json.loads(raw) == expected
    assert "futureField" in expected and "thoughtSignature" in json.dumps(expected)


def test_unknown_request_fields_reach_the_upstream(gateway: Gateway, fake: FakeGemini) -> None:
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "x"},
                    {"inline_data": {"mime_type": "image/png", "data": "iVBORw=="}},
                ],
            }
        ],
        "generation_config": {"top_k": 40, "thinking_config": {"thinking_budget": 12}},
        "serviceTier": "flex",
        "safety_settings": None,
    }
    status, _, _ = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", body)
    assert status == 200
    # the client's own JSON, as it wrote it (Google reads snake_case names as well)
    assert fake.last_request.body == body


def test_a_request_that_names_its_model_is_sent_without_it(
    gateway: Gateway, fake: FakeGemini
) -> None:
    body = {
        "model": "models/something-else",
        "contents": [
            {"role": "user", "parts": [{"inline_data": {"mime_type": "a/b", "data": ""}}]}
        ],
        "generation_config": {"top_k": 40.0},
        "serviceTier": "flex",
    }
    status, _, _ = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", body)
    assert status == 200
    assert fake.last_request.body == {
        "contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "a/b", "data": ""}}]}],
        "generationConfig": {"topK": 40},
        "serviceTier": "flex",
    }


@pytest.mark.parametrize("framing", ["normal", "split", "merged", "lf"])
def test_stream_with_the_sdk_under_every_framing(
    gateway: Gateway, fake: FakeGemini, framing: str
) -> None:
    fake.framing = framing
    try:
        client = client_for(gateway)
        chunks = list(
            client.models.generate_content_stream(
                model="gemini-2.5-flash", contents="one two three four"
            )
        )
    finally:
        fake.framing = "normal"
    expected = build_stream_chunks(fake.last_request.body, "gemini-2.5-flash")
    assert len(chunks) == len(expected)
    assert "".join(c.text or "" for c in chunks) == "Echo: one two three four"
    assert (
        chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    )


def test_sse_framing_is_exactly_googles(gateway: Gateway, fake: FakeGemini) -> None:
    fake.framing = "split"
    try:
        status, headers, raw = post(
            gateway, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", BODY
        )
    finally:
        fake.framing = "normal"
    assert status == 200 and headers["content-type"] == "text/event-stream"
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b""
    expected = build_stream_chunks(fake.last_request.body, "gemini-2.5-flash")
    assert len(events) - 1 == len(expected)
    for event, chunk in zip(events, expected, strict=False):
        assert event.startswith(b"data: ") and b"\n" not in event
        assert json.loads(event[6:]) == chunk


def test_stream_without_alt_is_a_json_array(gateway: Gateway, fake: FakeGemini) -> None:
    status, headers, raw = post(gateway, "/v1/models/gemini-2.5-flash:streamGenerateContent", BODY)
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(raw) == build_stream_chunks(fake.last_request.body, "gemini-2.5-flash")


def test_stream_is_relayed_as_it_arrives(gateway: Gateway, fake: FakeGemini) -> None:
    fake.script("slow_stream", interval=0.1, max_chunks=4)  # 5 chunks, 0.1 s apart
    started = time.monotonic()
    client = client_for(gateway)
    stream = client.models.generate_content_stream(model="gemini-2.5-flash", contents="slow")
    arrivals = [time.monotonic() - started for _ in stream]
    assert len(arrivals) >= 5
    assert arrivals[0] < 0.3, arrivals
    assert arrivals[-1] - arrivals[0] > 0.3, arrivals


def test_client_disconnect_cancels_the_upstream(gateway: Gateway, fake: FakeGemini) -> None:
    fake.cancelled.clear()
    fake.script("slow_stream", interval=0.05, max_chunks=200)
    body = json.dumps(BODY).encode()
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        sock.sendall(
            b"POST /v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse HTTP/1.1\r\n"
            b"host: x\r\ncontent-type: application/json\r\nx-goog-api-key: "
            + MASTER_KEY.encode()
            + b"\r\ncontent-length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        received = b""
        while received.count(b"data: ") < 2:
            received += sock.recv(65536)
    assert fake.cancelled.wait(5), "genroute kept reading the upstream after its client left"


@pytest.mark.parametrize("version", VERSIONS)
def test_list_and_get_models(gateway: Gateway, version: str) -> None:
    client = client_for(gateway, version)
    names = {m.name for m in client.models.list()}
    assert {"models/gemini-2.5-flash", "models/team/flash", "models/gemini-pro"} <= names
    model = client.models.get(model="team/flash")
    assert model.name == "models/team/flash"


def test_model_ids_with_slash_prefix_and_alias(gateway: Gateway, fake: FakeGemini) -> None:
    client = client_for(gateway)
    assert (
        client.models.generate_content(model="team/flash", contents="slash").text == "Echo: slash"
    )
    assert fake.last_request.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert (
        client.models.generate_content(model="models/gemini-pro", contents="alias").text
        == "Echo: alias"
    )
    assert fake.last_request.path == "/v1beta/models/gemini-2.5-flash:generateContent"


@pytest.mark.parametrize(
    "how",
    [
        {"x-goog-api-key": MASTER_KEY},
        {"authorization": f"Bearer {MASTER_KEY}"},
        "query",
    ],
)
def test_key_accepted_from_header_query_or_bearer(gateway: Gateway, how: object) -> None:
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    headers = {"x-goog-api-key": ""}
    if how == "query":
        path += f"?key={MASTER_KEY}"
    else:
        assert isinstance(how, dict)
        headers.update(how)
    status, _, _ = post(gateway, path, BODY, headers)
    assert status == 200


def test_request_id_is_echoed_or_made(gateway: Gateway) -> None:
    _, headers, _ = post(
        gateway,
        "/v1beta/models/gemini-2.5-flash:generateContent",
        BODY,
        {"x-request-id": "abc-123"},
    )
    assert headers["x-request-id"] == "abc-123"
    _, headers, _ = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", BODY)
    assert len(headers["x-request-id"]) == 32


def test_health(gateway: Gateway) -> None:
    for path in ("/health/liveliness", "/health/readiness"):
        with urllib.request.urlopen(gateway.base_url + path, timeout=5) as resp:
            assert resp.status == 200 and json.loads(resp.read())["status"] == "healthy"


def test_count_and_embed_replies_say_where_they_were_routed(gateway: Gateway) -> None:
    body = {"contents": [{"parts": [{"text": "a b"}]}]}
    status, headers, _ = post(gateway, "/v1beta/models/gemini-pro:countTokens", body)
    assert status == 200 and headers["x-genroute-model-group"] == "gemini-2.5-flash"
    embed = {"content": {"parts": [{"text": "x"}]}}
    status, headers, _ = post(gateway, "/v1beta/models/text-embedding-004:embedContent", embed)
    assert status == 200 and headers["x-genroute-attempts"] == "1"


def test_with_a_response_cache_the_upstream_is_sent_what_the_cache_keyed(
    fake: FakeGemini, tmp_path: Path
) -> None:
    """A body that reads two ways (a key given twice: the last one counts) is sent as the
    request genroute validated and keyed the cache by, not as the client's bytes."""
    config = gateway_config(fake)
    config["litellm_settings"] = {"cache": True}
    gateway = InProcessGateway(config, tmp_path)
    try:
        first = b'{"contents": [{"parts": [{"text": "A"}]}], '
        body = first + b'"contents": [{"role": "user", "parts": [{"text": "B"}]}]}'
        status, _, _ = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", body)  # type: ignore[arg-type]
        assert status == 200
        sent = fake.last_request.raw_body
        assert b'"A"' not in sent and b'"B"' in sent
    finally:
        gateway.stop()
