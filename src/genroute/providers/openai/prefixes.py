"""OpenAI-compatible servers as data: auth header, path layout and body quirks.

Every model prefix served by the Chat Completions provider has one `CompatServer` row;
the provider code never branches on a prefix name. Where the key and base URL come from
(environment variables, default base, whether a key is required) is in the provider
catalog (`providers/catalog.py`), which each row carries as `facts`. `endpoint()` turns a
row, the deployment's params and the environment into URLs and headers (pure: no I/O).
What each model takes (reasoning_effort, sampling settings, the max-tokens field it
requires) is a model fact: `providers/models.py`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal
from urllib.parse import quote

from genroute.config import DeploymentParams
from genroute.errors import InvalidRequest
from genroute.providers.catalog import CATALOG, ProviderFacts, first_env
from genroute.providers.transport import path_segment

__all__ = [
    "AZURE_DEFAULT_API_VERSION",
    "AZURE_VERSION_ENV",
    "SERVERS",
    "CompatServer",
    "Endpoint",
    "endpoint",
    "missing_key_message",
]

AZURE_DEFAULT_API_VERSION = "2024-10-21"
AZURE_VERSION_ENV = ("AZURE_API_VERSION", "OPENAI_API_VERSION")


@dataclass(frozen=True, slots=True)
class CompatServer:
    """How to talk to one family of OpenAI-compatible servers, and what they accept."""

    facts: ProviderFacts
    auth: Literal["bearer", "api-key"] = "bearer"
    # Append /v1 to an api_base that does not end in a version (Ollama, vLLM roots).
    add_v1: bool = False
    # Azure's /openai/deployments/{deployment}/...?api-version= layout.
    azure: bool = False
    # The default max-tokens field; a model that requires max_completion_tokens (OpenAI's
    # reasoning models, providers/models.py) gets it on every server.
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    top_k: bool = False
    # False: the server takes no reasoning_effort at all; otherwise models that reason
    # (providers/models.py) get it.
    reasoning_effort: bool = True
    stream_usage: bool = True
    renames: Mapping[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        """The model prefix this row serves."""
        return self.facts.name

    @property
    def key_env(self) -> tuple[str, ...]:
        """Environment variables holding the key (from the catalog)."""
        return self.facts.key_env

    @property
    def base_env(self) -> tuple[str, ...]:
        """Environment variables holding the base URL (from the catalog)."""
        return self.facts.base_env

    @property
    def default_base(self) -> str | None:
        """The base URL when none is configured (from the catalog)."""
        return self.facts.default_base

    @property
    def key_required(self) -> bool:
        """Whether calls need a key (from the catalog)."""
        return self.facts.key_required


_VLLM = CompatServer(CATALOG["hosted_vllm"], add_v1=True, top_k=True)
_OLLAMA = CompatServer(CATALOG["ollama"], add_v1=True, top_k=True)
_ROWS = (
    CompatServer(CATALOG["openai"], max_tokens_field="max_completion_tokens"),
    CompatServer(
        CATALOG["azure"], auth="api-key", azure=True, max_tokens_field="max_completion_tokens"
    ),
    _VLLM,
    replace(_VLLM, facts=CATALOG["vllm"]),  # LiteLLM's other spelling
    _OLLAMA,
    replace(_OLLAMA, facts=CATALOG["ollama_chat"]),  # LiteLLM's other spelling
    CompatServer(CATALOG["groq"], max_tokens_field="max_completion_tokens"),
    CompatServer(CATALOG["deepseek"]),
    CompatServer(CATALOG["openrouter"], top_k=True),
    CompatServer(
        CATALOG["mistral"],
        reasoning_effort=False,
        stream_usage=False,
        renames={"seed": "random_seed"},
    ),
    CompatServer(CATALOG["together_ai"], top_k=True),
    CompatServer(CATALOG["xai"]),
)
SERVERS: Mapping[str, CompatServer] = MappingProxyType({row.prefix: row for row in _ROWS})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one deployment's calls go, and the headers they carry."""

    chat_url: str
    embeddings_url: str
    headers: dict[str, str]
    has_key: bool
    # The body fields this server family takes (see CompatServer).
    max_tokens_field: str
    top_k: bool
    reasoning_effort: bool
    stream_usage: bool
    renames: Mapping[str, str]


def _versioned(base: str) -> str:
    tail = base.rsplit("/", 1)[-1]
    return base if tail[:1] == "v" and tail[1:2].isdigit() else f"{base}/v1"


def endpoint(
    server: CompatServer,
    params: DeploymentParams,
    upstream_model: str,
    environ: Mapping[str, str] | None = None,
) -> Endpoint:
    """URLs and headers for `upstream_model` on `server`, from params, then env, then defaults."""
    env = os.environ if environ is None else environ
    base = (params.api_base or "").strip() or first_env(server.base_env, env)
    base = base or server.default_base or ""
    if not base:
        names = " or ".join(server.base_env)
        raise InvalidRequest(
            f"model {server.prefix}/{upstream_model}: no api_base; set params.api_base in the "
            f"config or the {names} environment variable"
        )
    base = base.rstrip("/")
    # openai/ in front of another server: the max-tokens field they all take, key optional.
    other_server = server.prefix == "openai" and "api.openai.com" not in base
    max_tokens_field = "max_tokens" if other_server else server.max_tokens_field
    if server.azure:
        version = params.api_version or first_env(AZURE_VERSION_ENV, env)
        version = quote(version or AZURE_DEFAULT_API_VERSION, safe="")
        root = f"{base.removesuffix('/openai')}/openai/deployments/{path_segment(upstream_model)}"
        chat_url = f"{root}/chat/completions?api-version={version}"
        embeddings_url = f"{root}/embeddings?api-version={version}"
    else:
        root = _versioned(base) if server.add_v1 else base
        chat_url, embeddings_url = f"{root}/chat/completions", f"{root}/embeddings"
    headers = {"content-type": "application/json"}
    key = (params.api_key or "").strip() or first_env(server.key_env, env)
    if key:
        if server.auth == "api-key":
            headers["api-key"] = key
        else:
            headers["authorization"] = f"Bearer {key}"
    if params.organization and server.prefix == "openai":
        headers["openai-organization"] = params.organization
    if params.extra_headers:
        headers.update(params.extra_headers)
    return Endpoint(
        chat_url=chat_url,
        embeddings_url=embeddings_url,
        headers=headers,
        has_key=bool(key) or not server.key_required or other_server,
        max_tokens_field=max_tokens_field,
        top_k=server.top_k,
        reasoning_effort=server.reasoning_effort,
        stream_usage=server.stream_usage,
        renames=server.renames,
    )


def missing_key_message(server: CompatServer, upstream_model: str) -> str:
    """How to fix a deployment that has no key."""
    names = " or ".join(server.key_env)
    return (
        f"no API key for {server.prefix}/{upstream_model}: set params.api_key in the config "
        f"(e.g. api_key: os.environ/{server.key_env[0]}) or the {names} environment variable"
    )
