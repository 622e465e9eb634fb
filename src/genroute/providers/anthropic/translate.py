"""Pure translation between Gemini generateContent and Anthropic's Messages API. No I/O.

    to_wire(request, profile)          → Prepared(body, context)   POST /v1/messages
    count_tokens_body(request, profile) → body                      POST /v1/messages/count_tokens
    from_wire(body, context)           → GenerateContentResponse
    map_error(status, body, headers)   → GenrouteError (Google code and status), errors.py

`context` carries what reading the reply needs to know about the request (thoughts wanted,
the JSON-output tool). Every field decision is in docs/translation-anthropic.md; contents
are handled in messages.py, tools and JSON output in tools.py, thinking envelopes in
thinking.py, model families in profile.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from genroute.errors import InvalidRequest, UpstreamError
from genroute.providers.anthropic import profile as families
from genroute.providers.anthropic.errors import PROVIDER, map_error
from genroute.providers.anthropic.messages import (
    IdFactory,
    MessageBuilder,
    new_call_id,
    system_blocks,
)
from genroute.providers.anthropic.profile import ModelProfile
from genroute.providers.anthropic.thinking import ThoughtCarrier
from genroute.providers.anthropic.tools import WRAP_KEY, plan_tools
from genroute.wire import (
    Candidate,
    Content,
    CountTokensRequest,
    FunctionCall,
    GenerateContentRequest,
    GenerateContentResponse,
    GenerationConfig,
    Part,
    UsageMetadata,
)

log = logging.getLogger("genroute.providers.anthropic")

Block = dict[str, Any]
_COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking", "output_config")
_DROPPED_TOP = ("safety_settings", "labels", "service_tier")
_DROPPED_CONFIG: tuple[str, ...] = ("seed", "presence_penalty", "frequency_penalty")
_DROPPED_CONFIG += ("media_resolution", "speech_config", "image_config")
FINISH_REASONS = {
    "end_turn": "STOP",
    "stop_sequence": "STOP",
    "tool_use": "STOP",
    "max_tokens": "MAX_TOKENS",
    "model_context_window_exceeded": "MAX_TOKENS",
    "refusal": "SAFETY",
    "pause_turn": "OTHER",
}


@dataclass(frozen=True, slots=True)
class ReplyContext:
    """What the reply translation needs to know about the request."""

    include_thoughts: bool = False
    json_tool: str | None = None
    json_wrapped: bool = False


@dataclass(frozen=True, slots=True)
class Prepared:
    """An Anthropic request body and the context for reading its reply."""

    body: dict[str, Any]
    context: ReplyContext


# -- request ---------------------------------------------------------------------------


def to_wire(
    request: GenerateContentRequest,
    profile: ModelProfile,
    *,
    stream: bool = False,
    new_id: IdFactory = new_call_id,
) -> Prepared:
    """The Messages API body for a generateContent request."""
    _check_top_level(request)
    generation = request.generation_config or GenerationConfig()
    max_tokens = generation.max_output_tokens or profile.max_tokens
    messages = MessageBuilder(new_id).build(request.contents)
    body: dict[str, Any] = {"model": profile.model, "max_tokens": max_tokens, "messages": messages}
    if system := system_blocks(request.system_instruction):
        body["system"] = system
    body.update(_sampling(generation, profile))
    plan = plan_tools(request, profile.structured_outputs)
    if plan.tools:
        body["tools"] = plan.tools
    if plan.tool_choice is not None:
        body["tool_choice"] = plan.tool_choice
    output_config: dict[str, Any] = {}
    if plan.output_format is not None:
        output_config["format"] = plan.output_format
    thinking = generation.thinking_config
    include = bool(thinking and thinking.include_thoughts)
    settings = _thinking(generation, profile, blocked=_thinking_blocked(plan.forced, messages))
    if settings is not None:
        config, effort, budget = settings
        body["thinking"] = config
        if effort:
            output_config["effort"] = effort
        if budget is not None and budget >= body["max_tokens"]:
            log.debug("max_tokens raised above the thinking budget (%d)", budget)
            body["max_tokens"] = budget + body["max_tokens"]
        if config["type"] == "disabled":
            include = False
        else:
            _fit_sampling_to_thinking(body)
    else:
        include = False
    if body.get("thinking", {}).get("type") not in ("enabled", "adaptive"):
        _drop_final_thinking(messages)
    if output_config:
        body["output_config"] = output_config
    if stream:
        body["stream"] = True
    context = ReplyContext(include, plan.json_tool, plan.json_wrapped)
    return Prepared(body, context)


def count_tokens_body(
    request: CountTokensRequest, profile: ModelProfile, *, new_id: IdFactory = new_call_id
) -> dict[str, Any]:
    """The count_tokens body: messages, and system, tools and thinking when given."""
    inner = request.generate_content_request
    if inner is None:
        if not request.contents:
            raise InvalidRequest("contents: required, and must hold at least one Content")
        inner = GenerateContentRequest(
            contents=request.contents,
            system_instruction=request.system_instruction,
            tools=request.tools,
            generation_config=request.generation_config,
        )
    body = to_wire(inner, profile, new_id=new_id).body
    return {key: body[key] for key in _COUNT_FIELDS if key in body}


def _check_top_level(request: GenerateContentRequest) -> None:
    if request.cached_content:
        raise InvalidRequest(
            "cachedContent: Gemini cached contents cannot be used with anthropic models"
        )
    for name in _DROPPED_TOP:
        if getattr(request, name) is not None:
            log.debug("%s dropped: no anthropic equivalent", name)
    for name in request.model_extra or {}:
        log.debug("unknown request field %s dropped", name)


def _sampling(generation: GenerationConfig, profile: ModelProfile) -> dict[str, Any]:
    where = "generationConfig"
    if generation.candidate_count is not None and generation.candidate_count > 1:
        raise InvalidRequest(f"{where}.candidateCount: anthropic models give one candidate")
    if generation.response_logprobs or generation.logprobs is not None:
        field = "responseLogprobs" if generation.response_logprobs else "logprobs"
        raise InvalidRequest(f"{where}.{field}: anthropic models do not return logprobs")
    modalities = {m.upper() for m in generation.response_modalities or []}
    if modalities - {"TEXT"}:
        raise InvalidRequest(f"{where}.responseModalities: anthropic models answer with TEXT")
    if extra := sorted(generation.model_extra or {}):
        raise InvalidRequest(f"{where}.{extra[0]}: not supported by anthropic models")
    for name in _DROPPED_CONFIG:
        if getattr(generation, name) is not None:
            log.debug("%s.%s dropped: no anthropic equivalent", where, name)
    out: dict[str, Any] = {}
    if generation.stop_sequences:
        out["stop_sequences"] = list(generation.stop_sequences)
    sampling = (generation.temperature, generation.top_p, generation.top_k)
    if not profile.sampling:
        if sampling != (None, None, None):
            log.debug("temperature/topP/topK dropped: %s rejects them", profile.model)
        return out
    if generation.temperature is not None:
        if generation.temperature > 1:
            log.debug("temperature %s clamped to anthropic's maximum 1", generation.temperature)
        out["temperature"] = min(generation.temperature, 1.0)
    if generation.top_p is not None:
        if "temperature" in out:
            log.debug("topP dropped: anthropic models take temperature or top_p, not both")
        else:
            out["top_p"] = generation.top_p
    if generation.top_k is not None:
        out["top_k"] = generation.top_k
    return out


def _thinking_blocked(forced: bool, messages: list[dict[str, Any]]) -> str | None:
    """Why thinking cannot be on for this request, if it cannot."""
    if forced:
        return "tool_choice forces a tool call"
    if len(messages) >= 2 and messages[-1]["role"] == "user":
        results = any(b["type"] == "tool_result" for b in messages[-1]["content"])
        first = messages[-2]["content"][0]["type"] if messages[-2]["content"] else None
        if results and first not in ("thinking", "redacted_thinking"):
            return "the tool call being answered was made without thinking blocks"
    return None


def _drop_final_thinking(messages: list[dict[str, Any]]) -> None:
    """With thinking off, Anthropic rejects thinking blocks in a final assistant message."""
    if messages and messages[-1]["role"] == "assistant":
        content = messages[-1]["content"]
        kept = [b for b in content if b["type"] not in ("thinking", "redacted_thinking")]
        if len(kept) != len(content):
            log.debug("thinking blocks of the final model turn dropped: thinking is off")
            messages[-1]["content"] = kept


def _thinking(
    generation: GenerationConfig, profile: ModelProfile, *, blocked: str | None
) -> tuple[dict[str, Any], str | None, int | None] | None:
    """(thinking, effort, budget) for the body, or None to leave thinking unset."""
    config = generation.thinking_config
    if config is None:
        return None
    budget, level = config.thinking_budget, config.thinking_level
    if budget is not None and level is not None:
        raise InvalidRequest(
            "generationConfig.thinkingConfig: give thinkingBudget or thinkingLevel, not both"
        )
    if profile.thinking == "none":
        log.debug("thinkingConfig dropped: %s does not think", profile.model)
        return None
    if budget == 0:
        return {"type": "disabled"}, None, None
    if budget is None and level is None:
        if not config.include_thoughts:
            return None
        budget = -1
    if blocked:
        log.debug("thinking not enabled: %s", blocked)
        return None
    if level is not None and level.upper() not in families.LEVEL_BUDGETS:
        raise InvalidRequest(f"generationConfig.thinkingConfig.thinkingLevel: {level!r} unknown")
    if profile.thinking == "adaptive":
        adaptive: dict[str, Any] = {"type": "adaptive"}
        if config.include_thoughts:
            adaptive["display"] = "summarized"
        if level is not None:
            return adaptive, families.LEVEL_EFFORTS[level.upper()], None
        return adaptive, families.effort_for_budget(budget if budget is not None else -1), None
    if level is not None:
        tokens = families.LEVEL_BUDGETS[level.upper()]
    elif budget is None or budget < 0:
        tokens = families.DEFAULT_THINKING_BUDGET
    else:
        tokens = max(families.MIN_THINKING_BUDGET, budget)
    return {"type": "enabled", "budget_tokens": tokens}, None, tokens


def _fit_sampling_to_thinking(body: dict[str, Any]) -> None:
    """Anthropic rejects temperature ≠ 1, top_k, and top_p < 0.95 with thinking on."""
    if body.get("temperature", 1) != 1:
        log.debug("temperature dropped: anthropic thinking needs the default temperature")
        body.pop("temperature")
    if body.pop("top_k", None) is not None:
        log.debug("topK dropped: not allowed with anthropic thinking")
    if body.get("top_p", 1) < 0.95:
        log.debug("topP dropped: anthropic thinking needs top_p of at least 0.95")
        body.pop("top_p")


# -- response --------------------------------------------------------------------------


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = None
    type: str | None = None
    model: str | None = None
    content: list[dict[str, Any]] = []
    stop_reason: str | None = None
    stop_details: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None


def from_wire(body: bytes, context: ReplyContext) -> GenerateContentResponse:
    """A Messages API reply → a generateContent response."""
    try:
        message = _Message.model_validate_json(body)
    except ValidationError:
        raise UpstreamError(
            "anthropic upstream sent a malformed message", code=502, provider=PROVIDER
        ) from None
    if message.type == "error":
        raise map_error(500, body, {})
    parts = parts_from_blocks(message.content, context)
    candidate = Candidate(
        content=Content(role="model", parts=parts) if parts else None,
        finish_reason=finish_reason(message.stop_reason),
        finish_message=finish_message(message.stop_reason, message.stop_details),
        index=0,
    )
    return GenerateContentResponse(
        candidates=[candidate],
        usage_metadata=usage_metadata(message.usage or {}),
        model_version=message.model,
        response_id=message.id,
    )


def parts_from_blocks(blocks: list[Block], context: ReplyContext) -> list[Part]:
    """Content blocks → parts; thinking rides on thoughtSignature (thinking.py)."""
    carrier = ThoughtCarrier()
    parts: list[Part] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "thinking":
            text = str(block.get("thinking") or "")
            signature = str(block.get("signature") or "")
            carrier.add({"type": "thinking", "thinking": text, "signature": signature})
            if context.include_thoughts and text:
                parts.append(Part(text=text, thought=True))
        elif kind == "redacted_thinking":
            carrier.add({"type": "redacted_thinking", "data": str(block.get("data") or "")})
        elif kind == "text" and block.get("text"):
            parts.append(Part(text=str(block["text"]), thought_signature=carrier.for_text()))
        elif kind == "tool_use" and block.get("name") == context.json_tool:
            text = json_answer(block.get("input"), context)
            parts.append(Part(text=text, thought_signature=carrier.for_text()))
        elif kind == "tool_use":
            call = FunctionCall(id=block.get("id"), name=block.get("name"), args=block.get("input"))
            parts.append(Part(function_call=call, thought_signature=carrier.for_call()))
        elif kind != "text":
            log.debug("anthropic content block %r has no Gemini equivalent; dropped", kind)
    leftover = carrier.leftover()
    if leftover and context.include_thoughts:
        if parts and parts[-1].thought and not parts[-1].thought_signature:
            parts[-1].thought_signature = leftover
        else:
            parts.append(Part(text="", thought=True, thought_signature=leftover))
    return parts


def json_answer(tool_input: Any, context: ReplyContext) -> str:
    """The JSON text of a json_output tool call (unwrapped when the schema was wrapped)."""
    value = tool_input
    if context.json_wrapped and isinstance(tool_input, dict):
        value = tool_input.get(WRAP_KEY)
    return orjson.dumps(value).decode()


def finish_reason(stop_reason: str | None) -> str:
    """Anthropic stop_reason → Gemini finishReason."""
    return FINISH_REASONS.get(stop_reason or "", "OTHER")


def finish_message(stop_reason: str | None, details: Mapping[str, Any] | None) -> str | None:
    """A finishMessage for the stop reasons that need explaining."""
    if stop_reason == "refusal":
        details = details or {}
        return str(details.get("explanation") or details.get("category") or "model refused")
    if stop_reason == "pause_turn":
        return "the anthropic model paused its turn (pause_turn)"
    return None


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) else 0


def usage_metadata(usage: Mapping[str, Any]) -> UsageMetadata:
    """Anthropic usage → usageMetadata. promptTokenCount counts cached and cache-written
    input too; thinking tokens are split out only when Anthropic reports them."""
    cache_read = _count(usage, "cache_read_input_tokens")
    prompt = _count(usage, "input_tokens") + cache_read
    prompt += _count(usage, "cache_creation_input_tokens")
    output = _count(usage, "output_tokens")
    details = usage.get("output_tokens_details")
    thoughts = _count(details, "thinking_tokens") if isinstance(details, Mapping) else 0
    thoughts = min(thoughts, output)
    return UsageMetadata(
        prompt_token_count=prompt,
        candidates_token_count=output - thoughts,
        thoughts_token_count=thoughts or None,
        cached_content_token_count=cache_read or None,
        total_token_count=prompt + output,
    )
