"""Repeated fields accept a single value as a list of one, as Google's JSON parser does."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from genroute.wire import (
    BatchEmbedContentsRequest,
    CountTokensRequest,
    GenerateContentRequest,
    format_validation_error,
)

VERTEX_SAMPLE = {  # the shape of Vertex AI's REST samples: objects where lists belong
    "contents": {"role": "user", "parts": {"text": "Why is the sky blue?"}},
    "systemInstruction": {"parts": {"text": "Be brief."}},
    "tools": {"functionDeclarations": {"name": "get_weather", "parameters": {"type": "object"}}},
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": "get_weather"}},
    "safetySettings": {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"},
    "generationConfig": {"stopSequences": "END", "responseModalities": "TEXT"},
}


def test_a_single_object_is_a_list_of_one_everywhere() -> None:
    out = GenerateContentRequest.model_validate(VERTEX_SAMPLE).to_dict()
    assert out["contents"] == [{"role": "user", "parts": [{"text": "Why is the sky blue?"}]}]
    assert out["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert out["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert out["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"] == ["get_weather"]
    assert out["safetySettings"][0]["threshold"] == "BLOCK_NONE"
    assert out["generationConfig"] == {"stopSequences": ["END"], "responseModalities": ["TEXT"]}
    count = CountTokensRequest.model_validate({"contents": {"parts": {"text": "a"}}})
    assert count.all_contents()[0].parts is not None
    batch = BatchEmbedContentsRequest.model_validate({"requests": {"content": {"parts": []}}})
    assert len(batch.requests) == 1


def test_the_same_request_as_lists_is_unchanged() -> None:
    listed = GenerateContentRequest.model_validate_json(
        b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}'
    )
    single = GenerateContentRequest.model_validate_json(
        b'{"contents":{"role":"user","parts":{"text":"hi"}}}'
    )
    assert listed == single


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"contents": "hi"}, "contents: Input should be a list (or a single Content)"),
        (
            {"contents": {"parts": {"text": 5}}},
            "contents.parts.text: Input should be a valid string",
        ),
        (
            {"contents": [{"parts": [{"text": "a"}, {"text": []}]}]},
            "contents[0].parts[1].text: Input should be a valid string",
        ),
        (
            {"contents": [{"parts": []}], "generationConfig": {"stopSequences": 5}},
            "generationConfig.stopSequences: Input should be a list (or a single str)",
        ),
    ],
)
def test_errors_name_one_field_once(body: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        GenerateContentRequest.model_validate(body)
    assert format_validation_error(info.value) == message
