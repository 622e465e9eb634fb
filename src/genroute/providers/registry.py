"""Which provider serves a model string such as `gemini/gemini-2.5-flash`.

Model ids are parsed here and nowhere else. LiteLLM's prefixes are recognised; those that
this version cannot serve yet (catalog.py: `served=False`) get a clear error instead of a
wrong guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from genroute.errors import InvalidRequest
from genroute.providers.anthropic import AnthropicProvider
from genroute.providers.base import DeploymentSpec, Provider
from genroute.providers.bedrock import BedrockProvider
from genroute.providers.catalog import not_served
from genroute.providers.demo import DemoProvider
from genroute.providers.gemini import GeminiProvider
from genroute.providers.openai import SERVERS as OPENAI_COMPATIBLE
from genroute.providers.openai import OpenAIProvider
from genroute.providers.transport import Transport
from genroute.providers.vertex import vertex_provider

__all__ = [
    "ALIASES",
    "NOT_YET_SERVED",
    "PROVIDERS",
    "ProviderFactory",
    "build_provider",
    "split_model",
]


class ProviderFactory(Protocol):
    """Builds a provider for a deployment; given the shared HTTP transport."""

    def __call__(self, spec: DeploymentSpec, transport: Transport) -> Provider: ...


PROVIDERS: Mapping[str, ProviderFactory] = MappingProxyType(
    {
        "gemini": GeminiProvider,
        "demo": DemoProvider,
        "anthropic": AnthropicProvider,
        "bedrock": BedrockProvider,
        "vertex_ai": vertex_provider,
        **dict.fromkeys(OPENAI_COMPATIBLE, OpenAIProvider),
    }
)

# Prefixes LiteLLM uses that map onto a provider genroute serves.
ALIASES: Mapping[str, str] = MappingProxyType({"google_ai_studio": "gemini"})

# Prefixes LiteLLM knows that genroute recognises but does not serve in this version.
NOT_YET_SERVED = not_served()


def split_model(model: str) -> tuple[str, str]:
    """`provider/upstream-model` → (provider, upstream model). Bare `gemini-*` ids mean Gemini."""
    model = model.strip()
    prefix, sep, rest = model.partition("/")
    if sep and rest:
        provider = ALIASES.get(prefix, prefix)
        if provider in PROVIDERS:
            return provider, rest
        if prefix in NOT_YET_SERVED:
            raise InvalidRequest(
                f"model {model!r}: provider {prefix!r} is not served by this genroute version; "
                f"served providers: {', '.join(sorted(PROVIDERS))}"
            )
        raise InvalidRequest(
            f"model {model!r}: unknown provider prefix {prefix!r}; "
            f"use one of {', '.join(sorted(PROVIDERS))}, e.g. gemini/gemini-2.5-flash"
        )
    if model.startswith(("gemini-", "gemma-", "text-embedding-", "embedding-")):
        return "gemini", model
    raise InvalidRequest(
        f"model {model!r} names no provider; write it as provider/model, e.g. gemini/{model}"
    )


def build_provider(spec: DeploymentSpec, transport: Transport) -> Provider:
    """The provider instance for a resolved deployment, sending through `transport`."""
    return PROVIDERS[spec.provider](spec, transport)
