"""The compatible-server table: URLs, auth headers, env vars and body quirks per prefix."""

from __future__ import annotations

from typing import Any

import pytest

from genroute.config import DeploymentParams
from genroute.errors import InvalidRequest
from genroute.providers.openai.prefixes import (
    AZURE_DEFAULT_API_VERSION,
    SERVERS,
    endpoint,
)
from genroute.providers.registry import NOT_YET_SERVED, PROVIDERS, split_model


def params(**kw: Any) -> DeploymentParams:
    return DeploymentParams(model="x/y", **kw)


@pytest.mark.parametrize(
    ("prefix", "env", "chat_url"),
    [
        ("openai", {}, "https://api.openai.com/v1/chat/completions"),
        ("openai", {"OPENAI_BASE_URL": "http://proxy:8080/v1/"}, "http://proxy:8080/v1/chat/completions"),
        ("openai", {"OPENAI_API_BASE": "http://a/v1", "OPENAI_BASE_URL": "http://b/v1"}, "http://a/v1/chat/completions"),
        ("groq", {}, "https://api.groq.com/openai/v1/chat/completions"),
        ("deepseek", {}, "https://api.deepseek.com/v1/chat/completions"),
        ("openrouter", {}, "https://openrouter.ai/api/v1/chat/completions"),
        ("mistral", {}, "https://api.mistral.ai/v1/chat/completions"),
        ("together_ai", {}, "https://api.together.xyz/v1/chat/completions"),
        ("xai", {}, "https://api.x.ai/v1/chat/completions"),
        ("ollama", {}, "http://localhost:11434/v1/chat/completions"),
        ("ollama_chat", {"OLLAMA_API_BASE": "http://gpu:11434"}, "http://gpu:11434/v1/chat/completions"),
        ("hosted_vllm", {"HOSTED_VLLM_API_BASE": "http://vllm:8000"}, "http://vllm:8000/v1/chat/completions"),
        ("vllm", {"HOSTED_VLLM_API_BASE": "http://vllm:8000/v1"}, "http://vllm:8000/v1/chat/completions"),
    ],
)  # fmt: skip
def test_default_and_env_base_urls(prefix: str, env: dict[str, str], chat_url: str) -> None:
    found = endpoint(SERVERS[prefix], params(), "m", env)
    assert found.chat_url == chat_url
    assert found.embeddings_url == chat_url.replace("/chat/completions", "/embeddings")


def test_api_base_in_the_config_wins_over_the_environment() -> None:
    env = {"HOSTED_VLLM_API_BASE": "http://env:1"}
    found = endpoint(SERVERS["hosted_vllm"], params(api_base="http://cfg:2/"), "m", env)
    assert found.chat_url == "http://cfg:2/v1/chat/completions"


def test_azure_deployment_path_version_and_api_key_header() -> None:
    env = {"AZURE_API_BASE": "https://res.openai.azure.com/", "AZURE_OPENAI_API_KEY": "az-k"}
    found = endpoint(SERVERS["azure"], params(), "my gpt", env)
    root = "https://res.openai.azure.com/openai/deployments/my%20gpt"
    assert found.chat_url == f"{root}/chat/completions?api-version={AZURE_DEFAULT_API_VERSION}"
    assert found.embeddings_url == f"{root}/embeddings?api-version={AZURE_DEFAULT_API_VERSION}"
    assert found.headers["api-key"] == "az-k" and "authorization" not in found.headers
    assert found.max_tokens_field == "max_completion_tokens"
    pinned = endpoint(SERVERS["azure"], params(api_version="2025-01-01-preview"), "d", env)
    assert pinned.chat_url.endswith("?api-version=2025-01-01-preview")
    from_env = endpoint(SERVERS["azure"], params(), "d", {**env, "AZURE_API_VERSION": "2024-06-01"})
    assert from_env.chat_url.endswith("?api-version=2024-06-01")
    with_suffix = endpoint(SERVERS["azure"], params(api_base="https://r.example/openai"), "d", env)
    assert with_suffix.chat_url.startswith("https://r.example/openai/deployments/d/")


def test_keys_from_config_then_env_and_bearer_auth() -> None:
    env = {"TOGETHER_API_KEY": "t-env"}
    assert endpoint(SERVERS["together_ai"], params(), "m", env).headers["authorization"] == (
        "Bearer t-env"
    )
    found = endpoint(SERVERS["together_ai"], params(api_key="cfg"), "m", env)
    assert found.headers["authorization"] == "Bearer cfg"
    openai = endpoint(
        SERVERS["openai"],
        params(organization="org-1", extra_headers={"x-trace": "1"}),
        "m",
        {"OPENAI_API_KEY": "sk"},
    )
    assert openai.headers["openai-organization"] == "org-1" and openai.headers["x-trace"] == "1"


def test_which_servers_need_a_key() -> None:
    assert not endpoint(SERVERS["openai"], params(), "m", {}).has_key
    assert not endpoint(SERVERS["groq"], params(), "m", {}).has_key
    assert endpoint(SERVERS["ollama"], params(), "m", {}).has_key
    local = endpoint(SERVERS["openai"], params(api_base="http://127.0.0.1:8080/v1"), "m", {})
    assert local.has_key and "authorization" not in local.headers
    assert local.max_tokens_field == "max_tokens"


def test_a_server_without_a_default_base_needs_one() -> None:
    with pytest.raises(InvalidRequest, match="HOSTED_VLLM_API_BASE"):
        endpoint(SERVERS["hosted_vllm"], params(), "m", {})
    with pytest.raises(InvalidRequest, match="AZURE_API_BASE"):
        endpoint(SERVERS["azure"], params(), "m", {})


def test_body_quirks_are_data() -> None:
    assert endpoint(SERVERS["openai"], params(), "m", {}).max_tokens_field == (
        "max_completion_tokens"
    )
    vllm = endpoint(SERVERS["hosted_vllm"], params(api_base="http://v"), "m", {})
    assert (vllm.max_tokens_field, vllm.top_k) == ("max_tokens", True)
    mistral = endpoint(SERVERS["mistral"], params(), "m", {})
    assert not mistral.reasoning_effort and not mistral.stream_usage
    assert dict(mistral.renames) == {"seed": "random_seed"}


def test_every_prefix_is_registered_and_served() -> None:
    for prefix in SERVERS:
        assert prefix in PROVIDERS and prefix not in NOT_YET_SERVED
        assert split_model(f"{prefix}/some/model") == (prefix, "some/model")


def test_embedded_default_registers_openai_models_with_a_key() -> None:
    from genroute.defaults import default_config

    # Without a key only the demo serves (also gemini-cli's own `gemini-*` names).
    assert {e.params.model for e in default_config({}).model_list} == {"demo/echo"}
    config = default_config({"OPENAI_API_KEY": "sk-x", "GEMINI_API_KEY": "g"})
    by_name = {e.model_name: e.params for e in config.model_list}
    assert by_name["openai/*"].model == "openai/*" and by_name["gpt-*"].model == "openai/gpt-*"
    assert by_name["gpt-*"].api_key == "sk-x" and "demo" not in by_name
    names = [e.model_name for e in config.model_list]
    assert names.index("text-embedding-3-*") < names.index("text-embedding-*")
