"""The generateContent and countTokens requests, with generation and tool settings.

A generateContent request read from a client's JSON can keep that JSON (`keep_body`), to be
sent to a Gemini upstream as it is instead of serialised again (`sent_body`): a third of
the JSON work of a passthrough call, and more for a long conversation (a 20 kB request
serialises in ~30 µs, a 100 kB one in ~140 µs). The request, once validated, means what
the JSON says; Google's parser takes what genroute's does (lowerCamel or snake_case
names, a single object for a repeated field, `null` for an unset field). Anything that
changes the request drops the JSON: setting one of its fields, or a copy
(`model_copy`, `copy.copy`), which is how layers rewrite a request. Requests are not
edited in place below their top level (each layer that rewrites one copies it).
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import field_validator

from genroute.wire.base import Repeated, WireModel
from genroute.wire.content import Content
from genroute.wire.response import ModalityTokenCount

__all__ = [
    "CountTokensRequest",
    "CountTokensResponse",
    "FunctionCallingConfig",
    "FunctionDeclaration",
    "GenerateContentRequest",
    "GenerationConfig",
    "SafetySetting",
    "ThinkingConfig",
    "Tool",
    "ToolConfig",
]


class FunctionDeclaration(WireModel):
    """A function the model may call. `parameters` is Google's OpenAPI subset;
    `parametersJsonSchema` is plain JSON Schema."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    parameters_json_schema: Any = None
    response: dict[str, Any] | None = None
    response_json_schema: Any = None
    behavior: str | None = None


class Tool(WireModel):
    """Function declarations and built-in tools (search, code execution, URL context...)."""

    function_declarations: Repeated[FunctionDeclaration] | None = None
    google_search: dict[str, Any] | None = None
    google_search_retrieval: dict[str, Any] | None = None
    code_execution: dict[str, Any] | None = None
    url_context: dict[str, Any] | None = None


class FunctionCallingConfig(WireModel):
    """How the model may call functions: AUTO, ANY, NONE or VALIDATED."""

    mode: str | None = None
    allowed_function_names: Repeated[str] | None = None


class ToolConfig(WireModel):
    """Settings shared by every tool in the request."""

    function_calling_config: FunctionCallingConfig | None = None
    retrieval_config: dict[str, Any] | None = None


class SafetySetting(WireModel):
    """A blocking threshold for one harm category."""

    category: str | None = None
    threshold: str | None = None
    method: str | None = None


class ThinkingConfig(WireModel):
    """Reasoning controls: a token budget (0 off, -1 dynamic) or a level."""

    include_thoughts: bool | None = None
    thinking_budget: int | None = None
    thinking_level: str | None = None


class GenerationConfig(WireModel):
    """Sampling, length, output format and thinking settings."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    candidate_count: int | None = None
    max_output_tokens: int | None = None
    stop_sequences: Repeated[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_logprobs: bool | None = None
    logprobs: int | None = None
    response_mime_type: str | None = None
    response_schema: dict[str, Any] | None = None
    response_json_schema: Any = None
    response_modalities: Repeated[str] | None = None
    media_resolution: str | None = None
    thinking_config: ThinkingConfig | None = None
    speech_config: dict[str, Any] | None = None
    image_config: dict[str, Any] | None = None


class GenerateContentRequest(WireModel):
    """The body of `models/{model}:generateContent` and `:streamGenerateContent`."""

    model: str | None = None
    contents: Repeated[Content]
    system_instruction: Content | None = None
    tools: Repeated[Tool] | None = None
    tool_config: ToolConfig | None = None
    safety_settings: Repeated[SafetySetting] | None = None
    generation_config: GenerationConfig | None = None
    cached_content: str | None = None
    labels: dict[str, str] | None = None
    service_tier: str | None = None
    # Not on the wire: how many leading `contents` (and the system instruction, tools and
    # tool config) came from a cached content genroute put in front (genroute.resources);
    # a translator may mark that prefix for the provider's prompt cache.
    _cached_prefix: ClassVar[int | None] = None  # set with set_private
    _body: ClassVar[bytes | None] = None  # the client's JSON of it (see the module docstring)

    def keep_body(self, body: bytes, data: dict[str, Any]) -> None:
        """Keep `body`, the JSON this request was validated from (`data`, as parsed), to
        be sent upstream as it is; not when it names the model (`model` is the client's,
        never sent on)."""
        if "model" not in data:
            object.__setattr__(self, "_body", body)

    def sent_body(self) -> bytes | None:
        """The client's JSON of this request, while nothing has changed the request."""
        return self.__dict__.get("_body")

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__.pop("_body", None)
        super().__setattr__(name, value)

    def __copy__(self) -> Self:  # model_copy copies through this or __deepcopy__
        copied = super().__copy__()
        copied.__dict__.pop("_body", None)
        return copied

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        copied = super().__deepcopy__(memo)
        copied.__dict__.pop("_body", None)
        return copied

    @field_validator("contents")
    @classmethod
    def _contents_not_empty(cls, value: list[Content]) -> list[Content]:
        if not value:
            raise ValueError("contents must hold at least one Content")
        return value


class CountTokensRequest(WireModel):
    """The body of `:countTokens`: `contents`, or a whole `generateContentRequest`."""

    contents: Repeated[Content] | None = None
    generate_content_request: GenerateContentRequest | None = None
    system_instruction: Content | None = None
    tools: Repeated[Tool] | None = None
    generation_config: GenerationConfig | None = None

    def all_contents(self) -> list[Content]:
        """Every Content to be counted, wherever the request put it."""
        if self.generate_content_request is not None:
            inner = self.generate_content_request
            extra = [inner.system_instruction] if inner.system_instruction else []
            return [*extra, *inner.contents]
        extra = [self.system_instruction] if self.system_instruction else []
        return [*extra, *(self.contents or [])]


class CountTokensResponse(WireModel):
    """The reply of `:countTokens`."""

    total_tokens: int
    cached_content_token_count: int | None = None
    prompt_tokens_details: list[ModalityTokenCount] | None = None
    cache_tokens_details: list[ModalityTokenCount] | None = None
