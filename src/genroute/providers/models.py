"""Facts about models, in one table of model families per provider.

What a model is (chat or embedding), whether it reasons, which `reasoning_effort` values it
takes, whether it takes sampling settings (temperature, top_p...), which max-tokens field
it needs, and how many tokens it reads and writes. The OpenAI translator reads these
facts to decide which fields to send; `Router.describe` reads them for `GET models`
(`supportedGenerationMethods`, `inputTokenLimit`, `outputTokenLimit`, `thinking`); the
Anthropic profile reads the Claude rows.

A `Family` row matches the model id from its start: lower-cased, the last path segment
(`azure/o3-mini`, `openai/gpt-oss-120b` → `o3-mini`, `gpt-oss-120b`), without a
fine-tune's `ft:`. The first matching row of the deployment's table wins (`TABLES`:
`openai/` and `azure/` read the OpenAI table, the other OpenAI-compatible prefixes a short
table of their own, `gemini/` and `vertex_ai/` the Gemini one). Claude families (also
`vertex_ai/claude-*` and `bedrock/…anthropic.claude-*`) are read by version
(`claude_family`, `CLAUDE`), since their ids put tier and version in two orders.

`CACHE_STORAGE` is what a context cache (Gemini's cachedContents) costs to keep, per token
and hour, by model family: genai-prices has no unit for it (`cache_storage_price`;
`model_info.cache_storage_cost_per_token_per_hour`, LiteLLM's key, wins).

`model_info` wins over the table, fact by fact (`model_facts`): `base_model` (the model the
facts are about: an Azure deployment's name says nothing), `mode`, `supports_reasoning`,
`max_input_tokens` (else `max_tokens`) and `max_output_tokens`. An input limit the table
does not give is genai-prices' `context_window` (`ModelFacts.input_token_limit`, read once
per model). A model no row matches is "unknown": it is sent no reasoning field unless
`model_info.supports_reasoning` is true, and its limits are unknown (omitted).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal

from genroute.config import ModelInfo
from genroute.providers.catalog import price_provider_id

__all__ = [
    "CACHE_STORAGE",
    "CLAUDE",
    "COMPATIBLE",
    "COMPLETION_TOKENS",
    "EFFORT_ORDER",
    "GEMINI",
    "OPENAI",
    "TABLES",
    "ClaudeFamily",
    "ClaudeRow",
    "Family",
    "Mode",
    "ModelFacts",
    "ThinkingMode",
    "TokensField",
    "cache_storage_price",
    "catalogue_context_window",
    "claude_family",
    "claude_row",
    "closest_effort",
    "model_facts",
    "model_id",
    "table_for",
]

Mode = Literal["chat", "embedding"]
TokensField = Literal["max_tokens", "max_completion_tokens"]
ThinkingMode = Literal["adaptive", "budget", "none"]
COMPLETION_TOKENS: TokensField = "max_completion_tokens"

# Every `reasoning_effort` value OpenAI-compatible servers know, least thinking first.
EFFORT_ORDER = ("none", "minimal", "low", "medium", "high", "xhigh")
_LMH = ("low", "medium", "high")
_LMHX = ("low", "medium", "high", "xhigh")


@dataclass(frozen=True, slots=True)
class Family:
    """One row of a provider's table: a family of models and what they take."""

    label: str
    pattern: str  # a regex matched at the start of the model id (see `model_id`)
    mode: Mode = "chat"
    reasons: bool = False
    # The `reasoning_effort` values the family takes, least first; () takes the field not at all.
    efforts: tuple[str, ...] = ()
    sampling: bool = True  # temperature, top_p, penalties, logprobs
    max_tokens_field: TokensField | None = None  # None: the server's (prefixes.py)
    input_limit: int | None = None  # None: genai-prices' context_window
    output_limit: int | None = None

    def matches(self, model: str) -> bool:
        """Whether the (normalised) model id is of this family."""
        return _compiled(self.pattern).match(model) is not None


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _reasoning(label: str, pattern: str, efforts: tuple[str, ...], **facts: int | None) -> Family:
    """An OpenAI reasoning family: no sampling settings, `max_completion_tokens` only."""
    return Family(
        label,
        pattern,
        reasons=True,
        efforts=efforts,
        sampling=False,
        max_tokens_field=COMPLETION_TOKENS,
        input_limit=facts.get("input_limit"),
        output_limit=facts.get("output_limit"),
    )


_GPT5 = {"input_limit": 272_000, "output_limit": 128_000}
_O_SERIES = {"input_limit": 200_000, "output_limit": 100_000}

OPENAI: tuple[Family, ...] = (
    Family("OpenAI embeddings", r"text-embedding-", mode="embedding", input_limit=8191),
    _reasoning("o1-mini", r"o1-mini", (), input_limit=128_000, output_limit=65_536),
    _reasoning("o1-preview", r"o1-preview", (), input_limit=128_000, output_limit=32_768),
    _reasoning("o-series (o1, o3, o4-mini...)", r"o\d", _LMH, **_O_SERIES),
    _reasoning("codex-mini", r"codex", _LMH, **_O_SERIES),
    Family("gpt-5 chat (no reasoning)", r"gpt-5-chat", input_limit=128_000, output_limit=16_384),
    _reasoning(
        "gpt-5.x chat", r"gpt-5\.\d+-chat", ("medium",), input_limit=128_000, output_limit=16_384
    ),
    _reasoning("gpt-5 pro", r"gpt-5-pro", ("high",), output_limit=272_000),
    _reasoning("gpt-5.x pro", r"gpt-5\.\d+-pro", ("medium", "high", "xhigh"), output_limit=128_000),
    _reasoning("gpt-5 / 5.1 codex", r"gpt-5(\.1)?-codex(?!-max)", _LMH, **_GPT5),
    _reasoning("gpt-5.x codex", r"gpt-5(\.\d+)?-codex", _LMHX, **_GPT5),
    _reasoning("gpt-5.1", r"gpt-5\.1(?!\d)", ("none", *_LMH), **_GPT5),
    _reasoning("gpt-5.2 and later", r"gpt-5\.\d", ("none", *_LMHX), **_GPT5),
    _reasoning("gpt-5", r"gpt-5", ("minimal", *_LMH), **_GPT5),
    Family("gpt-4.1", r"gpt-4\.1", input_limit=1_047_576, output_limit=32_768),
    Family("gpt-4o (2024-05-13)", r"gpt-4o-2024-05-13", input_limit=128_000, output_limit=4096),
    Family("gpt-4o", r"gpt-4o", input_limit=128_000, output_limit=16_384),
    Family("chatgpt-4o", r"chatgpt-4o", input_limit=128_000, output_limit=16_384),
    Family("gpt-4.5", r"gpt-4\.5", input_limit=128_000, output_limit=16_384),
    Family(
        "gpt-4 turbo",
        r"gpt-4-(turbo|vision|\d{4}-preview)",
        input_limit=128_000,
        output_limit=4096,
    ),
    Family("gpt-4-32k", r"gpt-4-32k", input_limit=32_768, output_limit=4096),
    Family("gpt-4", r"gpt-4(-\d{4})?$", input_limit=8192, output_limit=8192),
    Family("gpt-3.5", r"gpt-3\.5", input_limit=16_385, output_limit=4096),
    # OpenAI's open-weight models, served by vLLM, Ollama... (openai/ with an api_base).
    Family("gpt-oss", r"gpt-oss", reasons=True, efforts=_LMH),
)

# Open-weight and other families served by the other OpenAI-compatible prefixes.
COMPATIBLE: tuple[Family, ...] = (
    Family("embeddings", r".*embed", mode="embedding"),
    Family("gpt-oss", r"gpt-oss", reasons=True, efforts=_LMH),
    # DeepSeek's reasoner always reasons and takes no effort; it refuses logprobs.
    Family("deepseek-reasoner", r"deepseek-reasoner", reasons=True, sampling=False),
    Family("grok-3-mini", r"grok-3-mini", reasons=True, efforts=("low", "high")),
    Family("grok-4 non-reasoning", r"grok-4.*non-reasoning"),
    # grok-4 always reasons and refuses reasoning_effort.
    Family("grok-4", r"grok-4", reasons=True),
)


def _thinking_gemini(label: str, pattern: str) -> Family:
    """A Gemini family that thinks: 1M tokens in, 64K out."""
    return Family(label, pattern, reasons=True, input_limit=1_048_576, output_limit=65_536)


GEMINI: tuple[Family, ...] = (
    Family(
        "Gemini embeddings",
        r"(gemini-embedding|text-embedding|text-multilingual-embedding|embedding)-",
        mode="embedding",
        input_limit=2048,
    ),
    Family(
        "Gemini 2.5 Flash Image",
        r"gemini-2\.5-flash-image",
        input_limit=32_768,
        output_limit=32_768,
    ),
    Family(
        "Gemini 3 Pro Image",
        r"gemini-3(\.\d+)?-pro-image",
        reasons=True,
        input_limit=65_536,
        output_limit=32_768,
    ),
    Family("Gemini 2.5 TTS", r"gemini-2\.5-.*tts", input_limit=8192, output_limit=16_384),
    _thinking_gemini("Gemini 3", r"gemini-3"),
    _thinking_gemini("Gemini 2.5", r"gemini-2\.5"),
    _thinking_gemini("Gemini -latest", r"gemini-(flash|flash-lite|pro)-latest"),
    _thinking_gemini("Gemini 2.0 Flash Thinking", r"gemini-2\.0-flash-thinking"),
    Family("Gemini 2.0", r"gemini-2\.0", input_limit=1_048_576, output_limit=8192),
    Family("Gemini 1.5 Pro", r"gemini-1\.5-pro", input_limit=2_097_152, output_limit=8192),
    Family("Gemini 1.5", r"gemini-1\.5", input_limit=1_048_576, output_limit=8192),
)

#: Which table each provider prefix reads (Anthropic reads `CLAUDE`; the demo none).
TABLES: Mapping[str, tuple[Family, ...]] = MappingProxyType(
    {
        "openai": OPENAI,
        "azure": OPENAI,
        "gemini": GEMINI,
        "google_ai_studio": GEMINI,
        "vertex_ai": GEMINI,  # and its claude-* models read the Claude rows
        "bedrock": (),  # its Claude models read the Claude rows; others have no row yet
        **dict.fromkeys(
            (
                "hosted_vllm",
                "vllm",
                "ollama",
                "ollama_chat",
                "groq",
                "deepseek",
                "openrouter",
                "mistral",
                "together_ai",
                "xai",
            ),
            COMPATIBLE,
        ),
    }
)

# -- Claude ---------------------------------------------------------------------------------

_NEW_STYLE = re.compile(r"claude-([a-z]+)-(\d+)(?:-(\d)(?!\d))?")
_OLD_STYLE = re.compile(r"claude-(\d+)(?:[-.](\d)(?!\d))?-(opus|sonnet|haiku)")


@dataclass(frozen=True, slots=True)
class ClaudeFamily:
    """A Claude model family: tier and (major, minor) version, as parsed from the id."""

    tier: str
    version: tuple[int, int]


@dataclass(frozen=True, slots=True)
class ClaudeRow:
    """Claude families from `since` on (of one tier, or of every tier when `tier` is None)."""

    label: str
    since: tuple[int, int]
    tier: str | None
    output_limit: int  # the documented maximum output, also the default `max_tokens`
    thinking: ThinkingMode  # adaptive (effort), budget (`enabled` + budget_tokens), none
    structured_outputs: bool  # native `output_config.format`
    sampling: bool = True  # temperature / top_p / top_k (rejected from 4.7 on)


#: Claude families, newest first: the first row whose `since` the version reaches wins.
CLAUDE: tuple[ClaudeRow, ...] = (
    ClaudeRow("Claude 4.7 and later", (4, 7), None, 64_000, "adaptive", True, sampling=False),
    ClaudeRow("Claude 4.6", (4, 6), None, 64_000, "adaptive", True),
    ClaudeRow("Claude 4.5", (4, 5), None, 64_000, "budget", True),
    ClaudeRow("Claude Opus 4.1", (4, 1), "opus", 32_000, "budget", True),
    ClaudeRow("Claude Opus 4", (4, 0), "opus", 32_000, "budget", False),
    ClaudeRow("Claude 4", (4, 0), None, 64_000, "budget", False),
    ClaudeRow("Claude 3.7", (3, 7), None, 64_000, "budget", False),
    ClaudeRow("Claude 3.5", (3, 5), None, 8192, "none", False),
    ClaudeRow("Claude 3", (0, 0), None, 4096, "none", False),
)


def claude_family(model: str) -> ClaudeFamily | None:
    """`claude-sonnet-4-5-2025…` → ClaudeFamily("sonnet", (4, 5)); None for other names."""
    name = model.lower().rsplit("/", 1)[-1]
    if match := _NEW_STYLE.search(name):
        return ClaudeFamily(match[1], (int(match[2]), int(match[3] or 0)))
    if match := _OLD_STYLE.search(name):
        return ClaudeFamily(match[3], (int(match[1]), int(match[2] or 0)))
    return None


def claude_row(family: ClaudeFamily | None) -> ClaudeRow | None:
    """The row of a Claude family; None for a name that is not a Claude id."""
    if family is None:
        return None
    for row in CLAUDE:
        if family.version >= row.since and row.tier in (None, family.tier):
            return row
    return CLAUDE[-1]


# -- facts ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def catalogue_context_window(price_id: str, model: str) -> int | None:
    """genai-prices' context window of a model, None if unknown. Read once per model, in
    a bounded cache (names come from clients, through wildcards), and not through
    `find_provider_model`, whose own caches keep every name ever asked for."""
    from genai_prices import data_snapshot  # its data loads in ~0.3 s: only when needed

    snapshot = data_snapshot.get_snapshot()
    try:
        provider = snapshot.find_provider(None, price_id, None)
    except LookupError:
        return None
    info = provider.find_model(model, all_providers=snapshot.providers)
    window = info.context_window if info is not None else None
    return int(window) if window else None


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What genroute knows about one deployment's model, `model_info` applied."""

    provider: str
    model: str  # the id the facts are about: model_info.base_model, else the upstream model
    family: str | None = None  # the label of the row it matched; None: not in the table
    mode: Mode = "chat"
    reasons: bool | None = None  # None: unknown
    # The `reasoning_effort` values it takes, least first; () none; None: any (not known).
    efforts: tuple[str, ...] | None = None
    sampling: bool = True
    max_tokens_field: TokensField | None = None  # None: the server's
    input_limit: int | None = None  # from the table or model_info; see input_token_limit()
    output_limit: int | None = None

    @property
    def takes_effort(self) -> bool:
        """Whether `reasoning_effort` may be sent to this model at all."""
        return bool(self.reasons) and self.efforts != ()

    def input_token_limit(self) -> int | None:
        """The input limit, from genai-prices' context window when nothing else gives one."""
        if self.input_limit is not None:
            return self.input_limit
        price_id = price_provider_id(self.provider)
        if price_id is None or not self.model or "*" in self.model:
            return None
        found = catalogue_context_window(price_id, self.model)
        last = self.model.rsplit("/", 1)[-1]  # `azure/gpt-4o` (a LiteLLM base_model)
        if found is None and last != self.model:
            found = catalogue_context_window(price_id, last)
        return found


def model_id(model: str) -> str:
    """The id a family pattern is matched against: lower case, last path segment, no `ft:`."""
    return model.strip().lower().rsplit("/", 1)[-1].removeprefix("ft:")


def table_for(provider: str) -> tuple[Family, ...]:
    """The family table a provider prefix reads; () for one without (anthropic, demo)."""
    return TABLES.get(provider, ())


def _table_facts(provider: str, model: str) -> ModelFacts:
    if provider == "anthropic" or (provider in ("vertex_ai", "bedrock") and claude_family(model)):
        row = claude_row(claude_family(model))
        if row is None:
            return ModelFacts(provider, model)
        return ModelFacts(
            provider,
            model,
            row.label,
            reasons=row.thinking != "none",
            efforts=None,
            sampling=row.sampling,
            output_limit=row.output_limit,
        )
    name = model_id(model)
    for family in table_for(provider):
        if family.matches(name):
            return ModelFacts(
                provider,
                model,
                family.label,
                family.mode,
                family.reasons,
                family.efforts,
                family.sampling,
                family.max_tokens_field,
                family.input_limit,
                family.output_limit,
            )
    return ModelFacts(provider, model)


def _reasoning_override(facts: ModelFacts, supports: bool) -> ModelFacts:
    """model_info.supports_reasoning over the table."""
    if not supports:
        return replace(facts, reasons=False, efforts=())
    if facts.reasons:
        return facts
    if facts.family is None and TABLES.get(facts.provider) is OPENAI:
        # An OpenAI or Azure model the table does not know, declared a reasoning model:
        # every reasoning model there refuses sampling settings and max_tokens.
        return replace(
            facts,
            reasons=True,
            efforts=None,
            sampling=False,
            max_tokens_field=COMPLETION_TOKENS,
        )
    return replace(facts, reasons=True, efforts=None)


def model_facts(provider: str, model: str, info: ModelInfo | None = None) -> ModelFacts:
    """The facts of `provider/model`: its table row, overridden by `model_info`."""
    info = info or ModelInfo()
    facts = _table_facts(provider, info.base_model or model)
    if info.mode is not None:
        facts = replace(facts, mode="embedding" if info.mode == "embedding" else "chat")
    supports = (info.model_extra or {}).get("supports_reasoning")
    if supports is not None:
        facts = _reasoning_override(facts, bool(supports))
    input_limit = info.max_input_tokens or info.max_tokens
    if input_limit is not None:
        facts = replace(facts, input_limit=input_limit)
    if info.max_output_tokens is not None:
        facts = replace(facts, output_limit=info.max_output_tokens)
    return facts


#: Gemini context caching, USD per token per hour of storage, from the Gemini API's pricing
#: page (ai.google.dev/gemini-api/docs/pricing, "context caching: storage price"), checked
#: 2026-12: $4.50 per million tokens per hour for Pro models, $0.50 for Gemini 3.6-3.8
#: Flash (also in genai-prices' notes), $1.00 for the other Flash and Flash-Lite models.
#: The first row whose pattern matches the model id (`model_id`) from its start wins.
CACHE_STORAGE: tuple[tuple[str, float], ...] = (
    (r"gemini-3\.[6-9]-flash", 0.50e-6),
    (r"gemini-[\d.]+-pro|gemini-pro", 4.50e-6),
    (r"gemini-", 1.00e-6),
)
_CACHE_PROVIDERS = ("gemini", "vertex_ai")


def cache_storage_price(provider: str, model: str, info: ModelInfo | None = None) -> float | None:
    """USD per token per hour to keep a context cache of this model: model_info's
    `cache_storage_cost_per_token_per_hour`, else `CACHE_STORAGE` for Gemini models, else
    None (unknown, or a provider that does not charge for it)."""
    if info is not None and info.cache_storage_cost_per_token_per_hour is not None:
        return info.cache_storage_cost_per_token_per_hour
    if provider not in _CACHE_PROVIDERS:
        return None
    name = model_id((info.base_model if info else None) or model)
    return next((rate for pattern, rate in CACHE_STORAGE if _compiled(pattern).match(name)), None)


def closest_effort(wanted: str, taken: tuple[str, ...]) -> str:
    """The value of `taken` nearest `wanted` in `EFFORT_ORDER` (a tie goes to more thinking);
    `wanted` itself when taken is empty (any value may be sent)."""
    if not taken or wanted in taken:
        return wanted
    rank = EFFORT_ORDER.index(wanted) if wanted in EFFORT_ORDER else len(EFFORT_ORDER)

    def distance(value: str) -> tuple[int, int]:
        other = EFFORT_ORDER.index(value) if value in EFFORT_ORDER else rank
        return abs(other - rank), -other

    return min(taken, key=distance)
