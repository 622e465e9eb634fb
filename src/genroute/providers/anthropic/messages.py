"""Gemini `contents` and `systemInstruction` → Anthropic `messages` and `system`. Pure.

- Roles: `user` (or none, or `function`) → user, `model` → assistant. Consecutive turns of
  one role become one message; a conversation that opens with the model gets a "." user
  turn in front (Anthropic requires user first).
- functionCall ↔ tool_use keeps the client's id when it is usable and unused, otherwise a
  fresh unique one; a functionResponse maps to its call by id, else by name in call order.
  `tool_result` blocks open the next user message, in call order.
- Thinking blocks come back from `thoughtSignature` envelopes (see thinking.py).
- Anything without an Anthropic equivalent whose loss would change the answer is a 400
  naming the field, or is left out when the deployment sets `drop_params` (drops.py);
  harmless leftovers (thought text without a signature, `partMetadata`) are dropped with a
  debug log. A conversation that is wrong in itself (an unknown role, a functionCall in a
  user turn, a call without its response) is refused either way.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from genroute.errors import InvalidRequest
from genroute.providers.anthropic.thinking import Block, block_key, blocks_from_signature
from genroute.providers.base import standard_base64 as b64
from genroute.providers.drops import Drops
from genroute.providers.toolcalls import ToolCalls, camel, data_fields
from genroute.wire import Blob, Content, FileData, FunctionResponse, Part

__all__ = [
    "IMAGE_TYPES",
    "PDF",
    "PLACEHOLDER_USER_TEXT",
    "IdFactory",
    "MessageBuilder",
    "file_block",
    "inline_block",
    "media_block",
    "new_call_id",
    "system_blocks",
]

log = logging.getLogger("genroute.providers.anthropic")

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
PDF = "application/pdf"
PLACEHOLDER_USER_TEXT = "."
_ID_BAD = re.compile(r"[^A-Za-z0-9_-]")
_HARMLESS_PART_FIELDS = frozenset({"part_metadata", "media_resolution"})
IdFactory = Callable[[], str]


def new_call_id() -> str:
    """A fresh tool_use id, unique per call."""
    return f"call_{uuid.uuid4().hex}"


@dataclass
class _Message:
    role: str
    results: list[Block] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    thinking_keys: set[tuple[str, str]] = field(default_factory=set)
    turn_start: int = 0  # text blocks merge only within one Gemini turn

    def content(self) -> list[Block]:
        return [*self.results, *self.blocks]


def system_blocks(system: Content | None, dropped: Drops | None = None) -> list[Block]:
    """systemInstruction (every part) → a list of text blocks."""
    dropped = Drops() if dropped is None else dropped
    blocks: list[Block] = []
    for j, part in enumerate(system.parts or [] if system else []):
        if part.text is None or data_fields(part, _HARMLESS_PART_FIELDS) - {"text"}:
            dropped.refuse(
                f"systemInstruction.parts[{j}]: only text parts can be sent to anthropic models"
            )
        elif part.text:
            blocks.append({"type": "text", "text": part.text})
    return blocks


class MessageBuilder:
    """Turns `contents` into Anthropic messages; see the module docstring."""

    def __init__(self, new_id: IdFactory = new_call_id, dropped: Drops | None = None) -> None:
        self._dropped = Drops() if dropped is None else dropped
        self._messages: list[_Message] = []
        self._calls = ToolCalls(new_id, _ID_BAD)

    def build(self, contents: list[Content]) -> list[dict[str, Any]]:
        for i, content in enumerate(contents):
            role = _role(content.role, i)
            message = self._current(role)
            for j, part in enumerate(content.parts or []):
                where = f"contents[{i}].parts[{j}]"
                if role == "assistant":
                    self._assistant_part(message, part, where)
                else:
                    self._user_part(message, part, where)
        self._check_answers()
        messages: list[_Message] = []
        for message in self._messages:
            if not _worth_sending(message):
                continue
            if messages and messages[-1].role == message.role:  # its neighbour was dropped
                messages[-1].results += message.results
                messages[-1].blocks += message.blocks
            else:
                messages.append(message)
        if messages and messages[0].role == "assistant":
            log.debug("conversation opens with the model: a %r user turn is put first", ".")
            messages.insert(0, _Message("user", blocks=[_text(PLACEHOLDER_USER_TEXT)]))
        if messages and messages[-1].role == "assistant":
            _strip_trailing_space(messages[-1].blocks)
        return [{"role": m.role, "content": m.content()} for m in messages]

    # -- turns

    def _current(self, role: str) -> _Message:
        """The message a turn of `role` goes into: the last one if it has that role."""
        if self._messages and self._messages[-1].role == role:
            self._messages[-1].turn_start = len(self._messages[-1].blocks)
            return self._messages[-1]
        if role == "assistant":
            self._calls.model_turn()
        self._messages.append(_Message(role))
        return self._messages[-1]

    def _check_answers(self) -> None:
        for index, message in enumerate(self._messages):
            calls = [b for b in message.blocks if b["type"] == "tool_use"]
            if message.role != "assistant" or not calls:
                continue
            following = self._messages[index + 1] if index + 1 < len(self._messages) else None
            answered = {r["tool_use_id"] for r in following.results} if following else set()
            for call in calls:
                if call["id"] not in answered:
                    raise InvalidRequest(
                        f"contents: functionCall {call['name']!r} (id {call['id']!r}) has no "
                        "functionResponse in the next user turn; anthropic models need one"
                    )

    # -- parts

    def _assistant_part(self, message: _Message, part: Part, where: str) -> None:
        carried = blocks_from_signature(part.thought_signature)
        for block in carried or []:
            _add_thinking(message, block)
        if part.thought:
            if part.text and carried is None:
                log.debug("%s: thought text without an anthropic signature dropped", where)
            return
        if part.thought_signature and carried is None:
            log.debug("%s: thoughtSignature from another model dropped", where)
        kinds = data_fields(part, _HARMLESS_PART_FIELDS)
        if part.function_call is not None:
            call = part.function_call
            if not call.name:
                raise InvalidRequest(f"{where}.functionCall.name: required")
            wire_id = self._calls.call(call.id, call.name)
            _add_block(
                message,
                {"type": "tool_use", "id": wire_id, "name": call.name, "input": call.args or {}},
            )
        elif part.text is not None:
            if part.text:
                _add_block(message, _text(part.text))
        elif "function_response" in kinds:
            raise InvalidRequest(f"{where}.functionResponse: only a user turn can answer a call")
        elif kinds:
            field_name = sorted(kinds)[0]
            self._dropped.refuse(
                f"{where}.{camel(field_name)}: anthropic models accept only text and "
                "functionCall parts in model turns"
            )

    def _user_part(self, message: _Message, part: Part, where: str) -> None:
        if part.thought:
            log.debug("%s: thought part in a user turn dropped", where)
            return
        if part.function_response is not None:
            message.results.append(self._tool_result(part.function_response, where))
        elif part.text is not None:
            if part.text:
                message.blocks.append(_text(part.text))
        elif part.inline_data is not None or part.file_data is not None:
            if (block := media_block(part, where, self._dropped)) is not None:
                message.blocks.append(block)
        elif part.function_call is not None:
            raise InvalidRequest(f"{where}.functionCall: only a model turn can call functions")
        elif kinds := data_fields(part, _HARMLESS_PART_FIELDS):
            self._dropped.refuse(
                f"{where}.{camel(sorted(kinds)[0])}: not supported by anthropic models"
            )

    def _tool_result(self, response: FunctionResponse, where: str) -> Block:
        wire_id = self._calls.answer(response, where)
        result: Block = {"type": "tool_result", "tool_use_id": wire_id}
        body = response.response or {}
        keys = set(body)
        if keys == {"output"} and isinstance(body["output"], str):
            text = body["output"]
        elif keys == {"error"}:
            error = body["error"]
            text = error if isinstance(error, str) else orjson.dumps(error).decode()
            result["is_error"] = True
        else:
            text = orjson.dumps(body).decode() if body else ""
        media = [
            block
            for k, p in enumerate((response.model_extra or {}).get("parts") or [])
            if (block := self._response_media(p, f"{where}.functionResponse.parts[{k}]"))
        ]
        if media:
            result["content"] = ([_text(text)] if text else []) + media
        elif text:
            result["content"] = text
        return result

    def _response_media(self, raw: Any, where: str) -> Block | None:
        """A media part of a multimodal functionResponse as a content block."""
        try:
            part = Part.model_validate(raw)
        except ValidationError:
            raise InvalidRequest(f"{where}: not a Part") from None
        if part.inline_data is None and part.file_data is None:
            raise InvalidRequest(f"{where}: only inlineData and fileData parts are supported here")
        return media_block(part, where, self._dropped)


# -- helpers


def _role(role: str | None, index: int) -> str:
    if role in (None, "", "user", "function", "tool"):
        return "user"
    if role == "model":
        return "assistant"
    raise InvalidRequest(f"contents[{index}].role: {role!r} is not a role; use user or model")


def _text(text: str) -> Block:
    return {"type": "text", "text": text}


def _add_block(message: _Message, block: Block) -> None:
    last = message.blocks[-1] if len(message.blocks) > message.turn_start else None
    if block["type"] == "text" and last is not None and last["type"] == "text":
        last["text"] += block["text"]
    else:
        message.blocks.append(block)


def _add_thinking(message: _Message, block: Block) -> None:
    """Insert a thinking block once, ahead of the text run it preceded."""
    key = block_key(block)
    if key in message.thinking_keys:
        return
    message.thinking_keys.add(key)
    at = len(message.blocks)
    while at and message.blocks[at - 1]["type"] == "text":
        at -= 1
    message.blocks.insert(at, block)


def _worth_sending(message: _Message) -> bool:
    kinds = {b["type"] for b in message.content()}
    return bool(kinds - {"thinking", "redacted_thinking"})


def _strip_trailing_space(content: list[Block]) -> None:
    last = content[-1] if content else None
    if last is not None and last["type"] == "text":
        last["text"] = last["text"].rstrip()
        if not last["text"]:
            content.pop()


def media_block(part: Part, where: str, dropped: Drops) -> Block | None:
    """An inlineData or fileData part as a content block (None: left out, drop_params)."""
    if part.inline_data is not None:
        return inline_block(part.inline_data, f"{where}.inlineData", dropped)
    assert part.file_data is not None
    return file_block(part.file_data, f"{where}.fileData", dropped)


def inline_block(blob: Blob, where: str, dropped: Drops | None = None) -> Block | None:
    """inlineData → an image, PDF document or plain-text document block."""
    mime = blob.mime_type.split(";")[0].strip().lower()
    if mime == "image/jpg":
        mime = "image/jpeg"
    data = b64(blob.data)
    if mime in IMAGE_TYPES:
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    if mime == PDF:
        return {"type": "document", "source": {"type": "base64", "media_type": PDF, "data": data}}
    if mime == "text/plain":
        text = base64.b64decode(data).decode("utf-8", "replace")
        source = {"type": "text", "media_type": "text/plain", "data": text}
        return {"type": "document", "source": source}
    (Drops() if dropped is None else dropped).refuse(
        f"{where}.mimeType: {blob.mime_type!r} is not supported by anthropic models "
        "(images jpeg/png/gif/webp, application/pdf and text/plain are)"
    )
    return None


def file_block(file: FileData, where: str, dropped: Drops | None = None) -> Block | None:
    """fileData with an http(s) URL → an image or PDF document with a url source."""
    dropped = Drops() if dropped is None else dropped
    uri = file.file_uri
    if not uri.startswith(("https://", "http://")) or "generativelanguage.googleapis.com" in uri:
        dropped.refuse(
            f"{where}.fileUri: anthropic models can only fetch public http(s) URLs, not {uri!r}"
        )
        return None
    mime = (file.mime_type or mimetypes.guess_type(uri.split("?")[0])[0] or "").lower()
    if mime in IMAGE_TYPES or mime == "image/jpg":
        return {"type": "image", "source": {"type": "url", "url": uri}}
    if mime == PDF:
        return {"type": "document", "source": {"type": "url", "url": uri}}
    dropped.refuse(
        f"{where}.mimeType: {mime or 'unknown'!r} files are not supported by anthropic models "
        "(image and PDF URLs are)"
    )
    return None
