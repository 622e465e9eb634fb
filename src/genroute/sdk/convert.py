"""Conversions between google-genai's Python types and genroute's wire model.

Inputs follow google-genai's own rules: a string is one user turn; a list of parts (str,
`Part`, `PartDict`) becomes one user turn; `Content`/`ContentDict` items are turns of
their own. `config` fields that are not request-level (system instruction, tools, safety
settings, ...) become `generationConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.genai import types
from pydantic import BaseModel, ValidationError

from genroute.errors import InvalidRequest
from genroute.wire import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    CountTokensRequest,
    CountTokensResponse,
    GenerateContentRequest,
    GenerateContentResponse,
    format_validation_error,
)

__all__ = [
    "build_count_request",
    "build_embed_request",
    "build_request",
    "to_contents",
    "to_genai_count",
    "to_genai_embed",
    "to_genai_response",
]

# GenerateContentConfig keys that live at the top of the request, not in generationConfig.
_REQUEST_LEVEL = {
    "system_instruction": "system_instruction",
    "tools": "tools",
    "tool_config": "tool_config",
    "safety_settings": "safety_settings",
    "cached_content": "cached_content",
    "labels": "labels",
    "service_tier": "service_tier",
}
# GenerateContentConfig keys that only steer the client SDK itself.
_CLIENT_ONLY = {"http_options", "automatic_function_calling", "should_return_http_response"}
# Keyword conveniences → generationConfig fields.
_CONVENIENCES = {
    "max_tokens": "max_output_tokens",
    "max_output_tokens": "max_output_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "stop": "stop_sequences",
    "stop_sequences": "stop_sequences",
    "seed": "seed",
    "n": "candidate_count",
    "candidate_count": "candidate_count",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "response_mime_type": "response_mime_type",
    "response_json_schema": "response_json_schema",
    "thinking_config": "thinking_config",
}


def _plain(value: Any) -> Any:
    """google-genai pydantic objects → JSON-ready data (bytes become base64)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _is_content(item: Any) -> bool:
    return isinstance(item, Mapping) and ("parts" in item or "role" in item)


def _as_part(item: Any) -> Any:
    if isinstance(item, str):
        return {"text": item}
    if isinstance(item, Mapping):
        return item
    raise InvalidRequest(f"contents: cannot use a {type(item).__name__} as a part")


def to_contents(contents: Any) -> list[Any]:
    """google-genai `contents` (any accepted form) → a list of wire Content dicts."""
    if contents is None:
        raise InvalidRequest("contents: required")
    items = contents if isinstance(contents, list | tuple) else [contents]
    turns: list[Any] = []
    pending: list[Any] = []
    for raw in items:
        item = _plain(raw)
        if _is_content(item):
            if pending:
                turns.append({"role": "user", "parts": pending})
                pending = []
            turns.append(item)
        else:
            pending.append(_as_part(item))
    if pending:
        turns.append({"role": "user", "parts": pending})
    return turns


def _system_instruction(value: Any) -> Any:
    value = _plain(value)
    if _is_content(value):
        return value
    parts = value if isinstance(value, list) else [value]
    return {"role": "user", "parts": [_as_part(p) for p in parts]}


def build_request(contents: Any, config: Any, kwargs: Mapping[str, Any]) -> GenerateContentRequest:
    """A wire request from google-genai style arguments plus keyword conveniences."""
    settings = _plain(config) if config is not None else {}
    if not isinstance(settings, Mapping):
        raise InvalidRequest(
            f"config: expected a GenerateContentConfig or a dict, not {type(config).__name__}"
        )
    body: dict[str, Any] = {"contents": to_contents(contents)}
    generation: dict[str, Any] = {}
    for key, value in settings.items():
        if key in _CLIENT_ONLY:
            continue
        if key in _REQUEST_LEVEL:
            body[_REQUEST_LEVEL[key]] = value
        else:
            generation[key] = value
    for key, value in kwargs.items():
        if value is None:
            continue
        if key == "system_instruction":
            body["system_instruction"] = value
        elif key in ("tools", "tool_config", "safety_settings"):
            body[key] = _plain(value)
        elif key in _CONVENIENCES:
            value = [value] if key == "stop" and isinstance(value, str) else _plain(value)
            generation[_CONVENIENCES[key]] = value
        else:
            raise TypeError(f"unexpected keyword argument {key!r}")
    if "system_instruction" in body:
        body["system_instruction"] = _system_instruction(body["system_instruction"])
    if generation:
        body["generation_config"] = generation
    try:
        return GenerateContentRequest.model_validate(body)
    except ValidationError as exc:
        raise InvalidRequest(format_validation_error(exc)) from None


def build_count_request(
    contents: Any, config: Any, kwargs: Mapping[str, Any]
) -> CountTokensRequest:
    """A countTokens request: the contents, and the config's system instruction and tools
    (as a whole generateContentRequest, so that every upstream counts them)."""
    if kwargs:
        raise TypeError(f"unexpected keyword argument {next(iter(kwargs))!r}")
    inner = build_request(contents, config, {})
    if inner.system_instruction is None and inner.tools is None:
        return CountTokensRequest(contents=inner.contents)
    return CountTokensRequest(generate_content_request=inner)


_EMBED_CONFIG = {"task_type", "title", "output_dimensionality"}


def build_embed_request(
    model: str, contents: Any, config: Any, kwargs: Mapping[str, Any]
) -> BatchEmbedContentsRequest:
    """One embed request per content: a string, or a list of strings or Content items."""
    if kwargs:
        raise TypeError(f"unexpected keyword argument {next(iter(kwargs))!r}")
    settings = _plain(config) if config is not None else {}
    if not isinstance(settings, Mapping):
        raise InvalidRequest(
            f"config: expected an EmbedContentConfig or a dict, not {type(config).__name__}"
        )
    extra = {k: v for k, v in settings.items() if k in _EMBED_CONFIG}
    items = contents if isinstance(contents, list | tuple) else [contents]
    if not items:
        raise InvalidRequest("contents: at least one content to embed is needed")
    requests = []
    for raw in items:
        item = _plain(raw)
        content = item if _is_content(item) else {"parts": [_as_part(item)]}
        requests.append({"model": f"models/{model}", "content": content, **extra})
    try:
        return BatchEmbedContentsRequest.model_validate({"requests": requests})
    except ValidationError as exc:
        raise InvalidRequest(format_validation_error(exc)) from None


def to_genai_response(response: GenerateContentResponse) -> types.GenerateContentResponse:
    """The wire response as a `google.genai.types.GenerateContentResponse`."""
    return types.GenerateContentResponse._from_response(response=response.to_dict(), kwargs={})


def to_genai_count(response: CountTokensResponse) -> types.CountTokensResponse:
    """The wire reply as a `google.genai.types.CountTokensResponse`."""
    return types.CountTokensResponse._from_response(response=response.to_dict(), kwargs={})


def to_genai_embed(response: BatchEmbedContentsResponse) -> types.EmbedContentResponse:
    """The wire reply as a `google.genai.types.EmbedContentResponse` (one per content)."""
    return types.EmbedContentResponse._from_response(response=response.to_dict(), kwargs={})
