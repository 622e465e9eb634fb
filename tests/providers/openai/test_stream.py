"""Golden fixtures for the Chat Completions stream decoder, and the chunk invariants
Google's clients rely on (no `finishReason: null`, no empty parts, finish and usage last)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from genroute.errors import GenrouteError, UpstreamUnavailable
from genroute.providers.openai.stream import StreamDecoder
from genroute.wire import GenerateContentResponse, dump_json

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openai"
NAMES = sorted(p.name for p in FIXTURES.glob("stream_*.in.json"))


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def run(case: dict[str, Any]) -> tuple[list[GenerateContentResponse], GenrouteError | None]:
    decoder = StreamDecoder(include_thoughts=case["include_thoughts"], unwrap=case.get("unwrap"))
    chunks: list[GenerateContentResponse] = []
    try:
        for event in case["events"]:
            chunks += decoder.feed(
                event.encode() if isinstance(event, str) else orjson.dumps(event)
            )
        chunks += decoder.end()
    except GenrouteError as exc:
        return chunks, exc
    return chunks, None


@pytest.mark.parametrize("name", NAMES)
def test_stream_matches_golden(name: str) -> None:
    chunks, error = run(load(name))
    expected = load(name.replace(".in.json", ".out.json"))
    assert [c.to_dict() for c in chunks] == expected["chunks"]
    assert (error.to_body()["error"] if error else None) == expected["error"]


@pytest.mark.parametrize("name", NAMES)
def test_chunks_keep_the_invariants_google_clients_need(name: str) -> None:
    chunks, error = run(load(name))
    for i, chunk in enumerate(chunks):
        raw = dump_json(chunk)
        assert b"null" not in raw and b'"parts":[]' not in raw
        last = i == len(chunks) - 1 and error is None
        finishes = [c.finish_reason for c in chunk.candidates or [] if c.finish_reason]
        assert bool(finishes) == last
        if chunk.usage_metadata is not None:
            assert last
        for candidate in chunk.candidates or []:  # shaped like Gemini's own chunks
            assert candidate.content is not None and candidate.content.role == "model"
            assert candidate.content.parts


def test_tool_call_arguments_split_per_character_make_one_call() -> None:
    arguments = json.dumps({"query": "genroute", "limit": 3, "nested": {"a": [1, 2]}})
    events: list[dict[str, Any]] = [
        {
            "id": "c",
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "search", "arguments": ""},
                            }
                        ]
                    },
                }
            ],
        }
    ]
    events += [
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ch}}]}}
            ]
        }
        for ch in arguments
    ]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    decoder = StreamDecoder()
    chunks = [c for event in events for c in decoder.feed(event)] + decoder.feed(b"[DONE]")
    assert len(chunks) == 2
    parts = chunks[0].to_dict()["candidates"][0]["content"]["parts"]
    assert parts == [
        {"functionCall": {"id": "call_1", "name": "search", "args": json.loads(arguments)}}
    ]
    assert chunks[1].to_dict()["candidates"] == [
        {"content": {"role": "model", "parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0}
    ]
    assert decoder.feed(b"[DONE]") == [] and decoder.end() == []


def test_blank_events_are_ignored_and_a_silent_end_is_an_error() -> None:
    decoder = StreamDecoder()
    assert decoder.feed(b"") == [] and decoder.feed(b"  ") == []
    with pytest.raises(UpstreamUnavailable):
        decoder.end()
