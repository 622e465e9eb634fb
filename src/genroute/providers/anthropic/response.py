"""Anthropic Messages API replies → Gemini responses (pure). Shared with the stream decoder.

Content blocks become parts: `text` as text, `tool_use` as a functionCall (or, for the
JSON-output tool, the answer's JSON text), `thinking` as a thought part when thoughts are
wanted; thinking and redacted_thinking blocks ride on the next part's thoughtSignature
(thinking.py). Server tool blocks have no Gemini equivalent and are left out (debug log).
stop_reason becomes finishReason (FINISH_REASONS); usage keeps Gemini's arithmetic.

Every value read from the upstream goes through a `Reader` (providers/shapes.py): a reply
that is not the Messages API's shape raises UpstreamMalformed naming the field.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from genroute.providers.anthropic.errors import PROVIDER, map_error
from genroute.providers.anthropic.thinking import ThoughtCarrier
from genroute.providers.anthropic.tools import WRAP_KEY
from genroute.providers.shapes import Reader
from genroute.wire import (
    Candidate,
    Content,
    FunctionCall,
    GenerateContentResponse,
    Part,
    UsageMetadata,
    text_answer,
)

__all__ = [
    "FINISH_REASONS",
    "ReplyContext",
    "finish_message",
    "finish_reason",
    "from_wire",
    "json_answer",
    "parts_from_blocks",
    "usage_metadata",
]

log = logging.getLogger("genroute.providers.anthropic")

FINISH_REASONS = {
    "end_turn": "STOP",
    "stop_sequence": "STOP",
    "tool_use": "STOP",
    "max_tokens": "MAX_TOKENS",
    "model_context_window_exceeded": "MAX_TOKENS",
    "refusal": "SAFETY",
    "pause_turn": "OTHER",
}


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """What the reply translation needs to know about the request."""

    include_thoughts: bool = False
    json_tool: str | None = None
    json_wrapped: bool = False


def from_wire(body: bytes, context: ReplyContext) -> GenerateContentResponse:
    """A Messages API reply → a generateContent response."""
    r = Reader(PROVIDER, "message")
    message = r.load(body)
    if r.string(message.get("type"), "type") == "error":
        raise map_error(500, body, {})
    blocks = r.array(message.get("content"), "content")
    text = _plain_text(blocks)
    parts = parts_from_blocks(blocks, context, r) if text is None else []
    stop_reason = r.string(message.get("stop_reason"), "stop_reason")
    details = r.obj(message.get("stop_details"), "stop_details")
    finish, explained = finish_reason(stop_reason), finish_message(stop_reason, details)
    usage = usage_metadata(r.obj(message.get("usage"), "usage"), r)
    model = r.string(message.get("model"), "model")
    response_id = r.string(message.get("id"), "id")
    if text is not None:
        return text_answer(
            text,
            finish_reason=finish,
            finish_message=explained,
            usage=usage,
            model_version=model,
            response_id=response_id,
        )
    content = Content(role="model", parts=parts) if parts else None
    candidate = Candidate(content=content, finish_reason=finish, finish_message=explained, index=0)
    return GenerateContentResponse(
        candidates=[candidate], usage_metadata=usage, model_version=model, response_id=response_id
    )


def _plain_text(blocks: list[Any]) -> str | None:
    """The answer of a reply of one text block and nothing else (no thinking or tool use):
    what `parts_from_blocks` would make one text part of. None for anything else."""
    if len(blocks) != 1 or not isinstance(block := blocks[0], dict):
        return None
    text = block.get("text")
    if block.get("type") != "text" or not isinstance(text, str) or not text:
        return None
    return text


def parts_from_blocks(
    blocks: list[Any], context: ReplyContext, r: Reader | None = None
) -> list[Part]:
    """Content blocks → parts; thinking rides on thoughtSignature (thinking.py)."""
    r = r or Reader(PROVIDER, "message")
    carrier = ThoughtCarrier()
    parts: list[Part] = []
    for i, raw in enumerate(blocks):
        path = f"content[{i}]"
        block = r.obj(raw, path, required=True)
        kind = r.string(block.get("type"), f"{path}.type")
        if kind == "thinking":
            thought = r.string(block.get("thinking"), f"{path}.thinking") or ""
            signature = r.string(block.get("signature"), f"{path}.signature") or ""
            carrier.add({"type": "thinking", "thinking": thought, "signature": signature})
            if context.include_thoughts and thought:
                parts.append(Part(text=thought, thought=True))
        elif kind == "redacted_thinking":
            data = r.string(block.get("data"), f"{path}.data") or ""
            carrier.add({"type": "redacted_thinking", "data": data})
        elif kind == "text":
            if text := r.string(block.get("text"), f"{path}.text"):
                parts.append(Part(text=text, thought_signature=carrier.for_text()))
        elif kind == "tool_use":
            name = r.string(block.get("name"), f"{path}.name")
            if not name:
                raise r.fail(f"{path}.name is missing")
            tool_input = r.obj(block.get("input"), f"{path}.input")
            if name == context.json_tool:
                answer = json_answer(tool_input, context)
                parts.append(Part(text=answer, thought_signature=carrier.for_text()))
            else:
                call_id = r.string(block.get("id"), f"{path}.id")
                call = FunctionCall(id=call_id, name=name, args=tool_input)
                parts.append(Part(function_call=call, thought_signature=carrier.for_call()))
        else:
            log.debug("anthropic content block %r has no Gemini equivalent; dropped", kind)
    leftover = carrier.leftover()
    if leftover and context.include_thoughts:
        if parts and parts[-1].thought and not parts[-1].thought_signature:
            parts[-1].thought_signature = leftover
        else:
            parts.append(Part(text="", thought=True, thought_signature=leftover))
    return parts


def json_answer(tool_input: Any, context: ReplyContext) -> str:
    """The JSON text of a json_output tool call (unwrapped when the schema was wrapped)."""
    value = tool_input
    if context.json_wrapped and isinstance(tool_input, dict):
        value = tool_input.get(WRAP_KEY)
    return orjson.dumps(value).decode()


def finish_reason(stop_reason: str | None) -> str:
    """Anthropic stop_reason → Gemini finishReason."""
    return FINISH_REASONS.get(stop_reason or "", "OTHER")


def finish_message(stop_reason: str | None, details: Mapping[str, Any] | None) -> str | None:
    """A finishMessage for the stop reasons that need explaining."""
    if stop_reason == "refusal":
        details = details or {}
        return str(details.get("explanation") or details.get("category") or "model refused")
    if stop_reason == "pause_turn":
        return "the anthropic model paused its turn (pause_turn)"
    return None


def usage_metadata(usage: Mapping[str, Any], r: Reader | None = None) -> UsageMetadata:
    """Anthropic usage → usageMetadata. promptTokenCount counts cached and cache-written
    input too (the writes also noted, for their price); thinking tokens are split out only
    when Anthropic reports them."""
    r = r or Reader(PROVIDER, "usage")

    def count(obj: Mapping[str, Any], key: str, path: str = "usage") -> int:
        return r.integer(obj.get(key), f"{path}.{key}") or 0

    cache_read = count(usage, "cache_read_input_tokens")
    cache_write = count(usage, "cache_creation_input_tokens")
    prompt = count(usage, "input_tokens") + cache_read + cache_write
    output = count(usage, "output_tokens")
    details = r.obj(usage.get("output_tokens_details"), "usage.output_tokens_details")
    thoughts = min(count(details, "thinking_tokens", "usage.output_tokens_details"), output)
    found = UsageMetadata(
        prompt_token_count=prompt,
        candidates_token_count=output - thoughts,
        thoughts_token_count=thoughts or None,
        cached_content_token_count=cache_read or None,
        total_token_count=prompt + output,
    )
    found.set_private("_cache_write_tokens", cache_write)
    return found
