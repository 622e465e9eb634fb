"""Converse replies → Gemini responses (pure). Shared with the stream decoder.

`output.message.content` blocks become parts: `text` as text (and the text of
`citationsContent`), `toolUse` as a functionCall (or, for the JSON-output tool, the answer's
JSON text), `reasoningContent` as a thought part when thoughts are wanted; reasoning rides
on the next part's thoughtSignature (thinking.py). `stopReason` becomes finishReason
(FINISH_REASONS); `usage` keeps Gemini's arithmetic. Converse names no model and no id:
`modelVersion` is the deployment's model id, `responseId` the `x-amzn-RequestId`.

Every value read from the upstream goes through a `Reader` (providers/shapes.py): a reply
that is not the Converse shape raises UpstreamMalformed naming the field.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genroute.providers.anthropic.response import ReplyContext as _AnthropicContext
from genroute.providers.anthropic.response import json_answer as _json_answer
from genroute.providers.anthropic.thinking import ThoughtCarrier
from genroute.providers.bedrock.errors import PROVIDER
from genroute.providers.bedrock.thinking import from_converse
from genroute.providers.shapes import Reader
from genroute.wire import (
    Candidate,
    Content,
    FunctionCall,
    GenerateContentResponse,
    Part,
    UsageMetadata,
)

__all__ = [
    "FINISH_REASONS",
    "ReplyContext",
    "finish_message",
    "finish_reason",
    "from_wire",
    "json_answer",
    "parts_from_content",
    "usage_metadata",
]

log = logging.getLogger("genroute.providers.bedrock")

FINISH_REASONS = {
    "end_turn": "STOP",
    "stop_sequence": "STOP",
    "tool_use": "STOP",
    "max_tokens": "MAX_TOKENS",
    "model_context_window_exceeded": "MAX_TOKENS",
    "guardrail_intervened": "SAFETY",
    "content_filtered": "SAFETY",
    "malformed_tool_use": "MALFORMED_FUNCTION_CALL",
    "malformed_model_output": "OTHER",
}
_FINISH_MESSAGES = {
    "guardrail_intervened": "a Bedrock guardrail intervened",
    "content_filtered": "Bedrock filtered the content",
    "malformed_tool_use": "the model made a malformed tool call",
    "malformed_model_output": "the model's output was malformed",
}


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """What the reply translation needs to know about the request."""

    include_thoughts: bool = False
    json_tool: str | None = None
    json_wrapped: bool = False
    model: str | None = None  # the deployment's model id, as modelVersion


def json_answer(tool_input: Any, context: ReplyContext) -> str:
    """The JSON text of a json_output tool call (unwrapped when the schema was wrapped)."""
    return _json_answer(tool_input, _AnthropicContext(json_wrapped=context.json_wrapped))


def from_wire(
    body: bytes | Mapping[str, Any], context: ReplyContext, response_id: str | None = None
) -> GenerateContentResponse:
    """A Converse reply → a generateContent response."""
    r = Reader(PROVIDER, "converse reply")
    reply = r.load(body)
    output = r.obj(reply.get("output"), "output", required=True)
    message = r.obj(output.get("message"), "output.message", required=True)
    blocks = r.array(message.get("content"), "output.message.content", required=True)
    parts = parts_from_content(blocks, context, r)
    stop_reason = r.string(reply.get("stopReason"), "stopReason")
    candidate = Candidate(
        content=Content(role="model", parts=parts) if parts else None,
        finish_reason=finish_reason(stop_reason),
        finish_message=finish_message(stop_reason),
        index=0,
    )
    return GenerateContentResponse(
        candidates=[candidate],
        usage_metadata=usage_metadata(r.obj(reply.get("usage"), "usage"), r),
        model_version=context.model,
        response_id=response_id,
    )


def _reasoning(block: Mapping[str, Any], path: str, r: Reader) -> tuple[str, str, str | None]:
    """(text, signature, redacted data or None) of a reasoningContent block."""
    text_block = r.obj(block.get("reasoningText"), f"{path}.reasoningText")
    redacted = r.string(block.get("redactedContent"), f"{path}.redactedContent")
    text = r.string(text_block.get("text"), f"{path}.reasoningText.text") or ""
    signature = r.string(text_block.get("signature"), f"{path}.reasoningText.signature") or ""
    return text, signature, redacted


def _texts(block: Mapping[str, Any], path: str, r: Reader) -> list[str]:
    """The text of a `text` block, or the generated texts of a `citationsContent` one."""
    if "text" in block:
        return [r.string(block["text"], f"{path}.text") or ""]
    cited = r.obj(block["citationsContent"], f"{path}.citationsContent")
    texts = []
    for j, item in enumerate(r.array(cited.get("content"), f"{path}.citationsContent.content")):
        where = f"{path}.citationsContent.content[{j}]"
        texts.append(r.string(r.obj(item, where).get("text"), f"{where}.text") or "")
    return texts


def parts_from_content(
    blocks: list[Any], context: ReplyContext, r: Reader | None = None
) -> list[Part]:
    """Content blocks → parts; reasoning rides on thoughtSignature (thinking.py)."""
    r = r or Reader(PROVIDER, "converse reply")
    carrier = ThoughtCarrier()
    parts: list[Part] = []
    for i, raw in enumerate(blocks):
        path = f"output.message.content[{i}]"
        block = r.obj(raw, path, required=True)
        if "reasoningContent" in block:
            reasoning = r.obj(block["reasoningContent"], f"{path}.reasoningContent")
            thought, signature, redacted = _reasoning(reasoning, f"{path}.reasoningContent", r)
            carrier.add(from_converse(thought, signature, redacted))
            if context.include_thoughts and thought and redacted is None:
                parts.append(Part(text=thought, thought=True))
        elif "text" in block or "citationsContent" in block:
            for text in _texts(block, path, r):
                if text:
                    parts.append(Part(text=text, thought_signature=carrier.for_text()))
        elif "toolUse" in block:
            tool = r.obj(block["toolUse"], f"{path}.toolUse")
            parts.append(_tool_part(tool, path, context, r, carrier))
        else:
            log.debug("Converse content block %s has no Gemini equivalent; dropped", sorted(block))
    leftover = carrier.leftover()
    if leftover and context.include_thoughts:
        if parts and parts[-1].thought and not parts[-1].thought_signature:
            parts[-1].thought_signature = leftover
        else:
            parts.append(Part(text="", thought=True, thought_signature=leftover))
    return parts


def _tool_part(
    tool: Mapping[str, Any], path: str, context: ReplyContext, r: Reader, carrier: ThoughtCarrier
) -> Part:
    name = r.string(tool.get("name"), f"{path}.toolUse.name")
    if not name:
        raise r.fail(f"{path}.toolUse.name is missing")
    tool_input = r.obj(tool.get("input"), f"{path}.toolUse.input")
    if name == context.json_tool:
        return Part(text=json_answer(tool_input, context), thought_signature=carrier.for_text())
    call_id = r.string(tool.get("toolUseId"), f"{path}.toolUse.toolUseId")
    call = FunctionCall(id=call_id, name=name, args=tool_input)
    return Part(function_call=call, thought_signature=carrier.for_call())


def finish_reason(stop_reason: str | None) -> str:
    """Converse stopReason → Gemini finishReason."""
    return FINISH_REASONS.get(stop_reason or "", "OTHER")


def finish_message(stop_reason: str | None) -> str | None:
    """A finishMessage for the stop reasons that need explaining."""
    return _FINISH_MESSAGES.get(stop_reason or "")


def usage_metadata(usage: Mapping[str, Any], r: Reader | None = None) -> UsageMetadata:
    """Converse usage → usageMetadata: promptTokenCount counts cache reads and writes too
    (as Gemini counts cached tokens), cachedContentTokenCount the reads."""
    r = r or Reader(PROVIDER, "usage")

    def count(key: str) -> int:
        return r.integer(usage.get(key), f"usage.{key}") or 0

    cache_read = count("cacheReadInputTokens")
    cache_write = count("cacheWriteInputTokens")
    prompt = count("inputTokens") + cache_read + cache_write
    output = count("outputTokens")
    found = UsageMetadata(
        prompt_token_count=prompt,
        candidates_token_count=output,
        cached_content_token_count=cache_read or None,
        total_token_count=prompt + output,
    )
    found.set_private("_cache_write_tokens", cache_write)
    return found
