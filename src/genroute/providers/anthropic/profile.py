"""What differs between Claude model families: default `max_tokens`, how thinking is
switched on, whether native structured outputs (`output_config.format`) exist, and whether
sampling parameters (temperature, top_p, top_k) are still accepted.

Pure data and one lookup. The family is read from the upstream model id
(`claude-sonnet-4-5-20250929`, `claude-3-7-sonnet-latest`, ...); `model_info` flags
(`supports_reasoning`, `supports_response_schema`) and `params.max_tokens` /
`model_info.max_output_tokens` override the table. docs/translation-anthropic.md has the
same tables in prose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from genroute.providers.base import DeploymentSpec

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

ThinkingMode = Literal["adaptive", "budget", "none"]

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

_NEW_STYLE = re.compile(r"claude-([a-z]+)-(\d+)(?:-(\d)(?!\d))?")
_OLD_STYLE = re.compile(r"claude-(\d+)(?:[-.](\d)(?!\d))?-(opus|sonnet|haiku)")


@dataclass(frozen=True, slots=True)
class Family:
    """A Claude model family: tier and (major, minor) version, as parsed from the id."""

    tier: str
    version: tuple[int, int]


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
    name = model.lower().rsplit("/", 1)[-1]
    if match := _NEW_STYLE.search(name):
        return Family(match[1], (int(match[2]), int(match[3] or 0)))
    if match := _OLD_STYLE.search(name):
        return Family(match[3], (int(match[1]), int(match[2] or 0)))
    return None


def family_max_tokens(family: Family | None) -> int:
    """The documented maximum output of a family, used as the default `max_tokens`."""
    if family is None:
        return FALLBACK_MAX_TOKENS
    if family.version >= (4, 5) or family.version == (3, 7):
        return 64000
    if family.version >= (4, 0):
        return 32000 if family.tier == "opus" else 64000
    if family.version >= (3, 5):
        return 8192
    return FALLBACK_MAX_TOKENS


def family_thinking(family: Family | None) -> ThinkingMode:
    """`adaptive` from 4.6 on (Opus 4.7 rejects budgets), `budget` from 3.7, else `none`.
    Unknown names get `budget`: the client's request is passed on as asked."""
    if family is None:
        return "budget"
    if family.version >= (4, 6):
        return "adaptive"
    return "budget" if family.version >= (3, 7) else "none"


def family_structured_outputs(family: Family | None) -> bool:
    """Native JSON outputs: Opus 4.1 and every family from 4.5 on."""
    if family is None:
        return False
    return family.version >= (4, 5) or (family.tier == "opus" and family.version == (4, 1))


def family_sampling(family: Family | None) -> bool:
    """temperature / top_p / top_k: deprecated by Anthropic and rejected from 4.7 on."""
    return family is None or family.version < (4, 7)


def profile_for(spec: DeploymentSpec) -> ModelProfile:
    """The profile of a deployment: the family table, overridden by config."""
    family = parse_family(spec.upstream_model)
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
