"""Content and its parts: text, inline and file data, function calls, code execution."""

from __future__ import annotations

from typing import Any

from genroute.wire.base import Repeated, WireModel

__all__ = [
    "Blob",
    "CodeExecutionResult",
    "Content",
    "ExecutableCode",
    "FileData",
    "FunctionCall",
    "FunctionResponse",
    "Part",
]


class Blob(WireModel):
    """Inline bytes, base64-encoded as on the wire."""

    mime_type: str
    data: str


class FileData(WireModel):
    """A reference to a file by URI."""

    mime_type: str | None = None
    file_uri: str


class FunctionCall(WireModel):
    """A call the model asks the client to make."""

    id: str | None = None
    name: str | None = None
    args: dict[str, Any] | None = None


class FunctionResponse(WireModel):
    """The client's answer to a FunctionCall."""

    id: str | None = None
    name: str | None = None
    response: dict[str, Any] | None = None
    will_continue: bool | None = None
    scheduling: str | None = None


class ExecutableCode(WireModel):
    """Code the model wrote for the code-execution tool."""

    language: str | None = None
    code: str | None = None


class CodeExecutionResult(WireModel):
    """The outcome of running ExecutableCode."""

    outcome: str | None = None
    output: str | None = None


class Part(WireModel):
    """One piece of a Content; normally exactly one of the data fields is set."""

    text: str | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    executable_code: ExecutableCode | None = None
    code_execution_result: CodeExecutionResult | None = None
    video_metadata: dict[str, Any] | None = None
    part_metadata: dict[str, Any] | None = None


class Content(WireModel):
    """A turn of the conversation: a role (`user` or `model`) and its parts."""

    role: str | None = None
    parts: Repeated[Part] | None = None
