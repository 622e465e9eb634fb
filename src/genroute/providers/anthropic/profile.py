"""What differs between Claude model families: default `max_tokens`, how thinking is
switched on, whether native structured outputs (`output_config.format`) exist, and whether
sampling parameters (temperature, top_p, top_k) are still accepted.

The families are rows of the model-facts table (`genroute.providers.models.CLAUDE`), read
here for one deployment. The family is read from the upstream model id (or
`model_info.base_model`: `claude-sonnet-4-5-20250929`, `claude-3-7-sonnet-latest`, ...);
`model_info` flags (`supports_reasoning`, `supports_response_schema`) and
`params.max_tokens` / `model_info.max_output_tokens` override the table. docs/translation-anthropic.md has the
same tables in prose.
"""

from __future__ import annotations

from dataclasses import dataclass

from genroute.providers.base import DeploymentSpec
from genroute.providers.models import ClaudeFamily, ThinkingMode, claude_family, claude_row

__all__ = [
    "BUDGET_EFFORTS",
    "DEFAULT_THINKING_BUDGET",
    "FALLBACK_MAX_TOKENS",
    "LEVEL_BUDGETS",
    "LEVEL_EFFORTS",
    "MAX_EFFORT",
    "MIN_THINKING_BUDGET",
    "Family",
    "ModelProfile",
    "ThinkingMode",
    "effort_for_budget",
    "family_max_tokens",
    "family_sampling",
    "family_structured_outputs",
    "family_thinking",
    "parse_family",
    "profile_for",
]

# Used when nothing else gives a default `max_tokens` (Anthropic requires one).
FALLBACK_MAX_TOKENS = 4096
# Anthropic's lower bound for `thinking.budget_tokens`.
MIN_THINKING_BUDGET = 1024
# thinkingBudget -1 (dynamic), or includeThoughts without a budget: what gemini-cli asks of
# gemini-2.5 models.
DEFAULT_THINKING_BUDGET = 8192
# thinkingLevel → budget_tokens (budget-mode models) and → output_config.effort (adaptive).
LEVEL_BUDGETS = {"MINIMAL": 1024, "LOW": 4096, "MEDIUM": 8192, "HIGH": 16384, "XHIGH": 32000}
LEVEL_EFFORTS = {"MINIMAL": "low", "LOW": "low", "MEDIUM": "medium", "HIGH": "high"}
LEVEL_EFFORTS["XHIGH"] = "xhigh"
# thinkingBudget → effort on adaptive-only models: the first bound the budget fits under.
BUDGET_EFFORTS = ((4096, "low"), (12288, "medium"), (24576, "high"))
MAX_EFFORT = "xhigh"

#: A Claude family, as parsed from the id (the table is `genroute.providers.models.CLAUDE`).
Family = ClaudeFamily


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """The per-deployment facts the translator needs."""

    model: str
    max_tokens: int
    thinking: ThinkingMode = "budget"
    structured_outputs: bool = False
    sampling: bool = True
    # Leave out fields whose loss changes the answer instead of refusing the request.
    drop_params: bool = False


def parse_family(model: str) -> Family | None:
    """`claude-sonnet-4-5-2025…` → Family("sonnet", (4, 5)); None for other names."""
    return claude_family(model)


def family_max_tokens(family: Family | None) -> int:
    """The documented maximum output of a family, used as the default `max_tokens`."""
    row = claude_row(family)
    return FALLBACK_MAX_TOKENS if row is None else row.output_limit


def family_thinking(family: Family | None) -> ThinkingMode:
    """`adaptive` from 4.6 on (Opus 4.7 rejects budgets), `budget` from 3.7, else `none`.
    Unknown names get `budget`: the client's request is passed on as asked."""
    row = claude_row(family)
    return "budget" if row is None else row.thinking


def family_structured_outputs(family: Family | None) -> bool:
    """Native JSON outputs: Opus 4.1 and every family from 4.5 on."""
    row = claude_row(family)
    return row is not None and row.structured_outputs


def family_sampling(family: Family | None) -> bool:
    """temperature / top_p / top_k: deprecated by Anthropic and rejected from 4.7 on."""
    row = claude_row(family)
    return row is None or row.sampling


def profile_for(spec: DeploymentSpec) -> ModelProfile:
    """The profile of a deployment: the family table, overridden by config."""
    family = parse_family(spec.model_info.base_model or spec.upstream_model)
    info = spec.model_info
    extra = info.model_extra or {}
    max_tokens = spec.params.max_tokens or info.max_output_tokens or family_max_tokens(family)
    thinking = family_thinking(family)
    reasoning = extra.get("supports_reasoning")
    if reasoning is False:
        thinking = "none"
    elif reasoning is True and thinking == "none":
        thinking = "budget"
    structured = extra.get("supports_response_schema")
    return ModelProfile(
        model=spec.upstream_model,
        max_tokens=max_tokens,
        thinking=thinking,
        structured_outputs=(
            family_structured_outputs(family) if structured is None else bool(structured)
        ),
        sampling=family_sampling(family),
        drop_params=spec.drop_params,
    )


def effort_for_budget(budget: int) -> str | None:
    """The `output_config.effort` closest to a token budget; None for dynamic (-1)."""
    if budget < 0:
        return None
    return next((effort for bound, effort in BUDGET_EFFORTS if budget <= bound), MAX_EFFORT)
