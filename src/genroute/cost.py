"""The cost of one call in USD, from its usage: pure and small.

Prices come from the deployment's `model_info` when it names any (`input_cost_per_token`,
`output_cost_per_token`, `cache_read_input_token_cost`, `output_cost_per_reasoning_token`,
`*_above_200k_tokens`), which is how self-hosted models get a price; otherwise from the
`genai-prices` package. A model neither knows costs 0, and `Pricer` logs that once per model.

Gemini's usage counts: `promptTokenCount` includes cached tokens, `candidatesTokenCount`
excludes thinking, which `thoughtsTokenCount` reports and which is billed as output.
Cached tokens (`cachedContentTokenCount`, each provider's own figure) are priced at the
cache-read rate; tokens written to a provider's prompt cache (Anthropic's and Bedrock's,
which Gemini's usage has no field for: `UsageMetadata._cache_write_tokens`) at the
cache-write rate (`cache_creation_input_token_cost`; genai-prices' cache write price, else
the input price).

`storage_cost` prices keeping a context cache (Gemini's cachedContents) for some hours:
tokens * hours * the per token-hour rate (`model_info.cache_storage_cost_per_token_per_hour`,
else the table in `genroute.providers.models`, since genai-prices has no unit for it).

Model names can come from clients (through wildcards), so everything kept per model is
bounded: the catalogue lookups are least-recently-used caches (`CATALOGUE_CACHE` models),
and `Pricer` names at most `UNKNOWN_LOGGED` unpriced models in its warnings.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from genroute.config import ModelEntry, ModelInfo
from genroute.providers.catalog import price_provider_id
from genroute.wire import Content, GenerateContentRequest, UsageMetadata

__all__ = [
    "CATALOGUE_CACHE",
    "CHARS_PER_TOKEN",
    "LONG_CONTEXT_TOKENS",
    "UNKNOWN_LOGGED",
    "Cost",
    "Pricer",
    "Tokens",
    "call_cost",
    "catalogue_cost",
    "custom_cost",
    "estimate_usage",
    "has_custom_prices",
    "pricer_for",
    "storage_cost",
    "text_tokens",
    "tokens_cost",
    "warm_catalogue",
]

log = logging.getLogger("genroute.cost")

LONG_CONTEXT_TOKENS = 200_000
CHARS_PER_TOKEN = 4
CATALOGUE_CACHE = 1024  # models whose catalogue entry (or its absence) is kept
UNKNOWN_LOGGED = 256  # unpriced models named one by one in warnings

K = TypeVar("K")
V = TypeVar("V")


class _Lru(OrderedDict[K, V]):
    """A dict that keeps its `limit` most recently used entries."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def get_fresh(self, key: K, default: V) -> V:
        """The value for `key` (now the most recently used), else `default`."""
        try:
            self.move_to_end(key)
            return self[key]
        except KeyError:  # absent (or evicted by another thread meanwhile)
            return default

    def put(self, key: K, value: V) -> None:
        """Store, dropping the least recently used entries beyond the limit."""
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            try:
                self.popitem(last=False)
            except KeyError:
                break


@dataclass(frozen=True, slots=True)
class Tokens:
    """Billable token counts of one call."""

    prompt: int = 0
    output: int = 0
    thinking: int = 0
    cached: int = 0
    tool_prompt: int = 0
    cache_write: int = 0  # prompt tokens written to the provider's prompt cache

    @classmethod
    def from_usage(cls, usage: UsageMetadata | None) -> Tokens:
        """The counts in a Gemini usageMetadata (missing fields count 0)."""
        if usage is None:
            return cls()
        return cls(
            prompt=usage.prompt_token_count or 0,
            output=usage.candidates_token_count or 0,
            thinking=usage.thoughts_token_count or 0,
            cached=usage.cached_content_token_count or 0,
            tool_prompt=usage.tool_use_prompt_token_count or 0,
            cache_write=usage._cache_write_tokens,
        )

    @property
    def input_total(self) -> int:
        """Every input token, cached ones included."""
        return self.prompt + self.tool_prompt

    @property
    def total(self) -> int:
        """Input plus output plus thinking (what a tpm limit counts)."""
        return self.input_total + self.output + self.thinking


@dataclass(frozen=True, slots=True)
class Cost:
    """A call's cost; `known` is False when no price was found (then `usd` is 0)."""

    usd: float
    known: bool = True
    source: str = "genai-prices"


def has_custom_prices(info: ModelInfo | None) -> bool:
    """Whether model_info sets any per-token price."""
    return info is not None and (
        info.input_cost_per_token is not None or info.output_cost_per_token is not None
    )


def custom_cost(tokens: Tokens, info: ModelInfo) -> float:
    """The cost under the per-token prices in model_info (LiteLLM's keys)."""
    long = tokens.input_total > LONG_CONTEXT_TOKENS
    in_price = info.input_cost_per_token or 0.0
    out_price = info.output_cost_per_token or 0.0
    if long and info.input_cost_per_token_above_200k_tokens is not None:
        in_price = info.input_cost_per_token_above_200k_tokens
    if long and info.output_cost_per_token_above_200k_tokens is not None:
        out_price = info.output_cost_per_token_above_200k_tokens
    cached = min(tokens.cached, tokens.input_total)
    written = min(tokens.cache_write, tokens.input_total - cached)
    cache_price = info.cache_read_input_token_cost
    cache_price = in_price if cache_price is None else cache_price
    write_price = info.cache_creation_input_token_cost
    write_price = in_price if write_price is None else write_price
    think_price = info.output_cost_per_reasoning_token
    think_price = out_price if think_price is None else think_price
    return (
        (tokens.input_total - cached - written) * in_price
        + cached * cache_price
        + written * write_price
        + tokens.output * out_price
        + tokens.thinking * think_price
    )


@dataclass(frozen=True, slots=True)
class _Rates:
    """USD per token of one catalogue model at one price tier."""

    input: float
    cached: float
    output: float
    written: float  # a token written to the prompt cache


_NO_RATES = _Rates(-1.0, -1.0, -1.0, -1.0)
_Found = tuple[Any, Any, tuple[int, ...]] | None
_NOT_LOOKED_UP: _Found = (None, None, ())
_tiers_cache: _Lru[tuple[str, str, date], _Found] = _Lru(CATALOGUE_CACHE)
_rates_cache: _Lru[tuple[str, str, date, tuple[bool, ...]], _Rates] = _Lru(4 * CATALOGUE_CACHE)


def _tier_starts(model_price: Any) -> tuple[int, ...]:
    """Every input-token threshold at which one of the model's prices changes."""
    starts: set[int] = set()
    for value in vars(model_price).values():
        for tier in getattr(value, "tiers", None) or ():
            starts.add(int(tier.start))
    return tuple(sorted(starts))


def _catalogue_model(
    provider_id: str, model: str, today: date
) -> tuple[Any, Any, tuple[int, ...]] | None:
    key = (provider_id, model, today)
    found = _tiers_cache.get_fresh(key, _NOT_LOOKED_UP)
    if found is _NOT_LOOKED_UP:
        from genai_prices import data_snapshot

        # Not `find_provider_model`: genai-prices keeps what it finds that way, for every
        # model name, in caches of its own that never shrink.
        snapshot = data_snapshot.get_snapshot()
        found = None
        try:
            provider = snapshot.find_provider(None, provider_id, None)
        except LookupError:
            provider = None
        info = provider.find_model(model, all_providers=snapshot.providers) if provider else None
        if info is not None:
            found = (provider, info, _tier_starts(info.get_prices(datetime.now(tz=UTC))))
        _tiers_cache.put(key, found)
    return found


def _probe(
    provider: Any, info: Any, input_tokens: int, cached: int, output: int, written: int = 0
) -> float:
    from genai_prices import Usage

    usage = Usage(
        input_tokens=input_tokens,
        cache_read_tokens=cached,
        output_tokens=output,
        cache_write_tokens=written,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(info.calc_price(usage, provider).total_price)


_next_midnight = 0.0  # Unix time of the next midnight UTC
_utc_today = date.min


def _today() -> date:
    """Today's date in UTC (genai-prices dates prices in UTC), worked out once a day
    instead of once a call."""
    global _next_midnight, _utc_today
    now = time.time()
    if now >= _next_midnight:
        _utc_today = datetime.fromtimestamp(now, tz=UTC).date()
        midnight = datetime(_utc_today.year, _utc_today.month, _utc_today.day, tzinfo=UTC)
        _next_midnight = midnight.timestamp() + 86400
    return _utc_today


def catalogue_cost(tokens: Tokens, provider: str | None, model: str) -> float | None:
    """The cost from genai-prices, or None when it does not know the model.

    genai-prices computes in Decimal and costs ~90 µs a call, so each model's per-token rates
    are read from it once per price tier (tiers switch on total input tokens, as in
    genai-prices: a tier applies when the input is over its start) and per day."""
    provider_id = price_provider_id(provider)
    if provider_id is None:
        return None
    today = _today()
    found = _catalogue_model(provider_id, model, today)
    if found is None:
        return None
    price_provider, info, starts = found
    input_total = tokens.input_total
    tier = tuple(input_total > start for start in starts)
    key = (provider_id, model, today, tier)
    rates = _rates_cache.get_fresh(key, _NO_RATES)
    if rates is _NO_RATES:
        probe = max(input_total, 1)
        base = _probe(price_provider, info, probe, 0, 0)
        all_cached = _probe(price_provider, info, probe, probe, 0)
        with_output = _probe(price_provider, info, probe, 0, probe)
        all_written = _probe(price_provider, info, probe, 0, 0, probe)
        rates = _Rates(
            base / probe, all_cached / probe, (with_output - base) / probe, all_written / probe
        )
        _rates_cache.put(key, rates)
    cached = min(tokens.cached, input_total)
    written = min(tokens.cache_write, input_total - cached)
    return (
        (input_total - cached - written) * rates.input
        + cached * rates.cached
        + written * rates.written
        + (tokens.output + tokens.thinking) * rates.output
    )


def warm_catalogue(models: Iterable[tuple[str | None, str]] = ()) -> None:
    """Loads genai-prices' catalogue now, and each (provider, model)'s rates, instead of on
    the first call that is priced: loading it takes ~80 ms of the event loop's time (~0.3 s
    on a slow machine), which that call would wait for."""
    from genai_prices import data_snapshot

    data_snapshot.get_snapshot()
    for provider, model in models:
        if model and "*" not in model:
            catalogue_cost(Tokens(prompt=1), provider, model)


def call_cost(
    usage: UsageMetadata | None, provider: str | None, model: str | None, info: ModelInfo | None
) -> Cost:
    """The cost of one call with this usage on this deployment."""
    return tokens_cost(Tokens.from_usage(usage), provider, model, info)


def tokens_cost(
    tokens: Tokens, provider: str | None, model: str | None, info: ModelInfo | None
) -> Cost:
    """The cost of these token counts on this deployment (`call_cost` without a usage)."""
    if info is not None and has_custom_prices(info):
        return Cost(custom_cost(tokens, info), source="model_info")
    if model:
        usd = catalogue_cost(tokens, provider, model)
        if usd is not None:
            return Cost(usd)
    return Cost(0.0, known=False, source="unknown")


def storage_cost(tokens: int, hours: float, rate: float | None) -> Cost:
    """The cost of keeping `tokens` in a context cache for `hours` at `rate` USD per token
    per hour (None: no price known, cost 0)."""
    if rate is None:
        return Cost(0.0, known=False, source="unknown")
    return Cost(max(tokens, 0) * max(hours, 0.0) * rate, source="cache storage")


def _text_chars(contents: list[Content]) -> int:
    return sum(len(p.text or "") for c in contents for p in c.parts or [])


def text_tokens(contents: list[Content]) -> int:
    """An estimate of the tokens in the text of some contents (4 characters a token, >= 1)."""
    return max(1, -(-_text_chars(contents) // CHARS_PER_TOKEN))


def estimate_usage(request: GenerateContentRequest, output_chars: int) -> UsageMetadata:
    """A rough usage (4 characters a token) for a stream that ended without one."""
    prompt_chars = _text_chars(request.contents)
    if request.system_instruction is not None:
        prompt_chars += _text_chars([request.system_instruction])
    prompt = max(1, -(-prompt_chars // CHARS_PER_TOKEN))
    output = -(-output_chars // CHARS_PER_TOKEN)
    return UsageMetadata(
        prompt_token_count=prompt, candidates_token_count=output, total_token_count=prompt + output
    )


class Pricer:
    """Prices calls for a set of deployments; logs each unpriced model once (the first
    `UNKNOWN_LOGGED` of them by name, then that there are more)."""

    def __init__(self, model_infos: dict[str, ModelInfo] | None = None) -> None:
        infos = dict(model_infos or {})
        self._infos = {k: v for k, v in infos.items() if "*" not in k}
        # Names with `*` are wildcard entries: every name they match has their prices.
        self._patterns = [(_pattern(k), v) for k, v in infos.items() if "*" in k]
        self._unknown: set[str] = set()
        self._more_unknown = False

    def info_for(self, *names: str | None) -> ModelInfo | None:
        """The model_info of the first name (deployment id, model, group) that has one, or
        that a wildcard entry with one matches."""
        for name in names:
            if name and name in self._infos:
                return self._infos[name]
        for name in names:
            for pattern, info in self._patterns:
                if name and pattern.match(name):
                    return info
        return None

    def cost(
        self,
        usage: UsageMetadata | None,
        provider: str | None,
        model: str | None,
        *names: str | None,
        quiet: bool = False,
    ) -> Cost:
        """The cost of a call; an unknown model costs 0 and is logged once."""
        return self.tokens_cost(Tokens.from_usage(usage), provider, model, *names, quiet=quiet)

    def tokens_cost(
        self,
        tokens: Tokens,
        provider: str | None,
        model: str | None,
        *names: str | None,
        quiet: bool = False,
    ) -> Cost:
        """The cost of these token counts (`cost` without a usage)."""
        result = tokens_cost(tokens, provider, model, self.info_for(*names))
        if not result.known and not quiet:
            self._unpriced(f"{provider}/{model}" if provider else str(model))
        return result

    def _unpriced(self, label: str) -> None:
        if label in self._unknown or self._more_unknown:
            return
        if len(self._unknown) < UNKNOWN_LOGGED:
            self._unknown.add(label)
            log.warning(
                "no price known for model %s: its calls cost 0 (set "
                "model_info.input_cost_per_token and output_cost_per_token to price it)",
                label,
            )
            return
        self._more_unknown = True
        log.warning(
            "no price known for model %s nor for %d others named before: their calls cost 0; "
            "further unpriced models are not logged",
            label,
            len(self._unknown),
        )


def _pattern(name: str) -> re.Pattern[str]:
    body = ".*".join(re.escape(part) for part in name.split("*"))
    return re.compile(f"^{body}$", re.DOTALL)


def pricer_for(entries: list[ModelEntry]) -> Pricer:
    """A Pricer knowing each model_list entry by its id, its params.model and its name
    (a wildcard entry's name, such as `gemini-*`, prices every name it matches)."""
    infos: dict[str, ModelInfo] = {}
    for entry in entries:
        if not has_custom_prices(entry.model_info):
            continue
        for name in (entry.model_info.id, entry.params.model, entry.model_name):
            if name:
                infos.setdefault(name, entry.model_info)
    return Pricer(infos)
