"""A stream's chunks assembled into the response the whole call would have given, and a
response replayed as chunks that assemble back into it."""

from __future__ import annotations

from genroute.cache.assemble import assemble, replay
from genroute.wire import GenerateContentResponse
from tests.fakes.gemini_upstream import build_generate_response, build_stream_chunks

BODY = {"contents": [{"role": "user", "parts": [{"text": "tell me a long story " * 20}]}]}


def chunks(data: list[dict]) -> list[GenerateContentResponse]:
    return [GenerateContentResponse.model_validate(c) for c in data]


def test_a_stream_assembles_into_the_whole_response() -> None:
    whole = build_generate_response(BODY, "gemini-2.5-flash")
    assembled = assemble(chunks(build_stream_chunks(BODY, "gemini-2.5-flash"))).to_dict()
    assert assembled["candidates"][0]["content"] == whole["candidates"][0]["content"]
    for name in ("finishReason", "safetyRatings", "citationMetadata", "futureCandidateField"):
        assert assembled["candidates"][0][name] == whole["candidates"][0][name], name
    assert assembled["usageMetadata"] == whole["usageMetadata"]
    assert assembled["futureField"] == whole["futureField"]  # unknown fields are kept


def test_a_replay_is_chunked_naturally_and_assembles_back() -> None:
    whole = GenerateContentResponse.model_validate(
        build_generate_response(BODY, "gemini-2.5-flash")
    )
    replayed = replay(whole)
    assert len(replayed) > 3
    texts = [c.candidates[0].content.parts[0].text for c in replayed]
    assert all(t for t in texts)
    assert all(len(t) < 200 for t in texts)  # pieces, at word boundaries
    assert all(c.usage_metadata is None for c in replayed[:-1])
    assert replayed[-1].usage_metadata == whole.usage_metadata
    assert [c.candidates[0].finish_reason for c in replayed].count("STOP") == 1
    assert assemble(replayed).to_dict() == whole.to_dict()


def test_parts_that_are_not_text_and_several_candidates() -> None:
    data = {
        "candidates": [
            {
                "index": 0,
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "Let me look."},
                        {"functionCall": {"name": "f", "args": {"q": 1}}, "thoughtSignature": "s"},
                    ],
                },
                "finishReason": "STOP",
            },
            {"index": 1, "content": {"role": "model", "parts": [{"text": "Other."}]},
             "finishReason": "STOP"},
        ],
        "usageMetadata": {"totalTokenCount": 5},
    }  # fmt: skip
    whole = GenerateContentResponse.model_validate(data)
    replayed = replay(whole)
    assert [c.candidates[0].index for c in replayed] == [0, 0, 1]
    assert assemble(replayed).to_dict() == whole.to_dict()
