"""Claude's thinking on Bedrock: the request settings, and reasoning blocks carried across
turns in `thoughtSignature`.

Settings (`additionalModelRequestFields`, passed to Claude as they are):

- budget families (3.7 to 4.5): `reasoning_config: {type: enabled, budget_tokens}` (or
  `{type: disabled}`), Bedrock's name for Anthropic's `thinking`;
- adaptive families (4.6+): `thinking: {type: adaptive}` and `output_config: {effort}`
  (`thinking: {type: disabled}` to switch it off).

The thinkingConfig → budget/effort table is the Anthropic translator's
(`genroute.providers.anthropic.profile`), so one request thinks alike on `anthropic/` and
`bedrock/`.

Signatures: a Converse `reasoningContent` block (`reasoningText {text, signature}` or
`redactedContent`) is carried in the same envelope as Anthropic's thinking blocks
(`genroute.providers.anthropic.thinking`: `thinking` / `redacted_thinking`), so a tool loop
keeps its thinking whichever of the two served the turn that made the call (Anthropic's
signatures are valid on Bedrock and back). `to_converse` and `from_converse` switch shapes.
"""

from __future__ import annotations

from typing import Any

from genroute.errors import InvalidRequest
from genroute.providers.anthropic import profile as families
from genroute.providers.anthropic.thinking import Block
from genroute.providers.bedrock.profile import BedrockProfile
from genroute.wire import GenerationConfig

__all__ = ["Settings", "from_converse", "settings", "to_converse"]

#: (additionalModelRequestFields entries, budget_tokens or None, thinking on)
Settings = tuple[dict[str, Any], int | None, bool]


def to_converse(block: Block) -> dict[str, Any]:
    """An Anthropic-shaped thinking block → a Converse reasoningContent block."""
    if block["type"] == "thinking":
        text = {"text": block["thinking"], "signature": block["signature"]}
        return {"reasoningContent": {"reasoningText": text}}
    return {"reasoningContent": {"redactedContent": block["data"]}}


def from_converse(text: str, signature: str, redacted: str | None) -> Block:
    """What a reasoningContent block says, as an Anthropic-shaped block for the envelope."""
    if redacted is not None:
        return {"type": "redacted_thinking", "data": redacted}
    return {"type": "thinking", "thinking": text, "signature": signature}


def _disabled(profile: BedrockProfile) -> Settings:
    key = "thinking" if profile.thinking == "adaptive" else "reasoning_config"
    return {key: {"type": "disabled"}}, None, False


def settings(
    generation: GenerationConfig, profile: BedrockProfile, *, blocked: str | None
) -> tuple[Settings | None, str | None]:
    """(the thinking settings, or None to leave thinking unset; why it was left unset)."""
    config = generation.thinking_config
    if config is None:
        return None, None
    budget, level = config.thinking_budget, config.thinking_level
    if budget is not None and level is not None:
        raise InvalidRequest(
            "generationConfig.thinkingConfig: give thinkingBudget or thinkingLevel, not both"
        )
    if profile.thinking == "none":
        return None, f"{profile.model} takes no thinking settings"
    if budget == 0:
        return _disabled(profile), None
    if budget is None and level is None:
        if not config.include_thoughts:
            return None, None
        budget = -1
    if blocked:
        return None, blocked
    if level is not None and level.upper() not in families.LEVEL_BUDGETS:
        raise InvalidRequest(f"generationConfig.thinkingConfig.thinkingLevel: {level!r} unknown")
    if profile.thinking == "adaptive":
        adaptive: dict[str, Any] = {"type": "adaptive"}
        if config.include_thoughts:
            adaptive["display"] = "summarized"
        if level is not None:
            effort: str | None = families.LEVEL_EFFORTS[level.upper()]
        else:
            effort = families.effort_for_budget(budget if budget is not None else -1)
        fields: dict[str, Any] = {"thinking": adaptive}
        if effort:
            fields["output_config"] = {"effort": effort}
        return (fields, None, True), None
    if level is not None:
        tokens = families.LEVEL_BUDGETS[level.upper()]
    elif budget is None or budget < 0:
        tokens = families.DEFAULT_THINKING_BUDGET
    else:
        tokens = max(families.MIN_THINKING_BUDGET, budget)
    return ({"reasoning_config": {"type": "enabled", "budget_tokens": tokens}}, tokens, True), None
