"""Pure translation between Gemini generateContent and Anthropic's Messages API. No I/O.

    to_wire(request, profile)          → Prepared(body, context, dropped)  POST /v1/messages
    count_tokens_body(request, profile) → body                 POST /v1/messages/count_tokens
    from_wire(body, context)           → GenerateContentResponse            response.py
    map_error(status, body, headers)   → GenrouteError (Google code and status), errors.py

`context` carries what reading the reply needs to know about the request (thoughts wanted,
the JSON-output tool). A field with no Anthropic equivalent whose loss changes the answer
is refused, or with `profile.drop_params` left out and listed in `Prepared.dropped`.
Every field decision is in docs/translation-anthropic.md; contents are handled in
messages.py, tools and JSON output in tools.py, thinking envelopes in thinking.py, model
families in profile.py, replies in response.py, prompt-cache breakpoints for a cached
content in caching.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from genroute.errors import InvalidRequest
from genroute.providers.anthropic import caching
from genroute.providers.anthropic import profile as families
from genroute.providers.anthropic.errors import PROVIDER, map_error
from genroute.providers.anthropic.messages import (
    IdFactory,
    MessageBuilder,
    new_call_id,
    system_blocks,
)
from genroute.providers.anthropic.profile import ModelProfile
from genroute.providers.anthropic.response import (
    FINISH_REASONS,
    ReplyContext,
    finish_message,
    finish_reason,
    from_wire,
    json_answer,
    parts_from_blocks,
    usage_metadata,
)
from genroute.providers.anthropic.tools import plan_tools
from genroute.providers.drops import Drops
from genroute.wire import (
    CountTokensRequest,
    GenerateContentRequest,
    GenerationConfig,
)

__all__ = [
    "FINISH_REASONS",
    "PROVIDER",
    "Prepared",
    "ReplyContext",
    "count_tokens_body",
    "finish_message",
    "finish_reason",
    "from_wire",
    "json_answer",
    "map_error",
    "parts_from_blocks",
    "to_wire",
    "usage_metadata",
]

log = logging.getLogger("genroute.providers.anthropic")

Block = dict[str, Any]
_COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking", "output_config")
_DROPPED_TOP = ("safety_settings", "labels", "service_tier")
_DROPPED_CONFIG: tuple[str, ...] = ("seed", "presence_penalty", "frequency_penalty")
_DROPPED_CONFIG += ("media_resolution", "speech_config", "image_config")


@dataclass(frozen=True, slots=True)
class Prepared:
    """An Anthropic request body, the context for reading its reply, and the fields that
    `drop_params` left out."""

    body: dict[str, Any]
    context: ReplyContext
    dropped: tuple[str, ...] = ()


# -- request ---------------------------------------------------------------------------


def to_wire(
    request: GenerateContentRequest,
    profile: ModelProfile,
    *,
    stream: bool = False,
    new_id: IdFactory = new_call_id,
) -> Prepared:
    """The Messages API body for a generateContent request."""
    dropped = Drops(profile.drop_params)
    _check_top_level(request, dropped)
    generation = request.generation_config or GenerationConfig()
    max_tokens = generation.max_output_tokens or profile.max_tokens
    messages = MessageBuilder(new_id, dropped).build(request.contents)
    if not messages:
        raise InvalidRequest("contents: no part carries text or data to send")
    body: dict[str, Any] = {"model": profile.model, "max_tokens": max_tokens, "messages": messages}
    if system := system_blocks(request.system_instruction, dropped):
        body["system"] = system
    body.update(_sampling(generation, profile, dropped))
    plan = plan_tools(request, profile.structured_outputs, dropped)
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
    caching.mark(body, request, json_tool=plan.json_tool, drop_params=profile.drop_params)
    context = ReplyContext(include, plan.json_tool, plan.json_wrapped)
    return Prepared(body, context, tuple(dropped))


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


def _check_top_level(request: GenerateContentRequest, dropped: Drops) -> None:
    if request.cached_content:
        dropped.refuse("cachedContent: Gemini cached contents cannot be used with anthropic models")
    for name in _DROPPED_TOP:
        if getattr(request, name) is not None:
            log.debug("%s dropped: no anthropic equivalent", name)
    for name in request.model_extra or {}:
        log.debug("unknown request field %s dropped", name)


def _refuse_unsupported(generation: GenerationConfig, dropped: Drops) -> None:
    """Refuse (or, with drop_params, leave out) what changes the answer and has no
    equivalent; log what can go without changing it."""
    where = "generationConfig"
    if generation.candidate_count is not None and generation.candidate_count > 1:
        dropped.refuse(f"{where}.candidateCount: anthropic models give one candidate")
    if generation.response_logprobs:
        dropped.refuse(f"{where}.responseLogprobs: anthropic models do not return logprobs")
    if generation.logprobs is not None:
        dropped.refuse(f"{where}.logprobs: anthropic models do not return logprobs")
    modalities = {m.upper() for m in generation.response_modalities or []}
    if modalities - {"TEXT"}:
        dropped.refuse(f"{where}.responseModalities: anthropic models answer with TEXT")
    for extra in sorted(generation.model_extra or {}):
        dropped.refuse(f"{where}.{extra}: not supported by anthropic models")
    for name in _DROPPED_CONFIG:
        if getattr(generation, name) is not None:
            log.debug("%s.%s dropped: no anthropic equivalent", where, name)


def _sampling(
    generation: GenerationConfig, profile: ModelProfile, dropped: Drops
) -> dict[str, Any]:
    _refuse_unsupported(generation, dropped)
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
