"""Pure translation between Gemini generateContent and Bedrock's Converse API. No I/O.

    to_wire(request, profile)          → Prepared(body, context, dropped)
                                         POST /model/{id}/converse (or converse-stream)
    count_tokens_body(request, profile) → body          POST /model/{id}/count-tokens
    from_wire(body, context)           → GenerateContentResponse            response.py
    StreamDecoder(context)             → chunks from ConverseStream events  stream.py

A field with no Converse equivalent whose loss changes the answer is refused, or with
`profile.drop_params` left out and listed in `Prepared.dropped`. Every field decision is in
docs/provider-bedrock.md; contents are messages.py, tools and JSON output tools.py,
thinking settings and signatures thinking.py, model facts profile.py, prompt-cache
checkpoints for a cached content caching.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from genroute.errors import InvalidRequest
from genroute.providers.anthropic.messages import IdFactory, new_call_id
from genroute.providers.bedrock import caching, thinking
from genroute.providers.bedrock.messages import MessageBuilder, kind, system_blocks
from genroute.providers.bedrock.profile import BedrockProfile
from genroute.providers.bedrock.response import ReplyContext, from_wire
from genroute.providers.bedrock.tools import ToolPlan, plan_tools, tool_spec
from genroute.providers.drops import Drops
from genroute.wire import CountTokensRequest, GenerateContentRequest, GenerationConfig

__all__ = ["Prepared", "ReplyContext", "count_tokens_body", "from_wire", "to_wire"]

log = logging.getLogger("genroute.providers.bedrock")

Block = dict[str, Any]
_COUNT_FIELDS = ("messages", "system", "toolConfig", "additionalModelRequestFields")
_DROPPED_TOP = ("safety_settings", "labels", "service_tier")
_DROPPED_CONFIG: tuple[str, ...] = ("seed", "presence_penalty", "frequency_penalty")
_DROPPED_CONFIG += ("media_resolution", "speech_config", "image_config")
_REASONING = "reasoningContent"
_HISTORY_TOOL = "A function this conversation called earlier (declared by genroute)."


@dataclass(frozen=True, slots=True)
class Prepared:
    """A Converse request body, the context for reading its reply, and the fields that
    `drop_params` left out."""

    body: dict[str, Any]
    context: ReplyContext
    dropped: tuple[str, ...] = ()


def to_wire(
    request: GenerateContentRequest, profile: BedrockProfile, *, new_id: IdFactory = new_call_id
) -> Prepared:
    """The Converse body (the same for converse and converse-stream) of a request."""
    dropped = Drops(profile.drop_params)
    _check_top_level(request, dropped)
    generation = request.generation_config or GenerationConfig()
    _refuse_unsupported(generation, dropped)
    builder = MessageBuilder(new_id, dropped, claude=profile.claude)
    messages = builder.build(request.contents)
    if not messages:
        raise InvalidRequest("contents: no part carries text or data to send")
    body: dict[str, Any] = {"messages": messages}
    if system := system_blocks(request.system_instruction, dropped):
        body["system"] = system
    inference, additional = _sampling(generation, profile)
    plan = plan_tools(request, profile.structured_outputs, dropped)
    if tool_config := _tool_config(plan, messages, builder.called, dropped):
        body["toolConfig"] = tool_config
    include = bool(generation.thinking_config and generation.thinking_config.include_thoughts)
    blocked = _thinking_blocked(plan, messages)
    found, why = thinking.settings(generation, profile, blocked=blocked)
    if why:
        log.debug("thinking not enabled: %s", why)
    on = found is not None and found[2]
    if found is not None:
        fields, budget, _ = found
        additional.update(fields)
        max_tokens = inference.get("maxTokens")
        if budget is not None and max_tokens is not None and budget >= max_tokens:
            log.debug("maxTokens raised above the thinking budget (%d)", budget)
            inference["maxTokens"] = budget + max_tokens
        if on:
            _fit_sampling_to_thinking(inference, additional)
    if not on:
        include = False
        _drop_final_reasoning(messages)
    if inference:
        body["inferenceConfig"] = inference
    if additional:
        body["additionalModelRequestFields"] = additional
    if plan.text_format is not None:
        body["outputConfig"] = {"textFormat": plan.text_format}
    if profile.prompt_cache:
        caching.mark(
            body, request, tools=profile.cache_tools, json_tool=plan.json_tool,
            claude=profile.claude, drop_params=profile.drop_params,
        )  # fmt: skip
    context = ReplyContext(include, plan.json_tool, plan.json_wrapped, profile.model)
    return Prepared(body, context, tuple(dropped))


def count_tokens_body(
    request: CountTokensRequest, profile: BedrockProfile, *, new_id: IdFactory = new_call_id
) -> dict[str, Any]:
    """The CountTokens body: the Converse input (messages, system, tools, thinking) exactly
    as generate would send it."""
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
    return {"input": {"converse": {k: body[k] for k in _COUNT_FIELDS if k in body}}}


def _check_top_level(request: GenerateContentRequest, dropped: Drops) -> None:
    if request.cached_content:
        dropped.refuse("cachedContent: Gemini cached contents cannot be used with bedrock models")
    for name in _DROPPED_TOP:
        if getattr(request, name) is not None:
            log.debug("%s dropped: no bedrock equivalent", name)
    for name in request.model_extra or {}:
        log.debug("unknown request field %s dropped", name)


def _refuse_unsupported(generation: GenerationConfig, dropped: Drops) -> None:
    where = "generationConfig"
    if generation.candidate_count is not None and generation.candidate_count > 1:
        dropped.refuse(f"{where}.candidateCount: bedrock models give one candidate")
    if generation.response_logprobs:
        dropped.refuse(f"{where}.responseLogprobs: bedrock models do not return logprobs")
    if generation.logprobs is not None:
        dropped.refuse(f"{where}.logprobs: bedrock models do not return logprobs")
    modalities = {m.upper() for m in generation.response_modalities or []}
    if modalities - {"TEXT"}:
        dropped.refuse(f"{where}.responseModalities: bedrock models answer with TEXT")
    for extra in sorted(generation.model_extra or {}):
        dropped.refuse(f"{where}.{extra}: not supported by bedrock models")
    for name in _DROPPED_CONFIG:
        if getattr(generation, name) is not None:
            log.debug("%s.%s dropped: no bedrock equivalent", where, name)


def _sampling(
    generation: GenerationConfig, profile: BedrockProfile
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(inferenceConfig, additionalModelRequestFields) for maxTokens and sampling."""
    inference: dict[str, Any] = {}
    additional: dict[str, Any] = {}
    max_tokens = generation.max_output_tokens or profile.max_tokens
    if max_tokens:
        inference["maxTokens"] = max_tokens
    stops = [s for s in generation.stop_sequences or [] if s]
    if stops:
        inference["stopSequences"] = stops
    sampling = (generation.temperature, generation.top_p, generation.top_k)
    if not profile.sampling:
        if sampling != (None, None, None):
            log.debug("temperature/topP/topK dropped: %s rejects them", profile.model)
        return inference, additional
    if generation.temperature is not None:
        if generation.temperature > 1:
            log.debug("temperature %s clamped to Converse's maximum 1", generation.temperature)
        inference["temperature"] = min(generation.temperature, 1.0)
    if generation.top_p is not None:
        if profile.claude and "temperature" in inference:
            log.debug("topP dropped: Claude models take temperature or top_p, not both")
        else:
            inference["topP"] = generation.top_p
    if generation.top_k is not None:
        if profile.claude:
            additional["top_k"] = generation.top_k
        else:
            log.debug("topK dropped: Converse has no common field for it")
    return inference, additional


def _tool_config(
    plan: ToolPlan, messages: list[dict[str, Any]], called: list[str], dropped: Drops
) -> Block | None:
    """toolConfig; Converse requires one whenever the conversation holds toolUse or
    toolResult blocks, and has no "none" choice."""
    history = any(
        kind(block) in ("toolUse", "toolResult") for m in messages for block in m["content"]
    )
    tools = plan.tools
    if plan.none:
        if not history:
            log.debug("toolConfig left out: mode NONE, and no call in the conversation")
            return None
        dropped.refuse(
            "toolConfig.functionCallingConfig.mode: NONE cannot be honoured by bedrock models "
            "once the conversation holds function calls (Converse has no 'none' tool choice "
            "and needs the tools declared)"
        )
    if not tools and history:
        dropped.refuse(
            "tools: the conversation holds functionCall/functionResponse parts but declares no "
            "functions; Bedrock's Converse API needs their declarations"
        )
        schema = {"type": "object"}
        tools = [tool_spec(name, schema, _HISTORY_TOOL) for name in dict.fromkeys(called)]
    if not tools:
        return None
    config: Block = {"tools": tools}
    if plan.choice is not None:
        config["toolChoice"] = plan.choice
    return config


def _thinking_blocked(plan: ToolPlan, messages: list[dict[str, Any]]) -> str | None:
    """Why thinking cannot be on for this request (Claude's rules), if it cannot."""
    if plan.forced:
        return "toolChoice forces a tool call"
    if len(messages) >= 2 and messages[-1]["role"] == "user":
        results = any(kind(b) == "toolResult" for b in messages[-1]["content"])
        first = kind(messages[-2]["content"][0]) if messages[-2]["content"] else None
        if results and first != _REASONING:
            return "the tool call being answered was made without reasoning blocks"
    return None


def _drop_final_reasoning(messages: list[dict[str, Any]]) -> None:
    """With thinking off, Claude rejects reasoning blocks in a final assistant message."""
    if messages and messages[-1]["role"] == "assistant":
        content = messages[-1]["content"]
        kept = [b for b in content if kind(b) != _REASONING]
        if len(kept) != len(content):
            log.debug("reasoning blocks of the final model turn dropped: thinking is off")
            messages[-1]["content"] = kept


def _fit_sampling_to_thinking(inference: dict[str, Any], additional: dict[str, Any]) -> None:
    """Claude rejects temperature ≠ 1, top_k, and top_p < 0.95 with thinking on."""
    if inference.get("temperature", 1) != 1:
        log.debug("temperature dropped: Claude's thinking needs the default temperature")
        inference.pop("temperature")
    if additional.pop("top_k", None) is not None:
        log.debug("topK dropped: not allowed with Claude's thinking")
    if inference.get("topP", 1) < 0.95:
        log.debug("topP dropped: Claude's thinking needs top_p of at least 0.95")
        inference.pop("topP")
