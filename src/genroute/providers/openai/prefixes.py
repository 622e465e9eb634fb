"""OpenAI-compatible servers as data: base URL, auth header, path, env vars and quirks.

Every model prefix served by the Chat Completions provider has one `CompatServer` row;
the provider code never branches on a prefix name. `endpoint()` turns a row, the
deployment's params and the environment into URLs and headers (pure: no I/O).

| prefix        | default base                     | key env                            |
|---------------|----------------------------------|------------------------------------|
| openai        | https://api.openai.com/v1        | OPENAI_API_KEY                     |
| azure         | (AZURE_API_BASE required)        | AZURE_API_KEY, AZURE_OPENAI_API_KEY |
| hosted_vllm   | (HOSTED_VLLM_API_BASE required)  | HOSTED_VLLM_API_KEY (optional)     |
| ollama(_chat) | http://localhost:11434 (+ /v1)   | OLLAMA_API_KEY (optional)          |
| groq, deepseek, openrouter, mistral, together_ai, xai: their public /v1 roots      |
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal
from urllib.parse import quote

from genroute.config import DeploymentParams
from genroute.errors import InvalidRequest

AZURE_DEFAULT_API_VERSION = "2024-10-21"
AZURE_VERSION_ENV = ("AZURE_API_VERSION", "OPENAI_API_VERSION")
# OpenAI's reasoning model families (the profile axis: they take no sampling settings).
REASONING_MODELS = re.compile(r"^(?!.*-chat)(o\d|gpt-5|codex)")


@dataclass(frozen=True, slots=True)
class CompatServer:
    """How to reach one family of OpenAI-compatible servers, and what they accept."""

    prefix: str
    default_base: str | None
    base_env: tuple[str, ...]
    key_env: tuple[str, ...]
    key_required: bool = True
    auth: Literal["bearer", "api-key"] = "bearer"
    # Append /v1 to an api_base that does not end in a version (Ollama, vLLM roots).
    add_v1: bool = False
    # Azure's /openai/deployments/{deployment}/...?api-version= layout.
    azure: bool = False
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    top_k: bool = False
    reasoning_effort: bool = True
    stream_usage: bool = True
    renames: Mapping[str, str] = field(default_factory=dict)


_ROWS: dict[str, CompatServer] = {
    "openai": CompatServer(
        "openai",
        "https://api.openai.com/v1",
        ("OPENAI_API_BASE", "OPENAI_BASE_URL"),
        ("OPENAI_API_KEY",),
        max_tokens_field="max_completion_tokens",
    ),
    "azure": CompatServer(
        "azure",
        None,
        ("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"),
        ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"),
        auth="api-key",
        azure=True,
        max_tokens_field="max_completion_tokens",
    ),
    "hosted_vllm": CompatServer(
        "hosted_vllm",
        None,
        ("HOSTED_VLLM_API_BASE",),
        ("HOSTED_VLLM_API_KEY",),
        key_required=False,
        add_v1=True,
        top_k=True,
    ),
    "ollama": CompatServer(
        "ollama",
        "http://localhost:11434",
        ("OLLAMA_API_BASE",),
        ("OLLAMA_API_KEY",),
        key_required=False,
        add_v1=True,
        top_k=True,
    ),
    "groq": CompatServer(
        "groq",
        "https://api.groq.com/openai/v1",
        ("GROQ_API_BASE",),
        ("GROQ_API_KEY",),
        max_tokens_field="max_completion_tokens",
    ),
    "deepseek": CompatServer(
        "deepseek", "https://api.deepseek.com/v1", ("DEEPSEEK_API_BASE",), ("DEEPSEEK_API_KEY",)
    ),
    "openrouter": CompatServer(
        "openrouter",
        "https://openrouter.ai/api/v1",
        ("OPENROUTER_API_BASE",),
        ("OPENROUTER_API_KEY",),
        top_k=True,
    ),
    "mistral": CompatServer(
        "mistral",
        "https://api.mistral.ai/v1",
        ("MISTRAL_API_BASE",),
        ("MISTRAL_API_KEY",),
        reasoning_effort=False,
        stream_usage=False,
        renames={"seed": "random_seed"},
    ),
    "together_ai": CompatServer(
        "together_ai",
        "https://api.together.xyz/v1",
        ("TOGETHER_AI_API_BASE", "TOGETHERAI_API_BASE"),
        ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY", "TOGETHER_AI_API_KEY"),
        top_k=True,
    ),
    "xai": CompatServer("xai", "https://api.x.ai/v1", ("XAI_API_BASE",), ("XAI_API_KEY",)),
}
# LiteLLM's other spellings of the same servers.
SERVERS: Mapping[str, CompatServer] = MappingProxyType(
    {**_ROWS, "vllm": _ROWS["hosted_vllm"], "ollama_chat": _ROWS["ollama"]}
)


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


def first_env(names: tuple[str, ...], environ: Mapping[str, str]) -> str | None:
    """The value of the first of `names` that is set and not empty."""
    return next((environ[n].strip() for n in names if environ.get(n, "").strip()), None)


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
    base = (params.api_base or first_env(server.base_env, env) or server.default_base or "").strip()
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
        root = f"{base.removesuffix('/openai')}/openai/deployments/{quote(upstream_model, safe='')}"
        chat_url = f"{root}/chat/completions?api-version={version}"
        embeddings_url = f"{root}/embeddings?api-version={version}"
    else:
        root = _versioned(base) if server.add_v1 else base
        chat_url, embeddings_url = f"{root}/chat/completions", f"{root}/embeddings"
    headers = {"content-type": "application/json"}
    key = params.api_key.strip() if params.api_key else first_env(server.key_env, env)
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


def takes_sampling(server: CompatServer, model: str) -> bool:
    """False for OpenAI's reasoning families (o1, o3, o4, gpt-5...), which refuse
    temperature, top_p, penalties and logprobs; every other model takes them."""
    if server.prefix not in ("openai", "azure"):
        return True
    return REASONING_MODELS.match(model.rsplit("/", 1)[-1].lower()) is None


def missing_key_message(server: CompatServer, upstream_model: str) -> str:
    """How to fix a deployment that has no key."""
    names = " or ".join(server.key_env)
    return (
        f"no API key for {server.prefix}/{upstream_model}: set params.api_key in the config "
        f"(e.g. api_key: os.environ/{server.key_env[0]}) or the {names} environment variable"
    )
