"""`Router.describe` / `list_models`: methods, token limits and `thinking` from the model
facts (genroute.providers.models), `model_info` winning; wildcards and aliases."""

from __future__ import annotations

from typing import Any

import pytest

from genroute.routing import Router
from genroute.wire import Model

GENERATE = ["generateContent", "streamGenerateContent", "countTokens"]
EMBED = ["embedContent", "batchEmbedContents", "countTokens"]


def entry(name: str, model: str, **info: Any) -> dict[str, Any]:
    params = {"model": model, "api_key": "k", "api_base": "http://upstream.invalid"}
    item: dict[str, Any] = {"model_name": name, "params": params}
    if info:
        item["model_info"] = info
    return item


def described(*entries: dict[str, Any], **settings: Any) -> dict[str, Model]:
    router = Router(list(entries), router_settings=settings)
    return {m.name.removeprefix("models/"): m for m in router.list_models()}


def test_chat_models_get_generate_methods_and_limits_from_the_table() -> None:
    models = described(
        entry("flash", "gemini/gemini-2.5-flash"),
        entry("gpt", "openai/gpt-4o-mini"),
        entry("reasoner", "openai/o3-mini"),
        entry("sonnet", "anthropic/claude-sonnet-4-5-20250929"),
    )
    flash, gpt, reasoner, sonnet = (models[n] for n in ("flash", "gpt", "reasoner", "sonnet"))
    assert flash.supported_generation_methods == GENERATE
    assert (flash.input_token_limit, flash.output_token_limit) == (1_048_576, 65_536)
    assert flash.thinking is True
    assert (gpt.input_token_limit, gpt.output_token_limit, gpt.thinking) == (128_000, 16_384, False)
    assert (reasoner.input_token_limit, reasoner.output_token_limit) == (200_000, 100_000)
    assert reasoner.thinking is True
    # Claude: output from the family table, input from genai-prices' context window.
    assert (sonnet.input_token_limit, sonnet.output_token_limit, sonnet.thinking) == (
        200_000,
        64_000,
        True,
    )


@pytest.mark.parametrize(
    ("model", "input_limit"),
    [
        ("gemini/gemini-embedding-001", 2048),
        ("gemini/text-embedding-004", 2048),
        ("gemini/embedding-001", 2048),
        ("openai/text-embedding-3-small", 8191),
        ("azure/embeddings-prod", None),  # the name says nothing: mode from model_info only
    ],
)
def test_embedding_models_get_embed_methods_without_model_info(
    model: str, input_limit: int | None
) -> None:
    found = described(entry("e", model))["e"]
    if input_limit is None:
        assert found.supported_generation_methods == GENERATE
        return
    assert found.supported_generation_methods == EMBED
    assert found.input_token_limit == input_limit
    assert found.output_token_limit is None and found.thinking is None


def test_model_info_wins_over_the_facts() -> None:
    models = described(
        entry("emb", "azure/embeddings-prod", mode="embedding", max_input_tokens=8191),
        entry("big", "openai/gpt-4o", max_input_tokens=64_000, max_output_tokens=2048),
        entry("legacy", "openai/gpt-4o", max_tokens=32_000),
        entry("plain", "openai/o3", supports_reasoning=False),
        entry("mine", "hosted_vllm/qwen3-32b", supports_reasoning=True, max_output_tokens=8192),
    )
    assert models["emb"].supported_generation_methods == EMBED
    assert models["emb"].input_token_limit == 8191
    assert (models["big"].input_token_limit, models["big"].output_token_limit) == (64_000, 2048)
    assert models["legacy"].input_token_limit == 32_000
    assert models["plain"].thinking is False
    assert (models["mine"].thinking, models["mine"].output_token_limit) == (True, 8192)
    assert models["mine"].input_token_limit is None  # genai-prices does not know it


def test_azure_deployment_is_described_by_its_base_model() -> None:
    found = described(entry("az", "azure/prod-reasoner", base_model="azure/o4-mini"))["az"]
    assert (found.input_token_limit, found.output_token_limit, found.thinking) == (
        200_000,
        100_000,
        True,
    )
    assert found.version == "azure/o4-mini"
    unknown = described(entry("az", "azure/prod-gpt"))["az"]
    assert unknown.input_token_limit is None and unknown.output_token_limit is None
    assert unknown.thinking is None and unknown.supported_generation_methods == GENERATE


def test_unknown_models_leave_the_limits_out() -> None:
    found = described(entry("local", "ollama/llama3.2"))["local"]
    assert found.supported_generation_methods == GENERATE
    assert (found.input_token_limit, found.output_token_limit, found.thinking) == (None,) * 3


def test_a_wildcard_entry_is_described_as_its_pattern_without_resolving_it() -> None:
    router = Router(
        [
            entry("gemini-*", "gemini/gemini-*"),
            entry("text-embedding-*", "gemini/text-embedding-*"),
            entry("odd-*", "nosuch/odd-*"),  # never resolved, so never refused
        ]
    )
    models = {m.name: m for m in router.list_models()}
    pattern = models["models/gemini-*"]
    assert pattern.supported_generation_methods == GENERATE
    assert (pattern.input_token_limit, pattern.output_token_limit) == (None, None)
    assert models["models/text-embedding-*"].supported_generation_methods == EMBED
    assert models["models/odd-*"].supported_generation_methods == GENERATE
    assert not router._groups.all_deployments()  # listing built no deployment
    # A concrete name the wildcard serves is described by its own facts.
    flash = router.describe("models/gemini-2.5-flash")
    assert flash.name == "models/gemini-2.5-flash"
    assert (flash.input_token_limit, flash.output_token_limit, flash.thinking) == (
        1_048_576,
        65_536,
        True,
    )


def test_an_alias_is_described_as_its_target() -> None:
    models = described(
        entry("emb", "openai/text-embedding-3-large"),
        entry("gpt", "openai/gpt-4.1"),
        model_group_alias={"gemini-2.5-pro": "gpt", "gemini-embedding-001": "emb"},
    )
    assert models["gemini-2.5-pro"].supported_generation_methods == GENERATE
    assert models["gemini-2.5-pro"].output_token_limit == 32_768
    assert models["gemini-2.5-pro"].thinking is False
    assert models["gemini-embedding-001"].supported_generation_methods == EMBED


def test_the_demo_serves_every_method() -> None:
    found = described({"model_name": "demo", "params": {"model": "demo/echo"}})["demo"]
    assert found.supported_generation_methods == [*GENERATE, "embedContent", "batchEmbedContents"]
