"""Chat Completions replies → Gemini responses (pure). Shared with the stream decoder.

Choices become candidates (by index): reasoning (`reasoning_content` / `reasoning`) as
thought parts when includeThoughts is on, content and refusal as text, tool calls as
`functionCall` parts with their ids. finish_reason stop/tool_calls/function_call → STOP,
length → MAX_TOKENS, content_filter → SAFETY (a refusal without text too); arguments
that are not a JSON object → MALFORMED_FUNCTION_CALL. Usage keeps Gemini's arithmetic:
candidatesTokenCount excludes reasoning, thoughtsTokenCount is the reasoning, and
totalTokenCount = prompt + candidates + thoughts.

Every value read from the upstream goes through a `Reader` (providers/shapes.py): a reply
that is not the API's shape (not a JSON object, `choices` not an array, a number where
text belongs) raises UpstreamMalformed naming the provider and the field. The reasoning
fields are servers' extensions whose shape varies; anything but a string there is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from genroute.providers.openai.errors import error_from_object
from genroute.providers.shapes import Reader
from genroute.wire import (
    Candidate,
    CitationMetadata,
    Content,
    FunctionCall,
    GenerateContentResponse,
    ModalityTokenCount,
    Part,
    UsageMetadata,
    text_answer,
)

__all__ = [
    "FINISH_REASONS",
    "PROVIDER",
    "Embeddings",
    "ToolCall",
    "call_part",
    "content_text",
    "embeddings_from_wire",
    "finish_reason",
    "from_wire",
    "logprobs_result",
    "parse_arguments",
    "reasoning_text",
    "tool_call",
    "unwrap_json",
    "usage_metadata",
]

PROVIDER = "openai"
FINISH_REASONS = {
    "stop": "STOP",
    "eos": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "function_call": "STOP",
    "content_filter": "SAFETY",
}
_MODALITIES = (("text_tokens", "TEXT"), ("image_tokens", "IMAGE"), ("audio_tokens", "AUDIO"))


def reasoning_text(message: Mapping[str, Any]) -> str:
    """Reasoning as DeepSeek/vLLM (`reasoning_content`) or OpenRouter/Ollama (`reasoning`) send it."""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def content_text(value: Any, r: Reader, path: str) -> str:
    """Message content as text: a string, or a list of text parts some servers send."""
    if value is None or isinstance(value, str):
        return value or ""
    pieces = []
    for i, part in enumerate(r.array(value, path)):
        part = r.obj(part, f"{path}[{i}]", required=True)
        pieces.append(r.string(part.get("text"), f"{path}[{i}].text") or "")
    return "".join(pieces)


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call (or a streamed piece of one) as the upstream sent it."""

    index: int | None
    id: str | None
    name: str | None
    arguments: Any  # a JSON string by the API; an object from some servers (Ollama)


def tool_call(value: Any, r: Reader, path: str) -> ToolCall:
    """A `tool_calls[]` entry (or a legacy `function_call`, given as `{"function": ...}`)."""
    call = r.obj(value, path, required=True)
    function = r.obj(call.get("function"), f"{path}.function")
    return ToolCall(
        index=r.integer(call.get("index"), f"{path}.index"),
        id=r.string(call.get("id"), f"{path}.id") or None,
        name=r.string(function.get("name"), f"{path}.function.name"),
        arguments=function.get("arguments"),
    )


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


def call_part(call_id: str | None, name: str, raw_args: Any) -> Part | str:
    """A functionCall part, or the finishMessage explaining why the call was malformed."""
    args = parse_arguments(raw_args)
    if args is None:
        return (
            f"the call to {name!r} had arguments that are not a JSON object: {str(raw_args)[:200]}"
        )
    return Part(function_call=FunctionCall(id=call_id or None, name=name, args=args))


def logprobs_result(
    logprobs: Any, r: Reader, path: str
) -> tuple[dict[str, Any] | None, float | None]:
    """OpenAI `logprobs.content` → Gemini `logprobsResult` and the average log probability."""
    items = r.array(r.obj(logprobs, path).get("content"), f"{path}.content")
    if not items:
        return None, None
    chosen, top = [], []
    for i, raw in enumerate(items):
        where = f"{path}.content[{i}]"
        item = r.obj(raw, where, required=True)
        chosen.append(_token(item, r, where))
        alternatives = r.array(item.get("top_logprobs"), f"{where}.top_logprobs")
        top.append(
            {
                "candidates": [
                    _token(r.obj(t, f"{where}.top_logprobs[{j}]", required=True), r, where)
                    for j, t in enumerate(alternatives)
                ]
            }
        )
    values = [c["logProbability"] for c in chosen if c["logProbability"] is not None]
    average = sum(values) / len(values) if values else None
    return {"topCandidates": top, "chosenCandidates": chosen}, average


def _token(item: Mapping[str, Any], r: Reader, path: str) -> dict[str, Any]:
    return {
        "token": r.string(item.get("token"), f"{path}.token"),
        "logProbability": r.number(item.get("logprob"), f"{path}.logprob"),
    }


def finish_reason(value: str | None) -> str | None:
    """The Gemini finishReason for an OpenAI finish_reason (None stays None)."""
    if not value:
        return None
    return FINISH_REASONS.get(value, "OTHER")


def usage_metadata(usage: Any, r: Reader, path: str = "usage") -> UsageMetadata | None:
    """OpenAI usage → Gemini usage: candidates exclude reasoning, total includes it."""
    if usage is None:
        return None
    usage = r.obj(usage, path)

    def count(obj: Mapping[str, Any], key: str, where: str) -> int:
        return r.integer(obj.get(key), f"{where}.{key}") or 0

    prompt = count(usage, "prompt_tokens", path)
    completion = count(usage, "completion_tokens", path)
    out_path, in_path = f"{path}.completion_tokens_details", f"{path}.prompt_tokens_details"
    out_details = r.obj(usage.get("completion_tokens_details"), out_path)
    in_details = r.obj(usage.get("prompt_tokens_details"), in_path)
    reasoning = min(count(out_details, "reasoning_tokens", out_path), completion)
    cached = count(in_details, "cached_tokens", in_path) or count(
        usage, "prompt_cache_hit_tokens", path
    )
    modalities = [
        ModalityTokenCount(modality=name, token_count=tokens)
        for key, name in _MODALITIES
        if (tokens := count(in_details, key, in_path))
    ]
    return UsageMetadata(
        prompt_token_count=prompt,
        candidates_token_count=completion - reasoning,
        total_token_count=prompt + completion,
        thoughts_token_count=reasoning or None,
        cached_content_token_count=cached or None,
        prompt_tokens_details=modalities or None,
    )


def _citations(annotations: Any, r: Reader, path: str) -> CitationMetadata | None:
    sources = []
    for i, note in enumerate(r.array(annotations, path)):
        where = f"{path}[{i}].url_citation"
        cite = r.obj(r.obj(note, f"{path}[{i}]", required=True).get("url_citation"), where)
        if not cite:
            continue
        source = {
            "startIndex": r.integer(cite.get("start_index"), f"{where}.start_index"),
            "endIndex": r.integer(cite.get("end_index"), f"{where}.end_index"),
            "uri": r.string(cite.get("url"), f"{where}.url"),
            "title": r.string(cite.get("title"), f"{where}.title"),
        }
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
    choice: Mapping[str, Any], position: int, include_thoughts: bool, unwrap: str | None, r: Reader
) -> Candidate:
    path = f"choices[{position}]"
    message = r.obj(choice.get("message"), f"{path}.message")
    parts: list[Part] = []
    if include_thoughts and (thought := reasoning_text(message)):
        parts.append(Part(text=thought, thought=True))
    if text := content_text(message.get("content"), r, f"{path}.message.content"):
        parts.append(Part(text=unwrap_json(text, unwrap)))
    refusal = r.string(message.get("refusal"), f"{path}.message.refusal")
    if refusal:
        parts.append(Part(text=refusal))
    finish = finish_reason(r.string(choice.get("finish_reason"), f"{path}.finish_reason"))
    finish = finish or "STOP"
    finish_message = None
    calls_path = f"{path}.message.tool_calls"
    calls = [
        tool_call(c, r, f"{calls_path}[{i}]")
        for i, c in enumerate(r.array(message.get("tool_calls"), calls_path))
    ]
    if (legacy := message.get("function_call")) is not None:
        calls.append(tool_call({"function": legacy}, r, f"{path}.message.function_call"))
    for call in calls:
        made = call_part(call.id, call.name or "", call.arguments)
        if isinstance(made, Part):
            parts.append(made)
        else:
            finish, finish_message = "MALFORMED_FUNCTION_CALL", made
    if refusal and not text:
        finish = "SAFETY"
    result, average = logprobs_result(choice.get("logprobs"), r, f"{path}.logprobs")
    index = r.integer(choice.get("index"), f"{path}.index")
    return Candidate(
        content=Content(role="model", parts=parts) if parts else None,
        finish_reason=finish,
        finish_message=finish_message,
        index=position if index is None else index,
        citation_metadata=_citations(message.get("annotations"), r, f"{path}.message.annotations"),
        logprobs_result=result,
        avg_logprobs=average,
    )


def _plain_text(choices: list[Any], include_thoughts: bool) -> str | None:
    """The answer of a completion of one choice that holds only text (no reasoning shown,
    refusal, tool call, log probabilities or citations; index 0 or none): what `_candidate`
    would make one text part of. None for anything else, which `_candidate` reads."""
    if len(choices) != 1 or not isinstance(choice := choices[0], dict):
        return None
    message = choice.get("message")
    if not isinstance(message, dict):
        return None
    text = message.get("content")
    index = choice.get("index")
    if not isinstance(text, str) or not text or (index is not None and type(index) is not int):
        return None
    if index or choice.get("logprobs") is not None or message.get("function_call") is not None:
        return None
    if message.get("refusal") not in (None, "") or message.get("tool_calls") not in (None, []):
        return None
    if message.get("annotations") not in (None, []):
        return None
    if include_thoughts and reasoning_text(message):
        return None
    return text


def from_wire(
    data: bytes | Mapping[str, Any],
    *,
    include_thoughts: bool = False,
    unwrap: str | None = None,
    provider: str = PROVIDER,
) -> GenerateContentResponse:
    """A chat completion as a GenerateContentResponse."""
    r = Reader(provider, "chat completion")
    obj = r.load(data)
    if isinstance(obj.get("error"), dict | str):
        raise error_from_object(obj, 0, {}, provider)
    choices = r.array(obj.get("choices"), "choices", required=True)
    text = _plain_text(choices, include_thoughts)
    finish, candidates = "STOP", []
    if text is not None:
        reason = r.string(choices[0].get("finish_reason"), "choices[0].finish_reason")
        finish = finish_reason(reason) or finish
    else:
        candidates = [
            _candidate(r.obj(c, f"choices[{i}]", required=True), i, include_thoughts, unwrap, r)
            for i, c in enumerate(choices)
        ]
    usage = usage_metadata(obj.get("usage"), r)
    model = r.string(obj.get("model"), "model") or None
    response_id = r.string(obj.get("id"), "id") or None
    if text is not None:
        answer = unwrap_json(text, unwrap)
        return text_answer(
            answer, finish_reason=finish, usage=usage, model_version=model, response_id=response_id
        )
    return GenerateContentResponse(
        candidates=candidates or None,
        usage_metadata=usage,
        model_version=model,
        response_id=response_id,
    )


@dataclass(frozen=True, slots=True)
class Embeddings:
    """The vectors of an `/embeddings` reply in input order, and the tokens it reports."""

    vectors: list[list[float]]
    input_tokens: int | None


def embeddings_from_wire(data: bytes, count: int, provider: str = PROVIDER) -> Embeddings:
    """An `/embeddings` reply for `count` inputs."""
    r = Reader(provider, "embeddings reply")
    obj = r.load(data)
    if isinstance(obj.get("error"), dict | str):
        raise error_from_object(obj, 0, {}, provider)
    items = r.array(obj.get("data"), "data", required=True)
    if len(items) != count:
        raise r.fail(f"{len(items)} embeddings for {count} inputs")
    vectors: dict[int, list[float]] = {}
    for position, raw in enumerate(items):
        path = f"data[{position}]"
        item = r.obj(raw, path, required=True)
        index = r.integer(item.get("index"), f"{path}.index")
        values = r.array(item.get("embedding"), f"{path}.embedding", required=True)
        if any(type(v) is not float and type(v) is not int for v in values):
            raise r.fail(f"{path}.embedding holds something that is not a number")
        vectors[position if index is None else index] = [float(v) for v in values]
    if sorted(vectors) != list(range(count)):
        raise r.fail(f"the embeddings' indices {sorted(vectors)} are not 0 to {count - 1}")
    usage = r.obj(obj.get("usage"), "usage")
    tokens = r.integer(usage.get("prompt_tokens"), "usage.prompt_tokens")
    if tokens is None:
        tokens = r.integer(usage.get("total_tokens"), "usage.total_tokens")
    return Embeddings([vectors[i] for i in range(count)], tokens)
