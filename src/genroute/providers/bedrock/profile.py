"""What the Bedrock translator needs to know about one deployment's model.

Claude on Bedrock is Anthropic's model behind the Converse API: its family (read from the
id, `us.anthropic.claude-sonnet-4-5-20250929-v1:0`, or `model_info.base_model`) decides
the default `maxTokens`, how thinking is switched on, native JSON output and whether
sampling settings are accepted, exactly as for `anthropic/` (the model-facts table
`genroute.providers.models.CLAUDE`, read through `genroute.providers.anthropic.profile`).
Other Converse models (Nova, Llama, Mistral...) get the common Converse fields only: no
thinking settings, `maxTokens` only when given, JSON output through a forced tool.

`foundation_model` gives the id CountTokens takes: inference profiles (`us.`, `eu.`,
`apac.`, `global.`...) and ARNs name the model they route to. `prompt_cache` says whether
the model takes Converse cache checkpoints (caching.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from genroute.providers.anthropic.profile import profile_for as claude_profile
from genroute.providers.base import DeploymentSpec
from genroute.providers.models import ThinkingMode

__all__ = [
    "GEO_PREFIXES",
    "BedrockProfile",
    "foundation_model",
    "is_claude",
    "profile_for",
    "supports_prompt_cache",
]

# Cross-region inference profiles: `<geo>.<vendor>.<model>`.
GEO_PREFIXES = ("us", "us-gov", "eu", "apac", "ap", "jp", "au", "ca", "global")
_GEO = re.compile(rf"^(?:{'|'.join(map(re.escape, GEO_PREFIXES))})\.(?=[a-z0-9-]+\.[a-z0-9])")
_ARN_MODEL = re.compile(
    r"^arn:aws[a-z-]*:bedrock:[^:]*:[^:]*:(foundation-model|inference-profile)/"
)

# The models Bedrock's prompt caching documents (Claude 3.5 Haiku, 3.7 Sonnet, Sonnet,
# Opus and Haiku 4 and later; Amazon Nova).
_CLAUDE = re.compile(r"claude-(3-5-haiku|3-7-sonnet|(sonnet|opus|haiku)-[4-9])")
_NOVA = re.compile(r"(^|[.:/])amazon\.nova-")


def supports_prompt_cache(model: str) -> tuple[bool, bool]:
    """Whether a Bedrock model id takes cache checkpoints, and whether in its tools too."""
    name = model.lower()
    if _CLAUDE.search(name):
        return True, True
    return bool(_NOVA.search(name) or name.startswith("nova-")), False


@dataclass(frozen=True, slots=True)
class BedrockProfile:
    """The per-deployment facts the translator needs."""

    model: str  # the upstream model id, as in the URL
    claude: bool = False
    max_tokens: int | None = None  # None: leave maxTokens to the model
    thinking: ThinkingMode = "none"
    structured_outputs: bool = False  # native outputConfig.textFormat
    sampling: bool = True
    drop_params: bool = False
    count_model: str | None = None  # the id CountTokens takes; None: count locally
    prompt_cache: bool = False  # takes cachePoint blocks (supports_prompt_cache)
    cache_tools: bool = False  # ... in toolConfig.tools too (Claude; not Nova)


def is_claude(model: str) -> bool:
    """Whether a Bedrock model id (or base_model) names an Anthropic Claude model."""
    return "claude" in model.lower()


def foundation_model(model: str) -> str | None:
    """The foundation model id an id, inference profile or ARN routes to; None when the
    id does not say (an application inference profile ARN)."""
    name = model.strip()
    if name.startswith("arn:"):
        if not _ARN_MODEL.match(name):
            return None
        name = name.rsplit("/", 1)[-1]
    return _GEO.sub("", name) or None


def _count_model(*models: str | None) -> str | None:
    """The first id that names a foundation model (`vendor.model`), for CountTokens."""
    for model in models:
        found = foundation_model(model) if model else None
        if found and "." in found:
            return found
    return None


def profile_for(spec: DeploymentSpec) -> BedrockProfile:
    """The profile of a deployment: the Claude family table, or the common Converse fields."""
    info = spec.model_info
    base = info.base_model or spec.upstream_model
    cache, cache_tools = supports_prompt_cache(base)
    if is_claude(base):
        claude = claude_profile(spec)
        count = _count_model(info.base_model, spec.upstream_model)
        return BedrockProfile(
            model=spec.upstream_model,
            claude=True,
            max_tokens=claude.max_tokens,
            thinking=claude.thinking,
            structured_outputs=claude.structured_outputs,
            sampling=claude.sampling,
            drop_params=spec.drop_params,
            count_model=count,
            prompt_cache=cache,
            cache_tools=cache_tools,
        )
    extra = info.model_extra or {}
    return BedrockProfile(
        model=spec.upstream_model,
        max_tokens=spec.params.max_tokens or info.max_output_tokens,
        structured_outputs=bool(extra.get("supports_response_schema")),
        drop_params=spec.drop_params,
        prompt_cache=cache,
        cache_tools=cache_tools,
    )
