"""ConverseStream events → Gemini stream chunks.

`StreamDecoder.feed(event_type, payload)` takes one event (`messageStart`,
`contentBlockStart`, `contentBlockDelta` with text / toolUse / reasoningContent deltas,
`contentBlockStop`, `messageStop`, `metadata`) and returns the chunks it completes, so each
is forwarded as soon as it carries something:

- text deltas and (when thoughts are wanted) reasoning text deltas go out at once;
- a tool call's `toolUse.input` deltas are assembled into one functionCall at its block
  stop; the JSON-output tool's deltas are the answer text and go out at once (unless
  wrapped);
- reasoning blocks ride on the next part's thoughtSignature (thinking.py);
- `messageStop` (stop reason) is followed by `metadata` (usage): the last chunk, with
  finishReason and usageMetadata, goes out at `metadata`, or at `finish()` when the stream
  ends without one.

Converse sends no `contentBlockStart` for text and reasoning blocks: a delta for an index
not seen yet opens one. Payloads carry a `p` padding field, which is ignored. No chunk has
`finishReason: null` or empty `parts`; `finish()` raises if `messageStop` never came.
Exceptions in the stream are mapped by the provider (errors.stream_error).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from genroute.errors import UpstreamUnavailable
from genroute.providers.anthropic.thinking import ThoughtCarrier
from genroute.providers.base import stream_content
from genroute.providers.bedrock.errors import PROVIDER
from genroute.providers.bedrock.response import (
    ReplyContext,
    finish_message,
    finish_reason,
    json_answer,
    usage_metadata,
)
from genroute.providers.bedrock.thinking import from_converse
from genroute.providers.shapes import Reader
from genroute.wire import Candidate, FunctionCall, GenerateContentResponse, Part, text_chunk

__all__ = ["StreamDecoder"]


@dataclass
class _Block:
    kind: str  # text, toolUse, reasoning
    id: str | None = None
    name: str | None = None
    pieces: list[str] = field(default_factory=list)
    signature: str = ""
    redacted: str | None = None
    started_text: bool = False


class StreamDecoder:
    """Decodes one ConverseStream; see the module docstring."""

    def __init__(self, context: ReplyContext, response_id: str | None = None) -> None:
        self._context = context
        self._response_id = response_id
        self._carrier = ThoughtCarrier()
        self._blocks: dict[int, _Block] = {}
        self._usage: Mapping[str, Any] | None = None
        self._stop_reason: str | None = None
        self._stopped = False
        self._reader = Reader(PROVIDER, "stream event")
        self.done = False

    def feed(
        self, event_type: str, payload: bytes | Mapping[str, Any]
    ) -> list[GenerateContentResponse]:
        """One event (its `:event-type` and JSON payload) → the chunks it completes."""
        if self.done:
            return []
        r = self._reader
        event = r.load(payload)
        if event_type in ("contentBlockStart", "contentBlockDelta", "contentBlockStop"):
            index = r.integer(event.get("contentBlockIndex"), "contentBlockIndex") or 0
            if event_type == "contentBlockStart":
                return self._start(index, r.obj(event.get("start"), "start"))
            if event_type == "contentBlockDelta":
                return self._delta(index, r.obj(event.get("delta"), "delta"))
            return self._stop(index)
        if event_type == "messageStop":
            self._stop_reason = r.string(event.get("stopReason"), "stopReason")
            self._stopped = True
            return []
        if event_type == "metadata":
            self._usage = r.obj(event.get("usage"), "usage")
            return [self._final()] if self._stopped else []
        return []  # messageStart, and event types added after this was written

    def finish(self) -> list[GenerateContentResponse]:
        """At end of stream: the last chunk if metadata never came, or an error if the
        stream was cut short."""
        if self.done:
            return []
        if not self._stopped:
            raise UpstreamUnavailable(
                "bedrock stream ended before messageStop", code=502, provider=PROVIDER
            )
        return [self._final()]

    # -- blocks

    def _start(self, index: int, start: Mapping[str, Any]) -> list[GenerateContentResponse]:
        r = self._reader
        if "toolUse" in start:
            tool = r.obj(start["toolUse"], "start.toolUse")
            name = r.string(tool.get("name"), "start.toolUse.name")
            if not name:
                raise r.fail("start.toolUse.name is missing")
            call_id = r.string(tool.get("toolUseId"), "start.toolUse.toolUseId")
            self._blocks[index] = _Block("toolUse", id=call_id, name=name)
        return []

    def _block(self, index: int, kind: str) -> _Block:
        state = self._blocks.get(index)
        if state is None:
            state = self._blocks[index] = _Block(kind)
        return state

    def _delta(self, index: int, delta: Mapping[str, Any]) -> list[GenerateContentResponse]:
        r = self._reader
        if "text" in delta:
            text = r.string(delta["text"], "delta.text")
            state = self._block(index, "text")
            return self._text(state, text) if text else []
        if "toolUse" in delta:
            tool = r.obj(delta["toolUse"], "delta.toolUse")
            piece = r.string(tool.get("input"), "delta.toolUse.input")
            call = self._blocks.get(index)
            if call is None or call.kind != "toolUse":
                raise r.fail(f"a toolUse delta for block {index}, which is not a tool call")
            if piece:
                call.pieces.append(piece)
                if self._streams_as_text(call):
                    return self._text(call, piece)
            return []
        if "reasoningContent" in delta:
            reasoning = r.obj(delta["reasoningContent"], "delta.reasoningContent")
            state = self._block(index, "reasoning")
            state.signature += r.string(reasoning.get("signature"), "delta.signature") or ""
            redacted = r.string(reasoning.get("redactedContent"), "delta.redactedContent")
            if redacted is not None:
                state.redacted = (state.redacted or "") + redacted
            if thought := r.string(reasoning.get("text"), "delta.reasoningContent.text"):
                state.pieces.append(thought)
                if self._context.include_thoughts:
                    return [
                        text_chunk(
                            thought,
                            thought=True,
                            model_version=self._context.model,
                            response_id=self._response_id,
                        )
                    ]
        return []  # citation deltas, and delta kinds added after this was written

    def _stop(self, index: int) -> list[GenerateContentResponse]:
        state = self._blocks.pop(index, None)
        if state is None:
            return []
        if state.kind == "reasoning":
            text = "".join(state.pieces)
            self._carrier.add(from_converse(text, state.signature, state.redacted))
        elif state.kind == "toolUse":
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
            state.name is not None
            and state.name == self._context.json_tool
            and not self._context.json_wrapped
        )

    def _arguments(self, state: _Block) -> dict[str, Any]:
        """The tool input: its JSON deltas joined ({} for none)."""
        raw = "".join(state.pieces).strip()
        if not raw:
            return {}
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise self._reader.fail(f"the input of tool {state.name!r} is not JSON") from None
        if not isinstance(value, dict):
            raise self._reader.fail(f"the input of tool {state.name!r} is not an object")
        return value

    def _text(self, state: _Block, text: str) -> list[GenerateContentResponse]:
        signature = None if state.started_text else self._carrier.for_text()
        state.started_text = True
        return [
            text_chunk(
                text,
                thought_signature=signature,
                model_version=self._context.model,
                response_id=self._response_id,
            )
        ]

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
        candidate.finish_message = finish_message(self._stop_reason)
        if self._usage is not None:
            chunk.usage_metadata = usage_metadata(self._usage, self._reader)
        return chunk

    def _chunk(self, parts: list[Part]) -> GenerateContentResponse:
        return GenerateContentResponse(
            candidates=[Candidate(content=stream_content(parts), index=0)],
            model_version=self._context.model,
            response_id=self._response_id,
        )
