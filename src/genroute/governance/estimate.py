"""The most a call can cost: what it holds on its budgets from before it starts.

    prompt tokens   the request's text (contents, system instruction, tools, function
                    calls and results) at 1 token per 3 bytes of UTF-8 (English averages
                    about 4 characters a token, CJK about 1 a character), plus 258 tokens
                    (a Gemini image tile) per inline or file part
    output tokens   `maxOutputTokens` (plus `thinkingBudget` when set: a provider may add
                    it to the cap), capped by the model's output limit; without
                    `maxOutputTokens`, the model's output limit: from
                    `genroute.providers.models.model_facts` (its table, overridden by
                    `model_info.max_output_tokens`), else the deployment's
                    `params.max_tokens`, else `general_settings.default_max_output_tokens`
                    (65,536); times `candidateCount`
    price           the most expensive deployment of the group, at the output price or
                    the reasoning price, whichever is higher

Embeddings hold their input at the input price; countTokens holds nothing. A group's
fallbacks are not priced: a call that falls back to a dearer group can cost more than it
held.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from genroute.cost import Pricer, Tokens, has_custom_prices, tokens_cost
from genroute.providers.models import model_facts
from genroute.wire import Content, GenerateContentRequest, Part

__all__ = [
    "BYTES_PER_TOKEN",
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "MEDIA_PART_TOKENS",
    "GroupResolver",
    "MaxCost",
    "output_cap",
    "prompt_tokens",
]

BYTES_PER_TOKEN = 3
MEDIA_PART_TOKENS = 258
DEFAULT_MAX_OUTPUT_TOKENS = 65_536


class GroupResolver(Protocol):
    """What the governed layer asks of the Router: a model's group and its deployments."""

    def resolve(self, model: str) -> str:
        """The group serving `model` (NotFound when none does)."""
        ...

    def group(self, model: str) -> Sequence[Any]:
        """The deployments of a group (each with `.id` and `.spec`)."""
        ...


def _part_bytes(part: Part) -> tuple[int, int]:
    """(text bytes, media parts) of one part."""
    if part.text is not None:
        return len(part.text.encode("utf-8", "replace")), 0
    if part.inline_data is not None or part.file_data is not None:
        return 0, 1
    return len(part.model_dump_json(exclude_none=True)), 0


def _content_bytes(contents: Sequence[Content]) -> tuple[int, int]:
    text = media = 0
    for content in contents:
        for part in content.parts or ():
            t, m = _part_bytes(part)
            text += t
            media += m
    return text, media


def prompt_tokens(contents: Sequence[Content], extra_bytes: int = 0) -> int:
    """An estimate on the high side of the tokens of some contents (at least 1)."""
    text, media = _content_bytes(contents)
    return max(1, -(-(text + extra_bytes) // BYTES_PER_TOKEN) + media * MEDIA_PART_TOKENS)


def _request_prompt_tokens(request: GenerateContentRequest) -> int:
    contents = list(request.contents)
    if request.system_instruction is not None:
        contents.append(request.system_instruction)
    extra = sum(len(t.model_dump_json(exclude_none=True)) for t in request.tools or ())
    return prompt_tokens(contents, extra)


def output_cap(request: GenerateContentRequest, model_limit: int) -> int:
    """The output tokens a request can be answered with, on a model writing at most
    `model_limit` (see the module docstring)."""
    config = request.generation_config
    if config is None:
        return model_limit
    cap = model_limit
    if config.max_output_tokens:
        thinking = config.thinking_config.thinking_budget if config.thinking_config else None
        cap = min(model_limit, config.max_output_tokens + max(0, thinking or 0))
    return cap * max(1, config.candidate_count or 1)


class MaxCost:
    """Prices the most a call to a group can cost (module docstring)."""

    def __init__(
        self,
        groups: GroupResolver,
        pricer: Pricer,
        default_output: int = DEFAULT_MAX_OUTPUT_TOKENS,
    ) -> None:
        self.groups = groups
        self.pricer = pricer
        self.default_output = default_output
        self._limits: dict[str, int] = {}

    def output_limit(self, deployment: Any) -> int:
        """What a deployment can write at most (cached per deployment)."""
        key = deployment.id or f"{deployment.spec.provider}/{deployment.spec.upstream_model}"
        found = self._limits.get(key)
        if found is None:
            spec = deployment.spec
            facts = model_facts(spec.provider, spec.upstream_model, spec.model_info)
            found = facts.output_limit or spec.params.max_tokens or self.default_output
            self._limits[key] = found
        return found

    def _cost(self, deployment: Any, group: str, tokens: Tokens) -> float:
        """The higher of the deployment's price as metering finds it (by deployment id,
        then group) and as its own model_info sets it."""
        spec = deployment.spec
        usd = self.pricer.tokens_cost(
            tokens, spec.provider, spec.upstream_model, deployment.id, group, quiet=True
        ).usd
        if has_custom_prices(spec.model_info):
            own = tokens_cost(tokens, spec.provider, spec.upstream_model, spec.model_info).usd
            usd = max(usd, own)
        return usd

    def _thinking_apart(self, deployment: Any, group: str) -> bool:
        """Whether thinking can cost otherwise than an answer's output on a deployment:
        only under a model_info reasoning price (genai-prices rates them alike)."""
        for info in (self.pricer.info_for(deployment.id, group), deployment.spec.model_info):
            if info is not None and info.output_cost_per_reasoning_token is not None:
                return True
        return False

    def generate(self, group: str, request: GenerateContentRequest) -> float:
        """The most a generateContent (or its stream) can cost: every output token priced
        as an answer's and as thinking, whichever costs more."""
        prompt = _request_prompt_tokens(request)
        most = 0.0
        for deployment in self.groups.group(group):
            output = output_cap(request, self.output_limit(deployment))
            most = max(most, self._cost(deployment, group, Tokens(prompt=prompt, output=output)))
            if self._thinking_apart(deployment, group):
                thinking = Tokens(prompt=prompt, thinking=output)
                most = max(most, self._cost(deployment, group, thinking))
        return most

    def embed(self, group: str, contents: Sequence[Content]) -> float:
        """The most an embedding of these contents can cost."""
        tokens = prompt_tokens(contents)
        counts = Tokens(prompt=tokens)
        return max((self._cost(d, group, counts) for d in self.groups.group(group)), default=0.0)
