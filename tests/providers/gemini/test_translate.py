"""Golden fixtures for the Gemini passthrough: requests, responses, stream events, errors."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from genroute.errors import UpstreamError
from genroute.providers.gemini import translate
from genroute.wire import BatchEmbedContentsRequest, GenerateContentRequest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gemini"


def load(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())


def test_request_to_wire_matches_golden() -> None:
    request = GenerateContentRequest.model_validate(load("request_python_sdk.in.json"))
    assert orjson.loads(translate.to_wire(request)) == load("request_python_sdk.out.json")


@pytest.mark.parametrize("name", ["response_rich.json", "response_blocked.json"])
def test_response_passes_through_losslessly(name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    parsed = translate.from_wire(raw)
    assert orjson.loads(
        parsed.__pydantic_serializer__.to_json(parsed, by_alias=True, exclude_none=True)
    ) == json.loads(raw)


def test_stream_event_decodes_and_error_event_raises() -> None:
    chunk = translate.decode_event(b'{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}')
    assert chunk.text == "a"
    with pytest.raises(UpstreamError) as info:
        translate.decode_event(
            b'{"error":{"code":429,"message":"q","status":"RESOURCE_EXHAUSTED"}}'
        )
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"


def test_malformed_upstream_response_is_a_502() -> None:
    with pytest.raises(UpstreamError) as info:
        translate.from_wire(b'{"candidates": "nope"}')
    assert info.value.code == 502


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("error_*.json")))
def test_map_error_matches_golden(name: str) -> None:
    case = load(name)
    assert isinstance(case, dict)
    body = case["body"]
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
    error = translate.map_error(case["status"], raw, case["headers"])
    expected = case["expected"]
    assert (error.code, error.status, error.retry_after, len(error.details)) == (
        expected["code"],
        expected["status"],
        expected["retry_after"],
        expected["details"],
    )
    assert error.provider == "gemini"
    assert error.reason.value == expected["failure_reason"]
    if isinstance(body, dict):
        assert error.message == body["error"]["message"]


def test_batch_embed_points_every_request_at_the_upstream_model() -> None:
    batch = BatchEmbedContentsRequest.model_validate(
        {
            "requests": [
                {
                    "model": "models/alias",
                    "content": {"parts": [{"text": "a"}]},
                    "taskType": "RETRIEVAL_QUERY",
                }
            ]
            * 2
        }
    )
    out = orjson.loads(translate.batch_to_wire(batch, "text-embedding-004"))
    assert [r["model"] for r in out["requests"]] == ["models/text-embedding-004"] * 2
    assert out["requests"][0]["taskType"] == "RETRIEVAL_QUERY"


def test_model_path() -> None:
    assert translate.model_path("gemini-2.5-flash") == "models/gemini-2.5-flash"
    assert translate.model_path("tunedModels/x") == "tunedModels/x"
