"""Chat Completions stream chunks → Gemini stream chunks.

`StreamDecoder` is fed one SSE `data` payload at a time (bytes or a parsed dict) and
returns the Gemini chunks it completes, so everything is relayed as it arrives:

* text, refusal and reasoning deltas (`reasoning_content` / `reasoning`, as thought
  parts when includeThoughts is on) become one chunk each, right away;
* tool-call deltas are assembled per choice and tool index (ids, names and argument
  fragments) and sent as complete `functionCall` parts when that choice finishes;
* finishReason is held back and sent with the usage on the very last chunk, at `[DONE]`;
  no chunk has `finishReason: null` or empty parts;
* an `{"error": ...}` event raises the mapped error; a stream that ends without `[DONE]`
  and without a finish_reason raises too, so a cut-off answer never looks complete;
* an event that is not the API's shape (not JSON, not an object, `choices` or `delta` of
  the wrong type, a number where text belongs) raises UpstreamMalformed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from genroute.errors import UpstreamUnavailable
from genroute.providers.base import stream_content
from genroute.providers.openai.errors import error_from_object
from genroute.providers.openai.response import (
    PROVIDER,
    ToolCall,
    call_part,
    content_text,
    finish_reason,
    logprobs_result,
    reasoning_text,
    tool_call,
    unwrap_json,
    usage_metadata,
)
from genroute.providers.shapes import Reader
from genroute.wire import Candidate, GenerateContentResponse, Part, UsageMetadata, text_chunk

__all__ = ["DONE", "StreamDecoder"]

DONE = b"[DONE]"


@dataclass(slots=True)
class _ToolCall:
    id: str | None
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Choice:
    calls: list[_ToolCall] = field(default_factory=list)
    by_index: dict[int, _ToolCall] = field(default_factory=dict)
    finish: str | None = None
    finish_message: str | None = None
    refused: bool = False
    texted: bool = False
    held: list[str] = field(default_factory=list)


class StreamDecoder:
    """Turns OpenAI `chat.completion.chunk` events into GenerateContentResponse chunks."""

    def __init__(
        self, *, include_thoughts: bool = False, unwrap: str | None = None, provider: str = PROVIDER
    ) -> None:
        self._include_thoughts = include_thoughts
        self._unwrap = unwrap
        self._provider = provider
        self._reader = Reader(provider, "stream event")
        self._choices: dict[int, _Choice] = {}
        self._usage: UsageMetadata | None = None
        self._id: str | None = None
        self._model: str | None = None
        self.done = False

    def feed(self, payload: bytes | Mapping[str, Any]) -> list[GenerateContentResponse]:
        """The chunks completed by one event (`[DONE]` ends the stream)."""
        if self.done:
            return []
        r = self._reader
        if isinstance(payload, bytes | bytearray):
            text = bytes(payload).strip()
            if text == DONE:
                return self.finish()
            if not text:
                return []
            obj = r.load(text)
        else:
            obj = r.load(payload)
        if obj.get("error") is not None or obj.get("object") == "error":
            self.done = True
            raise error_from_object(obj, 0, {}, self._provider)
        self._id = self._id or r.string(obj.get("id"), "id") or None
        self._model = self._model or r.string(obj.get("model"), "model") or None
        if (usage := usage_metadata(obj.get("usage"), r)) is not None:
            self._usage = usage
        choices = r.array(obj.get("choices"), "choices")
        if len(choices) == 1 and (chunk := self._text_only(choices[0])) is not None:
            return [chunk]
        candidates = []
        for position, choice in enumerate(choices):
            candidate = self._choice(r.obj(choice, f"choices[{position}]", required=True), position)
            if candidate is not None:
                candidates.append(candidate)
        return [self._chunk(candidates)] if candidates else []

    def _text_only(self, choice: Any) -> GenerateContentResponse | None:
        """The chunk of a lone choice whose delta is only new text (most events of a
        stream), written at once (`text_chunk`); None for any other event, which `_choice`
        reads field by field."""
        if type(choice) is not dict or self._unwrap is not None:
            return None
        delta = choice.get("delta")
        if type(delta) is not dict or choice.get("finish_reason") is not None:
            return None
        text = delta.get("content")
        if type(text) is not str or not text or choice.get("logprobs") is not None:
            return None
        for key, value in delta.items():
            if value is not None and key != "content" and key != "role":
                return None
        index = choice.get("index", 0)
        if type(index) is not int:
            return None
        self._choices.setdefault(index, _Choice()).texted = True
        return text_chunk(text, index=index, model_version=self._model, response_id=self._id)

    def _choice(self, choice: Mapping[str, Any], position: int) -> Candidate | None:
        r, path = self._reader, f"choices[{position}]"
        index = r.integer(choice.get("index"), f"{path}.index")
        index = position if index is None else index
        state = self._choices.setdefault(index, _Choice())
        delta = r.obj(choice.get("delta"), f"{path}.delta")
        parts: list[Part] = []
        if self._include_thoughts and (thought := reasoning_text(delta)):
            parts.append(Part(text=thought, thought=True))
        if text := content_text(delta.get("content"), r, f"{path}.delta.content"):
            state.texted = True
            if self._unwrap is None:
                parts.append(Part(text=text))
            else:  # a wrapped JSON answer is held until it is whole, then unwrapped
                state.held.append(text)
        if refusal := r.string(delta.get("refusal"), f"{path}.delta.refusal"):
            parts.append(Part(text=refusal))
            state.refused = True
        calls_path = f"{path}.delta.tool_calls"
        for i, call in enumerate(r.array(delta.get("tool_calls"), calls_path)):
            self._add_call(state, tool_call(call, r, f"{calls_path}[{i}]"))
        if (legacy := delta.get("function_call")) is not None:
            call = tool_call({"index": 0, "function": legacy}, r, f"{path}.delta.function_call")
            self._add_call(state, call)
        if reason := finish_reason(r.string(choice.get("finish_reason"), f"{path}.finish_reason")):
            state.finish = reason
            parts += self._flush(state, self._unwrap)
        result, _ = logprobs_result(choice.get("logprobs"), r, f"{path}.logprobs")
        if not parts and result is None:
            return None
        return Candidate(content=stream_content(parts), index=index, logprobs_result=result)

    @staticmethod
    def _add_call(state: _Choice, delta: ToolCall) -> None:
        tool_index, call_id = delta.index, delta.id
        slot = state.by_index.get(tool_index) if tool_index is not None else None
        if slot is None and tool_index is None and state.calls and call_id is None:
            slot = state.calls[-1]
        if slot is not None and call_id and slot.id and call_id != slot.id:
            slot = None  # a server that reuses index 0 for every call
        if slot is None:
            slot = _ToolCall(call_id)
            state.calls.append(slot)
            if tool_index is not None:
                state.by_index[tool_index] = slot
        slot.id = slot.id or call_id
        if delta.name and not slot.name:
            slot.name = delta.name
        arguments = delta.arguments
        if isinstance(arguments, str):
            slot.arguments.append(arguments)
        elif isinstance(arguments, Mapping):
            slot.arguments = [orjson.dumps(arguments).decode()]

    @staticmethod
    def _flush(state: _Choice, unwrap: str | None) -> list[Part]:
        parts: list[Part] = []
        if state.held:
            parts.append(Part(text=unwrap_json("".join(state.held), unwrap)))
            state.held.clear()
        for call in state.calls:
            made = call_part(call.id, call.name, "".join(call.arguments))
            if isinstance(made, Part):
                parts.append(made)
            else:
                state.finish, state.finish_message = "MALFORMED_FUNCTION_CALL", made
        state.calls.clear()
        state.by_index.clear()
        return parts

    def finish(self) -> list[GenerateContentResponse]:
        """The last chunk: tool calls still open, finishReason of every choice, and usage."""
        if self.done:
            return []
        self.done = True
        candidates = []
        for index in sorted(self._choices):
            state = self._choices[index]
            parts = self._flush(state, self._unwrap)
            reason = state.finish or "STOP"
            if state.refused and not state.texted:
                reason = "SAFETY"
            candidates.append(
                Candidate(
                    content=stream_content(parts),
                    finish_reason=reason,
                    finish_message=state.finish_message,
                    index=index,
                )
            )
        if not candidates and self._usage is None:
            return []
        return [self._chunk(candidates, self._usage)]

    def end(self) -> list[GenerateContentResponse]:
        """The upstream closed the stream: finish if every choice did, else raise."""
        if self.done:
            return []
        unfinished = [i for i, c in self._choices.items() if c.finish is None]
        if unfinished or not self._choices:
            self.done = True
            raise UpstreamUnavailable(
                f"{self._provider} upstream ended the stream before it finished",
                provider=self._provider,
            )
        return self.finish()

    def _chunk(
        self, candidates: list[Candidate], usage: UsageMetadata | None = None
    ) -> GenerateContentResponse:
        return GenerateContentResponse(
            candidates=candidates or None,
            usage_metadata=usage,
            model_version=self._model,
            response_id=self._id,
        )
