"""Anthropic Messages SSE events → Gemini stream chunks.

`StreamDecoder.feed(event)` takes one parsed event (`message_start`, `content_block_start`,
`content_block_delta` with text / input_json / thinking / signature deltas,
`content_block_stop`, `message_delta`, `message_stop`, `ping`, `error`) and returns the
chunks it completes, so each is forwarded as soon as it carries something:

- text deltas and (when thoughts are wanted) thinking deltas go out at once;
- a tool call's `input_json_delta`s are assembled into one functionCall at its block stop;
  the JSON-output tool's deltas are the answer text and go out at once (unless wrapped);
- thinking blocks ride on the next part's thoughtSignature (thinking.py);
- `message_stop` sends the last chunk: finishReason and usageMetadata.

No chunk has `finishReason: null` or an empty `parts` list. An `error` event raises the
mapped error; `finish()` at end of stream raises if `message_stop` never came. An event
that is not the API's shape (not JSON, not an object, a number where text belongs)
raises UpstreamMalformed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from genroute.errors import UpstreamUnavailable
from genroute.providers.anthropic.errors import PROVIDER, map_error
from genroute.providers.anthropic.response import (
    ReplyContext,
    finish_message,
    finish_reason,
    json_answer,
    usage_metadata,
)
from genroute.providers.anthropic.thinking import ThoughtCarrier
from genroute.providers.base import stream_content
from genroute.providers.shapes import Reader
from genroute.wire import Candidate, FunctionCall, GenerateContentResponse, Part, text_chunk

__all__ = ["StreamDecoder"]


@dataclass
class _Block:
    kind: str
    id: str | None = None
    name: str | None = None
    pieces: list[str] = field(default_factory=list)
    start_input: Any = None
    signature: str = ""
    data: str = ""
    started_text: bool = False


class StreamDecoder:
    """Decodes one Anthropic message stream; see the module docstring."""

    def __init__(self, context: ReplyContext) -> None:
        self._context = context
        self._carrier = ThoughtCarrier()
        self._blocks: dict[int, _Block] = {}
        self._usage: dict[str, Any] = {}
        self._model: str | None = None
        self._id: str | None = None
        self._stop_reason: str | None = None
        self._stop_details: Mapping[str, Any] | None = None
        self._reader = Reader(PROVIDER, "stream event")
        self.done = False

    def feed(self, event: bytes | Mapping[str, Any]) -> list[GenerateContentResponse]:
        """One SSE `data` payload (raw or parsed) → the chunks it completes (often none)."""
        if self.done:
            return []
        r = self._reader
        event = r.load(event)
        kind = r.string(event.get("type"), "type")
        if kind == "error":
            raise map_error(500, orjson.dumps(event), {})
        if kind == "message_start":
            message = r.obj(event.get("message"), "message")
            self._model = r.string(message.get("model"), "message.model")
            self._id = r.string(message.get("id"), "message.id")
            self._usage.update(r.obj(message.get("usage"), "message.usage"))
            return []
        if kind in ("content_block_start", "content_block_delta", "content_block_stop"):
            index = r.integer(event.get("index"), "index") or 0
            if kind == "content_block_start":
                return self._start(index, r.obj(event.get("content_block"), "content_block"))
            if kind == "content_block_delta":
                return self._delta(index, r.obj(event.get("delta"), "delta"))
            return self._stop(index)
        if kind == "message_delta":
            delta = r.obj(event.get("delta"), "delta")
            self._stop_reason = r.string(delta.get("stop_reason"), "delta.stop_reason") or (
                self._stop_reason
            )
            details = r.obj(delta.get("stop_details"), "delta.stop_details")
            self._stop_details = details or self._stop_details
            usage = r.obj(event.get("usage"), "usage")
            self._usage.update({k: v for k, v in usage.items() if v is not None})
            return []
        if kind == "message_stop":
            return [self._final()]
        return []  # ping, and event types added after this was written

    def finish(self) -> list[GenerateContentResponse]:
        """At end of stream: nothing more to send, or an error if it was cut short."""
        if not self.done:
            raise UpstreamUnavailable(
                "anthropic stream ended before message_stop", code=502, provider=PROVIDER
            )
        return []

    # -- blocks

    def _start(self, index: int, block: Mapping[str, Any]) -> list[GenerateContentResponse]:
        r, path = self._reader, "content_block"
        kind = r.string(block.get("type"), f"{path}.type") or ""
        state = _Block(
            kind,
            id=r.string(block.get("id"), f"{path}.id"),
            name=r.string(block.get("name"), f"{path}.name"),
        )
        self._blocks[index] = state
        if kind == "redacted_thinking":
            state.data = r.string(block.get("data"), f"{path}.data") or ""
        elif kind == "text":
            if text := r.string(block.get("text"), f"{path}.text"):
                return self._text(state, text)
        elif kind == "thinking":
            if thought := r.string(block.get("thinking"), f"{path}.thinking"):
                return self._thought(state, thought)
        elif kind == "tool_use":
            if not state.name:
                raise r.fail(f"{path}.name is missing")
            state.start_input = r.obj(block.get("input"), f"{path}.input")
        return []

    def _delta(self, index: int, delta: Mapping[str, Any]) -> list[GenerateContentResponse]:
        state = self._blocks.get(index)
        if state is None:
            return []
        r = self._reader
        kind = r.string(delta.get("type"), "delta.type")
        if kind == "text_delta":
            if text := r.string(delta.get("text"), "delta.text"):
                return self._text(state, text)
        elif kind == "thinking_delta":
            if thought := r.string(delta.get("thinking"), "delta.thinking"):
                return self._thought(state, thought)
        elif kind == "signature_delta":
            state.signature += r.string(delta.get("signature"), "delta.signature") or ""
        elif kind == "input_json_delta" and (
            piece := r.string(delta.get("partial_json"), "delta.partial_json")
        ):
            state.pieces.append(piece)
            if self._streams_as_text(state):
                return self._text(state, piece)
        return []

    def _stop(self, index: int) -> list[GenerateContentResponse]:
        state = self._blocks.pop(index, None)
        if state is None:
            return []
        if state.kind == "thinking":
            text = "".join(state.pieces)
            self._carrier.add({"type": "thinking", "thinking": text, "signature": state.signature})
        elif state.kind == "redacted_thinking":
            self._carrier.add({"type": "redacted_thinking", "data": state.data})
        elif state.kind == "tool_use":
            args = self._arguments(state)
            if state.name == self._context.json_tool:
                if not state.started_text:
                    return self._text(state, json_answer(args, self._context))
                return []
            call = FunctionCall(id=state.id, name=state.name, args=args)
            part = Part(function_call=call, thought_signature=self._carrier.for_call())
            return [self._chunk([part])]
        return []

    # -- helpers

    def _streams_as_text(self, state: _Block) -> bool:
        return (
            state.kind == "tool_use"
            and state.name is not None
            and state.name == self._context.json_tool
            and not self._context.json_wrapped
        )

    def _arguments(self, state: _Block) -> dict[str, Any]:
        """The tool input: its JSON deltas joined, else the input of its start event."""
        raw = "".join(state.pieces).strip()
        if not raw:
            return state.start_input if isinstance(state.start_input, dict) else {}
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise self._reader.fail(f"the arguments of tool {state.name!r} are not JSON") from None
        if not isinstance(value, dict):
            raise self._reader.fail(f"the arguments of tool {state.name!r} are not an object")
        return value

    def _text(self, state: _Block, text: str) -> list[GenerateContentResponse]:
        signature = None if state.started_text else self._carrier.for_text()
        state.started_text = True
        return [
            text_chunk(
                text, thought_signature=signature, model_version=self._model, response_id=self._id
            )
        ]

    def _thought(self, state: _Block, text: str) -> list[GenerateContentResponse]:
        state.pieces.append(text)
        if not self._context.include_thoughts:
            return []
        return [text_chunk(text, thought=True, model_version=self._model, response_id=self._id)]

    def _final(self) -> GenerateContentResponse:
        self.done = True
        parts: list[Part] = []
        leftover = self._carrier.leftover()
        if leftover and self._context.include_thoughts:
            parts.append(Part(text="", thought=True, thought_signature=leftover))
        chunk = self._chunk(parts)
        assert chunk.candidates is not None
        candidate = chunk.candidates[0]
        candidate.finish_reason = finish_reason(self._stop_reason)
        candidate.finish_message = finish_message(self._stop_reason, self._stop_details)
        chunk.usage_metadata = usage_metadata(self._usage, self._reader)
        return chunk

    def _chunk(self, parts: list[Part]) -> GenerateContentResponse:
        return GenerateContentResponse(
            candidates=[Candidate(content=stream_content(parts), index=0)],
            model_version=self._model,
            response_id=self._id,
        )
