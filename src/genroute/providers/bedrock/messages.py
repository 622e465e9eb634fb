"""Gemini `contents` and `systemInstruction` → Converse `messages` and `system`. Pure.

- Roles: `user` (or none, `function`, `tool`) → user, `model` → assistant. Consecutive
  turns of one role become one message; a conversation that opens with the model gets a
  "." user turn in front (Converse requires user first).
- functionCall ↔ `toolUse` keeps the client's id when it is usable (`[a-zA-Z0-9_.:-]`, at
  most 64) and unused, otherwise a fresh unique one; a functionResponse maps to its call by
  id, else by name in call order. `toolResult` blocks open the next user message, in call
  order; a call left unanswered, or an answer without a call, is a 400.
- Media: images (png, jpeg, gif, webp) as `image`, documents (pdf, csv, doc, docx, xls,
  xlsx, html, txt, md) as `document` with a unique name, from inline bytes or an `s3://`
  fileUri (`s3Location`); anything else is refused (drops.py).
- Reasoning blocks come back from `thoughtSignature` envelopes (thinking.py) for Claude.
"""

from __future__ import annotations

import base64
import binascii
import logging
import mimetypes
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from genroute.errors import InvalidRequest
from genroute.providers.anthropic.messages import IdFactory, new_call_id
from genroute.providers.anthropic.thinking import block_key, blocks_from_signature
from genroute.providers.base import standard_base64 as b64
from genroute.providers.bedrock.thinking import to_converse
from genroute.providers.drops import Drops
from genroute.providers.toolcalls import ToolCalls, camel, data_fields
from genroute.wire import Blob, Content, FileData, FunctionResponse, Part

__all__ = [
    "DOCUMENT_FORMATS",
    "IMAGE_FORMATS",
    "PLACEHOLDER_USER_TEXT",
    "MessageBuilder",
    "kind",
    "media_block",
    "system_blocks",
]

log = logging.getLogger("genroute.providers.bedrock")

Block = dict[str, Any]
PLACEHOLDER_USER_TEXT = "."
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg",
                 "image/gif": "gif", "image/webp": "webp"}  # fmt: skip
DOCUMENT_FORMATS = {
    "application/pdf": "pdf", "text/csv": "csv", "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html", "text/plain": "txt", "text/markdown": "md",
}  # fmt: skip
_ID_BAD = re.compile(r"[^A-Za-z0-9_.:-]")
_NAME_BAD = re.compile(r"[^A-Za-z0-9\s\-()\[\]]")
_HARMLESS_PART_FIELDS = frozenset({"part_metadata", "media_resolution", "video_metadata"})
_REASONING = "reasoningContent"


def kind(block: Block) -> str:
    """A Converse content block's kind: its one key (`text`, `toolUse`...)."""
    return next(iter(block))


@dataclass
class _Message:
    role: str
    results: list[Block] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    reasoning_keys: set[tuple[str, str]] = field(default_factory=set)
    turn_start: int = 0  # text blocks merge only within one Gemini turn

    def content(self) -> list[Block]:
        return [*self.results, *self.blocks]


class _DocumentNames:
    """Unique document names, as Converse wants them (letters, digits, single spaces,
    hyphens, parentheses, brackets; at most 200 characters)."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def name(self, blob_or_file: Blob | FileData) -> str:
        extra = blob_or_file.model_extra or {}
        wanted = str(extra.get("displayName") or extra.get("display_name") or "")
        wanted = " ".join(_NAME_BAD.sub(" ", wanted.rsplit(".", 1)[0]).split())[:180]
        base, n = wanted or "document", 1
        name = wanted or f"{base} {n}"
        while name in self._used:
            n += 1
            name = f"{base} {n}"
        self._used.add(name)
        return name


def system_blocks(system: Content | None, dropped: Drops | None = None) -> list[Block]:
    """systemInstruction (every part) → `system` text blocks."""
    dropped = Drops() if dropped is None else dropped
    blocks: list[Block] = []
    for j, part in enumerate(system.parts or [] if system else []):
        if part.text is None or data_fields(part, _HARMLESS_PART_FIELDS) - {"text"}:
            dropped.refuse(
                f"systemInstruction.parts[{j}]: only text parts can be sent to bedrock models"
            )
        elif part.text:
            blocks.append({"text": part.text})
    return blocks


class MessageBuilder:
    """Turns `contents` into Converse messages; see the module docstring."""

    def __init__(
        self, new_id: IdFactory = new_call_id, dropped: Drops | None = None, *, claude: bool
    ) -> None:
        self._dropped = Drops() if dropped is None else dropped
        self._claude = claude
        self._messages: list[_Message] = []
        self._calls = ToolCalls(new_id, _ID_BAD)
        self._names = _DocumentNames()
        self.called: list[str] = []  # the functions the history calls, in order

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
            if not {kind(b) for b in message.content()} - {_REASONING}:
                continue  # nothing worth sending (empty, or only reasoning)
            if messages and messages[-1].role == message.role:  # its neighbour was dropped
                messages[-1].results += message.results
                messages[-1].blocks += message.blocks
            else:
                messages.append(message)
        if messages and messages[0].role == "assistant":
            log.debug("conversation opens with the model: a %r user turn is put first", ".")
            messages.insert(0, _Message("user", blocks=[{"text": PLACEHOLDER_USER_TEXT}]))
        if messages and messages[-1].role == "assistant":
            _strip_trailing_space(messages[-1].blocks)
        return [{"role": m.role, "content": m.content()} for m in messages]

    # -- turns

    def _current(self, role: str) -> _Message:
        if self._messages and self._messages[-1].role == role:
            self._messages[-1].turn_start = len(self._messages[-1].blocks)
            return self._messages[-1]
        if role == "assistant":
            self._calls.model_turn()
        self._messages.append(_Message(role))
        return self._messages[-1]

    def _check_answers(self) -> None:
        for index, message in enumerate(self._messages):
            calls = [b["toolUse"] for b in message.blocks if kind(b) == "toolUse"]
            if message.role != "assistant" or not calls:
                continue
            following = self._messages[index + 1] if index + 1 < len(self._messages) else None
            answered = (
                {r["toolResult"]["toolUseId"] for r in following.results} if following else set()
            )
            for call in calls:
                if call["toolUseId"] not in answered:
                    raise InvalidRequest(
                        f"contents: functionCall {call['name']!r} (id {call['toolUseId']!r}) "
                        "has no functionResponse in the next user turn; bedrock models need one"
                    )

    # -- parts

    def _assistant_part(self, message: _Message, part: Part, where: str) -> None:
        carried = blocks_from_signature(part.thought_signature)
        if carried and not self._claude:
            log.debug("%s: reasoning of a Claude turn dropped for a non-Claude model", where)
            carried = []
        for block in carried or []:
            _add_reasoning(message, block)
        if part.thought:
            if part.text and carried is None:
                log.debug("%s: thought text without a reasoning signature dropped", where)
            return
        if part.thought_signature and carried is None:
            log.debug("%s: thoughtSignature from another model dropped", where)
        kinds = data_fields(part, _HARMLESS_PART_FIELDS)
        if part.function_call is not None:
            call = part.function_call
            if not call.name:
                raise InvalidRequest(f"{where}.functionCall.name: required")
            wire_id = self._calls.call(call.id, call.name)
            self.called.append(call.name)
            tool_use = {"toolUseId": wire_id, "name": call.name, "input": call.args or {}}
            _add_block(message, {"toolUse": tool_use})
        elif part.text is not None:
            if part.text:
                _add_block(message, {"text": part.text})
        elif "function_response" in kinds:
            raise InvalidRequest(f"{where}.functionResponse: only a user turn can answer a call")
        elif kinds:
            self._dropped.refuse(
                f"{where}.{camel(sorted(kinds)[0])}: bedrock models accept only text and "
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
                message.blocks.append({"text": part.text})
        elif part.inline_data is not None or part.file_data is not None:
            if (block := media_block(part, where, self._dropped, self._names)) is not None:
                message.blocks.append(block)
        elif part.function_call is not None:
            raise InvalidRequest(f"{where}.functionCall: only a model turn can call functions")
        elif kinds := data_fields(part, _HARMLESS_PART_FIELDS):
            self._dropped.refuse(
                f"{where}.{camel(sorted(kinds)[0])}: not supported by bedrock models"
            )

    def _tool_result(self, response: FunctionResponse, where: str) -> Block:
        wire_id = self._calls.answer(response, where)
        body = response.response or {}
        result: Block = {"toolUseId": wire_id}
        if set(body) == {"output"} and isinstance(body["output"], str) and body["output"]:
            content: list[Block] = [{"text": body["output"]}]
        elif set(body) == {"error"}:
            error = body["error"]
            text = error if isinstance(error, str) else orjson.dumps(error).decode()
            content = [{"text": text or "error"}]
            if self._claude:  # `status` is Claude's: other models refuse it
                result["status"] = "error"
        else:
            content = [{"json": body}]
        for k, raw in enumerate((response.model_extra or {}).get("parts") or []):
            if block := self._response_media(raw, f"{where}.functionResponse.parts[{k}]"):
                content.append(block)
        result["content"] = content
        return {"toolResult": result}

    def _response_media(self, raw: Any, where: str) -> Block | None:
        """A media part of a multimodal functionResponse as a toolResult content block."""
        try:
            part = Part.model_validate(raw)
        except ValidationError:
            raise InvalidRequest(f"{where}: not a Part") from None
        if part.inline_data is None and part.file_data is None:
            raise InvalidRequest(f"{where}: only inlineData and fileData parts are supported here")
        return media_block(part, where, self._dropped, self._names)


# -- helpers


def _role(role: str | None, index: int) -> str:
    if role in (None, "", "user", "function", "tool"):
        return "user"
    if role == "model":
        return "assistant"
    raise InvalidRequest(f"contents[{index}].role: {role!r} is not a role; use user or model")


def _add_block(message: _Message, block: Block) -> None:
    last = message.blocks[-1] if len(message.blocks) > message.turn_start else None
    if "text" in block and last is not None and kind(last) == "text":
        last["text"] += block["text"]
    else:
        message.blocks.append(block)


def _add_reasoning(message: _Message, block: Block) -> None:
    """Insert a reasoning block once, ahead of the text run it preceded."""
    key = block_key(block)
    if key in message.reasoning_keys:
        return
    message.reasoning_keys.add(key)
    at = len(message.blocks)
    while at and kind(message.blocks[at - 1]) == "text":
        at -= 1
    message.blocks.insert(at, to_converse(block))


def _strip_trailing_space(content: list[Block]) -> None:
    last = content[-1] if content else None
    if last is not None and kind(last) == "text":
        last["text"] = last["text"].rstrip()
        if not last["text"]:
            content.pop()


def _bytes(data: str, where: str) -> str:
    """Base64 in the standard alphabet (Converse's blobs); the SDK sends URL-safe."""
    text = b64(data)
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where}.data: not base64") from None
    if not decoded:
        raise InvalidRequest(f"{where}.data: empty")
    return text


def media_block(
    part: Part, where: str, dropped: Drops, names: _DocumentNames | None = None
) -> Block | None:
    """An inlineData or s3:// fileData part as an image or document block (None: left
    out, drop_params)."""
    names = names or _DocumentNames()
    if part.inline_data is not None:
        blob, where = part.inline_data, f"{where}.inlineData"
        mime = blob.mime_type.split(";")[0].strip().lower()
        source: Block = {"bytes": _bytes(blob.data, where)}
        named: Blob | FileData = blob
    else:
        assert part.file_data is not None
        file, where = part.file_data, f"{where}.fileData"
        if not file.file_uri.startswith("s3://"):
            dropped.refuse(
                f"{where}.fileUri: bedrock models read files from Amazon S3 (s3://...) or "
                f"inline data only, not {file.file_uri!r}"
            )
            return None
        guessed = mimetypes.guess_type(file.file_uri.split("?")[0])[0]
        mime = (file.mime_type or guessed or "").lower()
        source, named = {"s3Location": {"uri": file.file_uri}}, file
    if mime in IMAGE_FORMATS:
        return {"image": {"format": IMAGE_FORMATS[mime], "source": source}}
    if mime in DOCUMENT_FORMATS:
        document = {"format": DOCUMENT_FORMATS[mime], "name": names.name(named), "source": source}
        return {"document": document}
    dropped.refuse(
        f"{where}.mimeType: {mime or 'unknown'!r} is not supported by bedrock models "
        "(images png/jpeg/gif/webp and documents pdf/csv/doc/docx/xls/xlsx/html/txt/md are)"
    )
    return None
