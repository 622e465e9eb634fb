"""The wire model: both casings in, camelCase out, unknown fields kept, ints from floats."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from genroute.wire import (
    BatchEmbedContentsRequest,
    CountTokensRequest,
    GenerateContentRequest,
    GenerateContentResponse,
    Part,
    dump_json,
    format_validation_error,
)

PYTHON_SDK_BODY = {
    "contents": [
        {
            "role": "user",
            "parts": [
                {"text": "hi"},
                {"inlineData": {"data": "iVBORw==", "mime_type": "image/png"}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"id": "c1", "name": "get_weather", "args": {"city": "x"}},
                    "thoughtSignature": "c2ln",
                }
            ],
        },
    ],
    "tools": [
        {
            "functionDeclarations": [
                {"name": "get_weather", "parameters_json_schema": {"type": "object"}}
            ]
        },
        {"googleSearch": {}},
    ],
    "generationConfig": {
        "topK": 40.0,
        "thinkingConfig": {"include_thoughts": True, "thinking_budget": 128},
        "responseSchema": {"type": "OBJECT", "property_ordering": ["name"]},
    },
}


def test_snake_and_camel_read_the_same() -> None:
    camel = GenerateContentRequest.model_validate(
        {"contents": [{"parts": [{"text": "a"}]}], "generationConfig": {"maxOutputTokens": 5}}
    )
    snake = GenerateContentRequest.model_validate(
        {"contents": [{"parts": [{"text": "a"}]}], "generation_config": {"max_output_tokens": 5}}
    )
    assert camel == snake
    assert camel.generation_config is not None
    assert camel.generation_config.max_output_tokens == 5


def test_python_sdk_body_round_trips_in_camel_case() -> None:
    request = GenerateContentRequest.model_validate(PYTHON_SDK_BODY)
    out = orjson.loads(dump_json(request))
    config = out["generationConfig"]
    assert config["topK"] == 40 and isinstance(config["topK"], int)
    assert config["thinkingConfig"] == {"includeThoughts": True, "thinkingBudget": 128}
    # Schemas are data: their own keys are forwarded as sent.
    assert config["responseSchema"] == {"type": "OBJECT", "property_ordering": ["name"]}
    part = out["contents"][0]["parts"][1]
    assert part == {"inlineData": {"mimeType": "image/png", "data": "iVBORw=="}}
    call = out["contents"][1]["parts"][0]
    assert call["thoughtSignature"] == "c2ln"
    assert out["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"] == {"type": "object"}
    assert out["tools"][1] == {"googleSearch": {}}


def test_unknown_fields_are_kept_at_every_level() -> None:
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [{"text": "x", "partMetadata": {"a": 1}, "newKind": {"k": [1]}}],
            }
        ],
        "futureTopLevel": {"nested_snake": True},
        "generationConfig": {"brandNewKnob": 3},
    }
    out = orjson.loads(dump_json(GenerateContentRequest.model_validate(body)))
    assert out["futureTopLevel"] == {"nested_snake": True}
    assert out["generationConfig"]["brandNewKnob"] == 3
    assert out["contents"][0]["parts"][0]["newKind"] == {"k": [1]}


def test_float_with_fraction_is_refused_for_an_int_field() -> None:
    with pytest.raises(ValidationError) as info:
        GenerateContentRequest.model_validate(
            {"contents": [{"parts": [{"text": "a"}]}], "generationConfig": {"maxOutputTokens": 5.5}}
        )
    assert "generationConfig.maxOutputTokens" in format_validation_error(info.value)


def test_wrong_type_names_the_field_path() -> None:
    with pytest.raises(ValidationError) as info:
        GenerateContentRequest.model_validate({"contents": [{"parts": [{"text": ["no"]}]}]})
    assert format_validation_error(info.value).startswith("contents[0].parts[0].text:")


def test_contents_are_required_and_not_empty() -> None:
    for body in ({}, {"contents": []}):
        with pytest.raises(ValidationError) as info:
            GenerateContentRequest.model_validate(body)
        assert "contents" in format_validation_error(info.value)


def test_response_keeps_every_detail() -> None:
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "plan", "thought": True},
                        {"text": "Hello", "thoughtSignature": "AY8="},
                    ],
                },
                "finishReason": "STOP",
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}
                ],
                "citationMetadata": {
                    "citationSources": [{"startIndex": 0, "endIndex": 3, "uri": "u"}]
                },
                "groundingMetadata": {"webSearchQueries": ["q"]},
                "avgLogprobs": -0.5,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 5,
            "candidatesTokenCount": 44,
            "thoughtsTokenCount": 186,
            "totalTokenCount": 235,
            "cachedContentTokenCount": 2,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5}],
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r1",
        "somethingNew": {"x": 1},
    }
    parsed = GenerateContentResponse.model_validate_json(orjson.dumps(body))
    assert orjson.loads(dump_json(parsed)) == body
    assert parsed.text == "Hello"


def test_null_fields_are_not_sent() -> None:
    chunk = GenerateContentResponse.model_validate(
        {"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": None}]}
    )
    assert b"finishReason" not in dump_json(chunk)


def test_count_tokens_reads_both_forms() -> None:
    plain = CountTokensRequest.model_validate({"contents": [{"parts": [{"text": "a b"}]}]})
    assert len(plain.all_contents()) == 1
    nested = CountTokensRequest.model_validate(
        {
            "generateContentRequest": {
                "model": "models/m",
                "contents": [{"parts": [{"text": "a"}]}],
                "systemInstruction": {"parts": [{"text": "s"}]},
            }
        }
    )
    assert len(nested.all_contents()) == 2


def test_batch_embed_request() -> None:
    batch = BatchEmbedContentsRequest.model_validate(
        {
            "requests": [
                {
                    "model": "models/e",
                    "content": {"parts": [{"text": "a"}]},
                    "output_dimensionality": 8.0,
                }
            ]
        }
    )
    assert batch.requests[0].output_dimensionality == 8


def test_an_upstream_response_keeps_unknown_fields_and_writes_its_edits() -> None:
    raw = (
        b'{"responseId":"r","candidates":[{"content":{"role":"model","parts":[{"text":"hi",'
        b'"zPart":true}]},"finishReason":"STOP","index":0}],"zNew":{"a":[1,2.5]}}'
    )
    response = GenerateContentResponse.model_validate_json(raw)
    assert orjson.loads(dump_json(response)) == orjson.loads(raw)  # nothing lost
    response.candidates[0].finish_reason = "SAFETY"  # type: ignore[index]
    response.candidates[0].content.parts[0].text = "edited"  # type: ignore[index,union-attr]
    response.candidates[0].content.parts.append(Part(text="more"))  # type: ignore[index,union-attr]
    out = orjson.loads(dump_json(response))
    assert out["candidates"][0]["finishReason"] == "SAFETY"
    assert [p["text"] for p in out["candidates"][0]["content"]["parts"]] == ["edited", "more"]
    assert out["candidates"][0]["content"]["parts"][0]["zPart"] is True
    assert out["zNew"] == {"a": [1, 2.5]}


def test_values_not_on_the_wire_are_kept_by_copies_and_never_read_from_a_body() -> None:
    """`set_private` values (a cached prefix, cache-write tokens, embedded tokens) cannot be
    set by a client or an upstream, are not serialised, and survive `model_copy`."""
    from genroute.wire import GenerateContentRequest, UsageMetadata

    spoof = {
        "contents": [{"parts": [{"text": "hi"}]}],
        "_cached_prefix": 3,
        "_cachedPrefix": 3,
        "cachedPrefix": 3,
    }
    request = GenerateContentRequest.model_validate(spoof)
    assert request._cached_prefix is None
    usage = UsageMetadata.model_validate_json(b'{"_cache_write_tokens": 9, "totalTokenCount": 1}')
    assert usage._cache_write_tokens == 0
    request.set_private("_cached_prefix", 1)
    usage.set_private("_cache_write_tokens", 5)
    assert request.model_copy(update={"model": "m"})._cached_prefix == 1
    assert usage.model_copy()._cache_write_tokens == 5
    # what a body sent under those names is an unknown field, passed on as it came
    assert orjson.loads(dump_json(usage)) == {"totalTokenCount": 1, "_cache_write_tokens": 9}
    assert orjson.loads(dump_json(request))["_cached_prefix"] == 3
    assert GenerateContentRequest.model_validate(spoof)._cached_prefix is None  # per instance
