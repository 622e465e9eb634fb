"""Gemini `systemInstruction` + `contents` → Chat Completions `messages` (pure).

Turns are normalised before they are mapped: parts that carry nothing an OpenAI model can
read (thoughts, bare thought signatures, empty text) are left out, empty turns vanish and
consecutive turns of one role are merged. A model turn becomes one assistant message whose
`functionCall` parts are `tool_calls`; the next user turn's `functionResponse` parts become
`role: tool` messages placed first, each answering its own call: by id, else by name in
call order. Calls without an id get a fresh unique one (`call_<uuid4 hex>`).

A part with no equivalent (a video, a Files API URI, an image in a model turn...) is
refused with a 400 naming it, or left out when the deployment sets `drop_params`
(providers/drops.py); a request that is wrong in itself (an unknown role, a call without
its response) is refused either way.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genroute.errors import InvalidRequest
from genroute.providers.base import standard_base64
from genroute.providers.drops import Drops
from genroute.wire import Content, GenerateContentRequest, Part

__all__ = ["IdFactory", "system_message", "to_messages"]

IdFactory = Callable[[], str]
_API = "the OpenAI Chat Completions API"
_AUDIO_FORMATS = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/vnd.wave": "wav",
    "audio/mp3": "mp3",
    "audio/mpeg": "mp3",
    "audio/mpeg3": "mp3",
    "audio/x-mp3": "mp3",
}
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/x-python")
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp")


@dataclass(slots=True)
class _Call:
    sent_id: str
    given_id: str | None
    name: str
    path: str


@dataclass(slots=True)
class _Turn:
    role: str
    parts: list[tuple[str, Part]]


def _role(content: Content, index: int) -> str:
    role = (content.role or "user").lower()
    if role in ("user", "function", "tool"):
        return "user"
    if role in ("model", "assistant"):
        return "assistant"
    raise InvalidRequest(f"contents[{index}].role: {content.role!r} is not 'user' or 'model'")


def _useful(part: Part, path: str, dropped: Drops) -> bool:
    """Whether a part carries something the upstream can read; notes what is left out."""
    if part.thought_signature:
        dropped.add("contents.parts.thoughtSignature")
    if part.video_metadata is not None:
        dropped.add("contents.parts.videoMetadata")
    if part.part_metadata is not None:
        dropped.add("contents.parts.partMetadata")
    if part.thought and part.function_call is None and part.function_response is None:
        dropped.add("contents.parts.thought (earlier thoughts are not sent back)")
        return False
    data = (
        part.inline_data,
        part.file_data,
        part.function_call,
        part.function_response,
        part.executable_code,
        part.code_execution_result,
    )
    if any(x is not None for x in data) or part.text:
        return True
    if extra := [k for k, v in (part.model_extra or {}).items() if v is not None]:
        dropped.refuse(f"{path}.{extra[0]}: this part kind has no equivalent in {_API}")
    return False


def _turns(contents: list[Content], dropped: Drops) -> list[_Turn]:
    turns: list[_Turn] = []
    for i, content in enumerate(contents):
        role = _role(content, i)
        parts = [
            (f"contents[{i}].parts[{j}]", p)
            for j, p in enumerate(content.parts or [])
            if _useful(p, f"contents[{i}].parts[{j}]", dropped)
        ]
        if not parts:
            continue
        if turns and turns[-1].role == role:
            turns[-1].parts.extend(parts)
        else:
            turns.append(_Turn(role, parts))
    return turns


def _code_text(part: Part) -> str | None:
    if part.executable_code is not None:
        lang = (part.executable_code.language or "python").lower()
        return f"```{lang}\n{part.executable_code.code or ''}\n```"
    if part.code_execution_result is not None:
        result = part.code_execution_result
        return f"Code execution {result.outcome or 'result'}:\n```\n{result.output or ''}\n```"
    return None


def _media(part: Part, path: str, detail: str | None, dropped: Drops) -> dict[str, Any] | None:
    """An inlineData or fileData part as a user content part (None: left out)."""
    if part.inline_data is not None:
        blob = part.inline_data
        mime = blob.mime_type.split(";")[0].strip().lower()
        data = standard_base64(blob.data)
        url = f"data:{mime};base64,{data}"
        if mime.startswith("image/"):
            return _image(url, detail)
        if mime in _AUDIO_FORMATS:
            return {
                "type": "input_audio",
                "input_audio": {"data": data, "format": _AUDIO_FORMATS[mime]},
            }
        if mime == "application/pdf":
            name = str((blob.model_extra or {}).get("displayName") or "document.pdf")
            return {"type": "file", "file": {"filename": name, "file_data": url}}
        if mime.startswith(_TEXT_TYPES):
            try:
                text = base64.b64decode(data, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise InvalidRequest(
                    f"{path}.inlineData.data: {mime} data is not base64-encoded UTF-8"
                ) from None
            return {"type": "text", "text": text}
        dropped.refuse(
            f"{path}.inlineData.mimeType: {mime} has no equivalent in {_API} "
            "(images, wav/mp3 audio, PDF and text are supported)"
        )
        return None
    assert part.file_data is not None
    uri, mime = part.file_data.file_uri, (part.file_data.mime_type or "").lower()
    is_image = mime.startswith("image/") or (
        not mime and uri.lower().split("?")[0].endswith(_IMAGE_EXTENSIONS)
    )
    if uri.startswith(("http://", "https://")) and is_image:
        return _image(uri, detail)
    dropped.refuse(
        f"{path}.fileData: {_API} reads only http(s) image URLs; send this "
        f"{mime or 'file'} ({uri[:80]}) as inlineData instead"
    )
    return None


def _image(url: str, detail: str | None) -> dict[str, Any]:
    image: dict[str, Any] = {"url": url}
    if detail:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def _tool_content(part: Part, path: str, dropped: Drops) -> str:
    response = part.function_response
    assert response is not None
    if (response.model_extra or {}).get("parts"):
        dropped.refuse(
            f"{path}.functionResponse.parts: multimodal function responses have no "
            f"equivalent in {_API} (tool messages take text only)"
        )
    if response.will_continue is not None or response.scheduling is not None:
        dropped.add("functionResponse.willContinue/scheduling")
    body = response.response or {}
    if set(body) == {"output"} and isinstance(body["output"], str):
        return body["output"]
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


class _Builder:
    def __init__(self, new_id: IdFactory, detail: str | None, dropped: Drops) -> None:
        self.new_id, self.detail, self.dropped = new_id, detail, dropped
        self.messages: list[dict[str, Any]] = []
        self.pending: list[_Call] = []

    def require_answered(self) -> None:
        if self.pending:
            call = self.pending[0]
            raise InvalidRequest(
                f"{call.path}.functionCall: the call to {call.name!r} has no functionResponse "
                f"in the next user turn; {_API} needs an answer to every call"
            )

    def assistant(self, parts: list[tuple[str, Part]]) -> None:
        self.require_answered()
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        used: set[str] = set()
        for path, part in parts:
            call = part.function_call
            if call is not None:
                if not call.name:
                    raise InvalidRequest(f"{path}.functionCall.name: required field is missing")
                sent = call.id if call.id and call.id not in used else self.new_id()
                used.add(sent)
                self.pending.append(_Call(sent, call.id, call.name, path))
                arguments = json.dumps(call.args or {}, ensure_ascii=False, separators=(",", ":"))
                calls.append(
                    {
                        "id": sent,
                        "type": "function",
                        "function": {"name": call.name, "arguments": arguments},
                    }
                )
            elif (code := _code_text(part)) is not None:
                texts.append(code)
            elif part.text:
                texts.append(part.text)
            elif part.function_response is not None:
                raise InvalidRequest(f"{path}: a model turn cannot carry functionResponse")
            else:
                self.dropped.refuse(
                    f"{path}: a model turn cannot carry inlineData/fileData in {_API}"
                )
        if not texts and not calls:
            return  # everything in it was left out (drop_params)
        message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) or None}
        if calls:
            message["tool_calls"] = calls
        self.messages.append(message)

    def answer(self, path: str, part: Part) -> None:
        response = part.function_response
        assert response is not None
        match = next((c for c in self.pending if response.id and response.id == c.given_id), None)
        match = match or next(
            (c for c in self.pending if response.id and response.id == c.sent_id), None
        )
        match = match or next((c for c in self.pending if c.name == response.name), None)
        if match is None:
            raise InvalidRequest(
                f"{path}.functionResponse: no functionCall {response.name!r} of the previous "
                "model turn is waiting for this response"
            )
        self.pending.remove(match)
        content = _tool_content(part, path, self.dropped)
        self.messages.append({"role": "tool", "tool_call_id": match.sent_id, "content": content})

    def user(self, parts: list[tuple[str, Part]]) -> None:
        items: list[dict[str, Any]] = []
        for path, part in parts:
            if part.function_response is not None:
                self.answer(path, part)
            elif part.function_call is not None:
                raise InvalidRequest(f"{path}.functionCall: only a model turn can call functions")
            elif (code := _code_text(part)) is not None:
                items.append({"type": "text", "text": code})
            elif part.inline_data is not None or part.file_data is not None:
                if (media := _media(part, path, self.detail, self.dropped)) is not None:
                    items.append(media)
            elif part.text:
                items.append({"type": "text", "text": part.text})
        if not items:
            return
        self.require_answered()
        if all(item["type"] == "text" for item in items):
            self.messages.append({"role": "user", "content": "\n".join(i["text"] for i in items)})
        else:
            self.messages.append({"role": "user", "content": items})


def system_message(
    request: GenerateContentRequest, dropped: Drops | None = None
) -> dict[str, Any] | None:
    """Every text part of `systemInstruction`, in order, as one system message."""
    dropped = Drops() if dropped is None else dropped
    if request.system_instruction is None:
        return None
    texts: list[str] = []
    for j, part in enumerate(request.system_instruction.parts or []):
        if part.text is not None and not part.thought:
            texts.append(part.text)
        elif any(x is not None for x in (part.inline_data, part.file_data, part.function_call)) or (
            part.function_response is not None
        ):
            dropped.refuse(
                f"systemInstruction.parts[{j}]: {_API} takes text only in the system message"
            )
    text = "\n".join(t for t in texts if t)
    return {"role": "system", "content": text} if text else None


def to_messages(
    request: GenerateContentRequest, *, new_id: IdFactory, detail: str | None, dropped: Drops
) -> list[dict[str, Any]]:
    """The `messages` array for `request`; raises InvalidRequest naming a bad part."""
    builder = _Builder(new_id, detail, dropped)
    system = system_message(request, dropped)
    if system is not None:
        builder.messages.append(system)
    for turn in _turns(request.contents, dropped):
        if turn.role == "assistant":
            builder.assistant(turn.parts)
        else:
            builder.user(turn.parts)
    builder.require_answered()
    if not any(m["role"] != "system" for m in builder.messages):
        raise InvalidRequest("contents: no part carries text or data to send")
    return builder.messages
