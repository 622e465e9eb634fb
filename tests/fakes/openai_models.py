"""What OpenAI's Chat Completions API refuses per model, for the fake OpenAI upstream.

OpenAI checks a body's fields against the model: a model that does not reason refuses
``reasoning_effort``; a reasoning model (o1, o3, o4-mini, gpt-5...) refuses sampling
settings, ``max_tokens`` (it takes ``max_completion_tokens``) and the ``reasoning_effort``
values it does not know. Each refusal is a 400 with OpenAI's own message, ``param`` and
``code`` (``unsupported_parameter`` or ``unsupported_value``), as quoted in client bug
reports. This table is written from OpenAI's behaviour, not from genroute's model facts,
so that a genroute table that goes wrong meets a refusal here.

A model id is matched from its start, lower-cased, without a fine-tune's ``ft:``; a name
no row matches (an open-weight model behind vLLM...) is refused nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["ModelRules", "Refusal", "model_refusal", "rules_for"]

_LMH = ("low", "medium", "high")


@dataclass(frozen=True, slots=True)
class ModelRules:
    """What one family of OpenAI models takes."""

    pattern: str
    reasons: bool
    # The reasoning_effort values taken; () refuses the field; None takes any value.
    efforts: tuple[str, ...] | None = ()
    # o3-mini refuses temperature as a parameter (any value), the others as a value (not 1).
    temperature_refused_outright: bool = False


_ROWS = (
    # Models that do not reason: reasoning_effort is an unsupported parameter.
    ModelRules(r"gpt-4o", reasons=False),
    ModelRules(r"chatgpt-4o", reasons=False),
    ModelRules(r"gpt-4\.1", reasons=False),
    ModelRules(r"gpt-4\.5", reasons=False),
    ModelRules(r"gpt-4(-|$)", reasons=False),
    ModelRules(r"gpt-3\.5", reasons=False),
    ModelRules(r"gpt-5-chat", reasons=False),
    # Reasoning models.
    ModelRules(r"o1-(mini|preview)", reasons=True, efforts=()),
    ModelRules(r"o3-mini", reasons=True, efforts=_LMH, temperature_refused_outright=True),
    ModelRules(r"o\d", reasons=True, efforts=_LMH),
    ModelRules(r"gpt-5-pro", reasons=True, efforts=("high",)),
    ModelRules(r"gpt-5(\.\d+)?-codex", reasons=True, efforts=None),
    ModelRules(r"gpt-5\.\d+-chat", reasons=True, efforts=("medium",)),
    ModelRules(r"gpt-5\.1(?!\d)", reasons=True, efforts=("none", *_LMH)),
    ModelRules(r"gpt-5\.\d", reasons=True, efforts=("none", *_LMH, "xhigh")),
    ModelRules(r"gpt-5", reasons=True, efforts=("minimal", *_LMH)),
)
_SAMPLING = ("top_p", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs")


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused field: OpenAI's message, ``param`` and ``code``."""

    message: str
    param: str
    code: str


def rules_for(model: str) -> ModelRules | None:
    """The rules of an OpenAI model id; None for a model OpenAI does not have."""
    name = model.strip().lower().removeprefix("ft:")
    return next((row for row in _ROWS if re.match(row.pattern, name)), None)


def _unsupported(param: str, tail: str = "") -> Refusal:
    message = f"Unsupported parameter: '{param}' is not supported with this model.{tail}"
    return Refusal(message, param, "unsupported_parameter")


def _listed(values: tuple[str, ...]) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])}, and {quoted[-1]}"


def _reasoning_refusal(rules: ModelRules, body: dict[str, Any]) -> Refusal | None:
    if "max_tokens" in body:
        return _unsupported("max_tokens", " Use 'max_completion_tokens' instead.")
    temperature = body.get("temperature")
    if temperature is not None and (rules.temperature_refused_outright or temperature != 1):
        if rules.temperature_refused_outright:
            return _unsupported("temperature")
        return Refusal(
            f"Unsupported value: 'temperature' does not support {temperature} with this "
            "model. Only the default (1) value is supported.",
            "temperature",
            "unsupported_value",
        )
    for param in _SAMPLING:
        if body.get(param) is not None:
            return _unsupported(param)
    effort = body.get("reasoning_effort")
    if effort is None or rules.efforts is None:
        return None
    if not rules.efforts:
        return _unsupported("reasoning_effort")
    if effort not in rules.efforts:
        return Refusal(
            f"Unsupported value: 'reasoning_effort' does not support '{effort}' with this "
            f"model. Supported values are: {_listed(rules.efforts)}.",
            "reasoning_effort",
            "unsupported_value",
        )
    return None


def model_refusal(model: str, body: dict[str, Any]) -> Refusal | None:
    """The first field of a chat body that OpenAI refuses for ``model``, if any."""
    rules = rules_for(model)
    if rules is None:
        return None
    if not rules.reasons:
        return _unsupported("reasoning_effort") if body.get("reasoning_effort") else None
    return _reasoning_refusal(rules, body)
