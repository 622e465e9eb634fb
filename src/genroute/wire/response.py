"""The generateContent response, which is also the shape of each stream chunk.

A response of a Gemini upstream can be *relayed*: kept as the upstream's own bytes, with
only the facts the layers read on every call (`ResponseFacts`: usage, model version,
finish reason, text size) taken out of it, and parsed into the model the first time
anything else is read, written, copied, compared or serialised (`parse_relayed`). Until then `wire_bytes`
is those bytes; after, the model is the truth, so an edit is always sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from pydantic import ValidationError

from genroute.errors import UpstreamMalformed
from genroute.wire.base import WireModel, dump_json, format_validation_error
from genroute.wire.content import Content

__all__ = [
    "Candidate",
    "CitationMetadata",
    "CitationSource",
    "GenerateContentResponse",
    "ModalityTokenCount",
    "PromptFeedback",
    "ResponseFacts",
    "SafetyRating",
    "UsageMetadata",
    "text_answer",
    "text_chunk",
    "wire_bytes",
]


class SafetyRating(WireModel):
    """How likely a candidate or prompt falls in a harm category."""

    category: str | None = None
    probability: str | None = None
    blocked: bool | None = None


class CitationSource(WireModel):
    """A span of the answer attributed to a source."""

    start_index: int | None = None
    end_index: int | None = None
    uri: str | None = None
    license: str | None = None


class CitationMetadata(WireModel):
    """The sources cited by a candidate (`citationSources` on the wire)."""

    citation_sources: list[CitationSource] | None = None


class Candidate(WireModel):
    """One generated answer."""

    content: Content | None = None
    finish_reason: str | None = None
    index: int | None = None
    safety_ratings: list[SafetyRating] | None = None
    citation_metadata: CitationMetadata | None = None
    avg_logprobs: float | None = None
    logprobs_result: dict[str, Any] | None = None
    grounding_metadata: dict[str, Any] | None = None
    url_context_metadata: dict[str, Any] | None = None
    token_count: int | None = None
    finish_message: str | None = None


class ModalityTokenCount(WireModel):
    """A token count for one modality (TEXT, IMAGE, AUDIO, ...)."""

    modality: str | None = None
    token_count: int | None = None


class UsageMetadata(WireModel):
    """Token accounting. `totalTokenCount` includes `thoughtsTokenCount`."""

    prompt_token_count: int | None = None
    candidates_token_count: int | None = None
    total_token_count: int | None = None
    thoughts_token_count: int | None = None
    cached_content_token_count: int | None = None
    tool_use_prompt_token_count: int | None = None
    prompt_tokens_details: list[ModalityTokenCount] | None = None
    candidates_tokens_details: list[ModalityTokenCount] | None = None
    cache_tokens_details: list[ModalityTokenCount] | None = None
    tool_use_prompt_tokens_details: list[ModalityTokenCount] | None = None
    traffic_type: str | None = None
    # Not on the wire (Gemini has no field for it): prompt tokens the provider wrote to its
    # prompt cache (Anthropic's cache_creation_input_tokens, Bedrock's cacheWriteInputTokens),
    # part of promptTokenCount and priced at the cache-write rate.
    _cache_write_tokens: ClassVar[int] = 0  # set with set_private


class PromptFeedback(WireModel):
    """Set when the prompt itself was blocked; then there are no candidates."""

    block_reason: str | None = None
    block_reason_message: str | None = None
    safety_ratings: list[SafetyRating] | None = None


class GenerateContentResponse(WireModel):
    """A whole response, or one stream chunk carrying only the new parts."""

    candidates: list[Candidate] | None = None
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    create_time: str | None = None
    model_status: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """The non-thought text of the first candidate, as the SDKs compute `.text`."""
        if not self.candidates or self.candidates[0].content is None:
            return ""
        parts = self.candidates[0].content.parts or []
        return "".join(p.text for p in parts if p.text and not p.thought)

    _raw: ClassVar[bytes | None] = None  # a relayed response's bytes, until it is parsed
    _facts: ClassVar[ResponseFacts | None] = None  # what they say, read once
    _upstream: ClassVar[str] = ""  # who sent them (for a malformed-reply error)

    @classmethod
    def relayed(cls, raw: bytes, upstream: str, *, chunk: bool = False) -> GenerateContentResponse:
        """The response `raw` holds, parsed only when used beyond its facts. A reply that
        is not JSON, or whose facts are not the API's shape, raises ValueError. A stream
        `chunk`'s usage is built only when read (ResponseFacts.read)."""
        response = cls._holding(raw, ResponseFacts.read(raw, chunk=chunk))
        if upstream:
            response.__dict__["_upstream"] = upstream
        return response

    @classmethod
    def _holding(cls, raw: bytes, facts: ResponseFacts) -> GenerateContentResponse:
        """A response that holds `raw` and its `facts`, parsed only when used beyond them."""
        response = cls.__new__(cls)
        object.__setattr__(response, "__dict__", {"_raw": raw, "_facts": facts})
        return response

    def facts(self) -> ResponseFacts:
        """Usage, model version, finish reason and text size, without parsing the rest."""
        found = self.__dict__.get("_facts")
        return found if found is not None else ResponseFacts.of(self)

    def parse_relayed(self) -> None:
        """Parse a relayed response into the model (nothing for one that is not)."""
        state = self.__dict__
        raw = state.get("_raw")
        if raw is None:
            return
        try:
            parsed = type(self).model_validate_json(raw)
        except ValidationError as exc:
            upstream = state.get("_upstream") or "the"
            raise UpstreamMalformed(
                f"{upstream} upstream sent a malformed response: {format_validation_error(exc)}",
                provider=state.get("_upstream"),
            ) from None
        facts = state.get("_facts")
        for key in ("_raw", "_facts", "_upstream"):
            state.pop(key, None)
        state.update(parsed.__dict__)
        if facts is not None and facts._usage is not None and parsed.usage_metadata is not None:
            # the usage the facts hold, as it was built (and already metered): with what
            # its JSON does not carry (a translator's cache writes, `_cache_write_tokens`)
            state["usage_metadata"] = facts._usage
        object.__setattr__(self, "__pydantic_extra__", parsed.__pydantic_extra__)
        object.__setattr__(self, "__pydantic_fields_set__", parsed.__pydantic_fields_set__)
        object.__setattr__(self, "__pydantic_private__", parsed.__pydantic_private__)

    if not TYPE_CHECKING:  # not for mypy: it would take every attribute name as valid
        # A relayed response has no fields in __dict__ and pydantic's slots unset, so any
        # read of them (pydantic's own, from Python or its Rust core, included) lands
        # here; the rest of BaseModel reads __dict__ directly and parses first.

        def __getattr__(self, name: str) -> Any:
            if "_raw" in self.__dict__:
                self.parse_relayed()
                return getattr(self, name)
            return super().__getattr__(name)

        def __setattr__(self, name: str, value: Any) -> None:
            self.parse_relayed()
            super().__setattr__(name, value)

        def __delattr__(self, name: str) -> None:
            self.parse_relayed()
            super().__delattr__(name)

        def __eq__(self, other: object) -> bool:
            self.parse_relayed()
            if isinstance(other, GenerateContentResponse):
                other.parse_relayed()
            return super().__eq__(other)

        def __iter__(self) -> Any:
            self.parse_relayed()
            return super().__iter__()

        def __repr_args__(self) -> Any:
            self.parse_relayed()
            return super().__repr_args__()

        def __copy__(self) -> Any:
            self.parse_relayed()
            return super().__copy__()

        def __deepcopy__(self, memo: Any = None) -> Any:
            self.parse_relayed()
            return super().__deepcopy__(memo)

        def __getstate__(self) -> Any:
            self.parse_relayed()
            return super().__getstate__()

        def model_copy(self, *args: Any, **kwargs: Any) -> Any:
            self.parse_relayed()
            return super().model_copy(*args, **kwargs)

        def model_dump(self, *args: Any, **kwargs: Any) -> Any:
            self.parse_relayed()
            return super().model_dump(*args, **kwargs)

        def model_dump_json(self, *args: Any, **kwargs: Any) -> Any:
            self.parse_relayed()
            return super().model_dump_json(*args, **kwargs)


class ResponseFacts:
    """What the layers read of every response or chunk: its usage, model version, last
    finish reason and how many characters of text it holds.

    Read from a relayed stream chunk's JSON, the usage is checked at once but built into a
    `UsageMetadata` only when `usage` is first read: every chunk carries one, and only the
    last is priced (building it is most of the cost of reading a chunk's facts).
    """

    __slots__ = ("_usage", "_usage_data", "finish_reason", "model_version", "text_chars")

    def __init__(
        self,
        usage: UsageMetadata | None = None,
        model_version: str | None = None,
        finish_reason: str | None = None,
        text_chars: int = 0,
    ) -> None:
        self._usage = usage
        self._usage_data: dict[str, Any] | None = None  # checked JSON, built on first read
        self.model_version = model_version
        self.finish_reason = finish_reason
        self.text_chars = text_chars

    @property
    def usage(self) -> UsageMetadata | None:
        """The usage metadata, if the response has any."""
        if self._usage is None and self._usage_data is not None:
            self._usage = UsageMetadata.model_validate(self._usage_data)
            self._usage_data = None
        return self._usage

    @property
    def has_usage(self) -> bool:
        """Whether the response carries usage metadata (without building it)."""
        return self._usage is not None or self._usage_data is not None

    @property
    def total_tokens(self) -> int:
        """`totalTokenCount` of the usage (0 without one)."""
        data = self._usage_data
        if data is not None:
            return int(data.get("totalTokenCount") or 0)
        usage = self._usage
        return int(usage.total_token_count or 0) if usage is not None else 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResponseFacts):
            return NotImplemented
        return (self.usage, self.model_version, self.finish_reason, self.text_chars) == (
            other.usage, other.model_version, other.finish_reason, other.text_chars
        )  # fmt: skip

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        return (
            f"ResponseFacts(usage={self.usage!r}, model_version={self.model_version!r}, "
            f"finish_reason={self.finish_reason!r}, text_chars={self.text_chars!r})"
        )

    @classmethod
    def of(cls, response: GenerateContentResponse) -> ResponseFacts:
        """The facts of a parsed response."""
        facts = cls(response.usage_metadata, response.model_version)
        for candidate in response.candidates or ():
            if candidate.finish_reason:
                facts.finish_reason = candidate.finish_reason
            content = candidate.content
            if content is not None and content.parts:
                facts.text_chars += sum(len(p.text) for p in content.parts if p.text)
        return facts

    @classmethod
    def read(cls, raw: bytes, *, chunk: bool = False) -> ResponseFacts:
        """The facts of a response's JSON, each checked as the model would check it
        (ValueError if one is not its shape); the rest is not looked at. A stream
        `chunk`'s usage of the plain shape is built only when read (a whole response's is
        always used: it is built at once)."""
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("the response is not a JSON object")
        usage = _field(data, "usageMetadata", "usage_metadata")
        version = _field(data, "modelVersion", "model_version")
        if version is not None and not isinstance(version, str):
            raise ValueError("modelVersion: Input should be a valid string")
        facts = cls(None, version or None)
        if usage is not None:
            if chunk and _plain_usage(usage):  # the model takes it as it is: built when read
                facts._usage_data = usage
            else:  # anything else is checked (and built) by the model now
                facts._usage = UsageMetadata.model_validate(usage)
        candidates = data.get("candidates")
        if candidates is None:
            return facts
        if not isinstance(candidates, list):
            raise ValueError("candidates: Input should be a valid list")
        for i, candidate in enumerate(candidates):
            if not isinstance(candidate, dict):
                raise ValueError(f"candidates[{i}]: Input should be an object")
            reason = _field(candidate, "finishReason", "finish_reason")
            if reason is not None and not isinstance(reason, str):
                raise ValueError(f"candidates[{i}].finishReason: Input should be a valid string")
            if reason:
                facts.finish_reason = reason
            facts.text_chars += _text_chars(candidate.get("content"), i)
        return facts


# The usage fields as Gemini sends them: whole numbers, one string, and lists of
# {modality, tokenCount}. A usage object of only these, with values of exactly these
# types, is one UsageMetadata.model_validate accepts as it is (so it can wait until read).
_USAGE_COUNTS = frozenset(
    {"promptTokenCount", "candidatesTokenCount", "totalTokenCount", "thoughtsTokenCount",
     "cachedContentTokenCount", "toolUsePromptTokenCount"}
)  # fmt: skip
_USAGE_DETAILS = frozenset(
    {"promptTokensDetails", "candidatesTokensDetails", "cacheTokensDetails",
     "toolUsePromptTokensDetails"}
)  # fmt: skip


def _plain_usage(usage: Any) -> bool:
    if type(usage) is not dict:
        return False
    for key, value in usage.items():
        if key in _USAGE_COUNTS:
            if type(value) is not int and value is not None:
                return False
        elif key in _USAGE_DETAILS:
            if value is None:
                continue
            if type(value) is not list:
                return False
            for item in value:
                if type(item) is not dict:
                    return False
                for k, v in item.items():
                    if not (
                        (k == "modality" and (type(v) is str or v is None))
                        or (k == "tokenCount" and (type(v) is int or v is None))
                    ):
                        return False
        elif key == "trafficType":
            if type(value) is not str and value is not None:
                return False
        else:
            return False
    return True


def _field(data: dict[str, Any], camel: str, snake: str) -> Any:
    value = data.get(camel)
    return data.get(snake) if value is None else value


def _text_chars(content: Any, i: int) -> int:
    if content is None:
        return 0
    if not isinstance(content, dict):
        raise ValueError(f"candidates[{i}].content: Input should be an object")
    parts = content.get("parts")
    if parts is None:
        return 0
    if isinstance(parts, dict):  # one part for a list of one, as the model reads it
        parts = [parts]
    if not isinstance(parts, list):
        raise ValueError(f"candidates[{i}].content.parts: Input should be a valid list")
    chars = 0
    for part in parts:
        if not isinstance(part, dict):
            raise ValueError(f"candidates[{i}].content.parts: Input should be objects")
        text = part.get("text")
        if text is not None and not isinstance(text, str):
            raise ValueError(f"candidates[{i}].content.parts.text: Input should be a string")
        if text:
            chars += len(text)
    return chars


def wire_bytes(response: GenerateContentResponse, *, one_line: bool = False) -> bytes:
    """The JSON to send on: a relayed response's own bytes while nothing has read into it
    (on `one_line`, its line breaks, which JSON allows only between tokens, as spaces),
    else its serialisation."""
    raw: bytes | None = response.__dict__.get("_raw")
    if raw is None:
        return dump_json(response)
    if one_line and (b"\n" in raw or b"\r" in raw):
        return raw.replace(b"\r", b" ").replace(b"\n", b" ")
    return raw


def text_chunk(
    text: str,
    *,
    index: int = 0,
    thought: bool = False,
    thought_signature: str | None = None,
    model_version: str | None = None,
    response_id: str | None = None,
) -> GenerateContentResponse:
    """A translated stream chunk of one text part from the model (most of every translated
    stream), written as its JSON at once, with its facts: what the relay sends and the
    layers read, without building five models per event. A layer that reads into it
    parses it (as a relayed response). Its bytes are those `dump_json` writes for the
    same chunk built as models (`Content(role="model", parts=[Part(text=...)])`)."""
    part: dict[str, Any] = {"text": text}
    if thought:
        part["thought"] = True
    if thought_signature is not None:
        part["thoughtSignature"] = thought_signature
    candidate = {"content": {"role": "model", "parts": [part]}, "index": index}
    facts = ResponseFacts(None, model_version, None, len(text))
    return _written(candidate, None, model_version, response_id, facts)


def text_answer(
    text: str,
    *,
    finish_reason: str,
    finish_message: str | None = None,
    usage: UsageMetadata | None = None,
    model_version: str | None = None,
    response_id: str | None = None,
) -> GenerateContentResponse:
    """A translated whole answer of one candidate (index 0) with one text part (most
    translated generateContent answers), written as its JSON at once, with its facts, as
    `text_chunk` writes a stream's text events. Its bytes are those `dump_json` writes for
    the same answer built as models; a layer that reads into it parses it."""
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": [{"text": text}]},
        "finishReason": finish_reason,
        "index": 0,
    }
    if finish_message is not None:
        candidate["finishMessage"] = finish_message
    facts = ResponseFacts(usage, model_version, finish_reason, len(text))
    return _written(candidate, usage, model_version, response_id, facts)


def _written(
    candidate: dict[str, Any],
    usage: UsageMetadata | None,
    model_version: str | None,
    response_id: str | None,
    facts: ResponseFacts,
) -> GenerateContentResponse:
    """A response of one candidate's JSON, its fields in the model's order, held with its
    facts (`text_chunk`, `text_answer`)."""
    data: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        usage_json = usage.__pydantic_serializer__.to_json(usage, by_alias=True, exclude_none=True)
        data["usageMetadata"] = orjson.Fragment(usage_json)
    if model_version is not None:
        data["modelVersion"] = model_version
    if response_id is not None:
        data["responseId"] = response_id
    return GenerateContentResponse._holding(orjson.dumps(data), facts)
