"""Chat Completions replies → Gemini responses (pure). Shared with the stream decoder.

Choices become candidates (by index): reasoning (`reasoning_content` / `reasoning`) as
thought parts when includeThoughts is on, content and refusal as text, tool calls as
`functionCall` parts with their ids. finish_reason stop/tool_calls/function_call → STOP,
length → MAX_TOKENS, content_filter → SAFETY (a refusal without text too); arguments
that are not a JSON object → MALFORMED_FUNCTION_CALL. Usage keeps Gemini's arithmetic:
candidatesTokenCount excludes reasoning, thoughtsTokenCount is the reasoning, and
totalTokenCount = prompt + candidates + thoughts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from genroute.errors import UpstreamError
from genroute.providers.openai.errors import error_from_object
from genroute.wire import (
    Candidate,
    CitationMetadata,
    Content,
    FunctionCall,
    GenerateContentResponse,
    ModalityTokenCount,
    Part,
    UsageMetadata,
)

PROVIDER = "openai"
FINISH_REASONS = {
    "stop": "STOP",
    "eos": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "content_filter": "SAFETY",
}


def load_json(data: bytes | Mapping[str, Any], provider: str = PROVIDER) -> dict[str, Any]:
    """A JSON object from the upstream, or a 502 naming what was wrong."""
    if isinstance(data, Mapping):
        return dict(data)
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict):
        text = data[:200].decode("utf-8", "replace")
        raise UpstreamError(
            f"{provider} upstream sent something that is not a JSON object: {text}",
            provider=provider,
        )
    return obj


def reasoning_text(message: Mapping[str, Any]) -> str:
    """Reasoning as DeepSeek/vLLM (`reasoning_content`) or OpenRouter/Ollama (`reasoning`) send it."""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def content_text(value: Any) -> str:
    """Message content as text: a string, or a list of text parts some servers send."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(str(p.get("text") or "") for p in value if isinstance(p, dict))
    return ""


def parse_arguments(raw: Any) -> dict[str, Any] | None:
    """Tool-call arguments as a JSON object; None when they are not one."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        value = orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def call_part(call_id: Any, name: str, raw_args: Any) -> Part | str:
    """A functionCall part, or the finishMessage explaining why the call was malformed."""
    args = parse_arguments(raw_args)
    if args is None:
        return (
            f"the call to {name!r} had arguments that are not a JSON object: {str(raw_args)[:200]}"
        )
    ident = str(call_id) if call_id else None
    return Part(function_call=FunctionCall(id=ident, name=name, args=args))


def logprobs_result(logprobs: Any) -> tuple[dict[str, Any] | None, float | None]:
    """OpenAI `logprobs.content` → Gemini `logprobsResult` and the average log probability."""
    items = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(items, list) or not items:
        return None, None
    chosen, top = [], []
    for item in items:
        chosen.append({"token": item.get("token"), "logProbability": item.get("logprob")})
        alternatives = [
            {"token": t.get("token"), "logProbability": t.get("logprob")}
            for t in item.get("top_logprobs") or []
        ]
        top.append({"candidates": alternatives})
    values = [c["logProbability"] for c in chosen if isinstance(c["logProbability"], int | float)]
    average = sum(values) / len(values) if values else None
    return {"topCandidates": top, "chosenCandidates": chosen}, average


def finish_reason(value: Any) -> str | None:
    """The Gemini finishReason for an OpenAI finish_reason (None stays None)."""
    if not value:
        return None
    return FINISH_REASONS.get(str(value), "OTHER")


def usage_metadata(usage: Any) -> UsageMetadata | None:
    """OpenAI usage → Gemini usage: candidates exclude reasoning, total includes it."""
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    out_details = usage.get("completion_tokens_details") or {}
    in_details = usage.get("prompt_tokens_details") or {}
    reasoning = min(int(out_details.get("reasoning_tokens") or 0), completion)
    cached = int(in_details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0)
    modalities = []
    for key, name in (
        ("text_tokens", "TEXT"),
        ("image_tokens", "IMAGE"),
        ("audio_tokens", "AUDIO"),
    ):
        if in_details.get(key):
            modalities.append(ModalityTokenCount(modality=name, token_count=int(in_details[key])))
    return UsageMetadata(
        prompt_token_count=prompt,
        candidates_token_count=completion - reasoning,
        total_token_count=prompt + completion,
        thoughts_token_count=reasoning or None,
        cached_content_token_count=cached or None,
        prompt_tokens_details=modalities or None,
    )


def _citations(annotations: Any) -> CitationMetadata | None:
    sources = []
    for note in annotations if isinstance(annotations, list) else []:
        cite = note.get("url_citation") if isinstance(note, dict) else None
        if isinstance(cite, dict):
            source = {"startIndex": cite.get("start_index"), "endIndex": cite.get("end_index")}
            source.update(uri=cite.get("url"), title=cite.get("title"))
            sources.append({k: v for k, v in source.items() if v is not None})
    if not sources:
        return None
    return CitationMetadata.model_validate({"citationSources": sources})


def unwrap_json(text: str, key: str | None) -> str:
    """The answer inside a wrapped JSON object (see WRAP_KEY); other text as it is."""
    if key is None:
        return text
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    if isinstance(value, dict) and set(value) == {key}:
        return orjson.dumps(value[key]).decode()
    return text


def _candidate(
    choice: dict[str, Any], position: int, include_thoughts: bool, unwrap: str | None
) -> Candidate:
    message = choice.get("message") or {}
    parts: list[Part] = []
    if include_thoughts and (thought := reasoning_text(message)):
        parts.append(Part(text=thought, thought=True))
    if text := content_text(message.get("content")):
        parts.append(Part(text=unwrap_json(text, unwrap)))
    refusal = message.get("refusal")
    if isinstance(refusal, str) and refusal:
        parts.append(Part(text=refusal))
    finish = finish_reason(choice.get("finish_reason")) or "STOP"
    finish_message = None
    calls = [
        {**(c.get("function") or {}), "id": c.get("id")} for c in message.get("tool_calls") or []
    ]
    if isinstance(legacy := message.get("function_call"), dict):
        calls.append({**legacy, "id": None})
    for call in calls:
        made = call_part(call.get("id"), str(call.get("name") or ""), call.get("arguments"))
        if isinstance(made, Part):
            parts.append(made)
        else:
            finish, finish_message = "MALFORMED_FUNCTION_CALL", made
    if refusal and not text:
        finish = "SAFETY"
    result, average = logprobs_result(choice.get("logprobs"))
    return Candidate(
        content=Content(role="model", parts=parts) if parts else None,
        finish_reason=finish,
        finish_message=finish_message,
        index=int(choice.get("index", position)),
        citation_metadata=_citations(message.get("annotations")),
        logprobs_result=result,
        avg_logprobs=average,
    )


def from_wire(
    data: bytes | Mapping[str, Any],
    *,
    include_thoughts: bool = False,
    unwrap: str | None = None,
    provider: str = PROVIDER,
) -> GenerateContentResponse:
    """A chat completion as a GenerateContentResponse."""
    obj = load_json(data, provider)
    if isinstance(obj.get("error"), dict | str):
        raise error_from_object(obj, 0, {}, provider)
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise UpstreamError(
            f"{provider} upstream sent a chat completion without choices", provider=provider
        )
    candidates = [
        _candidate(c, i, include_thoughts, unwrap)
        for i, c in enumerate(choices)
        if isinstance(c, dict)
    ]
    return GenerateContentResponse(
        candidates=candidates or None,
        usage_metadata=usage_metadata(obj.get("usage")),
        model_version=obj.get("model") or None,
        response_id=obj.get("id") or None,
    )


def embed_vectors(data: bytes, count: int, provider: str = PROVIDER) -> list[list[float]]:
    """The vectors of an `/embeddings` reply, in input order."""
    items = load_json(data, provider).get("data")
    if not isinstance(items, list) or len(items) != count:
        raise UpstreamError(
            f"{provider} upstream sent no embeddings, or not one for each of {count} inputs",
            provider=provider,
        )
    ordered = sorted(items, key=lambda item: int(item.get("index", 0)))
    return [[float(v) for v in item.get("embedding") or []] for item in ordered]
