"""The model-facts table (providers/models.py): families, `model_info` overrides, and what
the OpenAI translator may send each deployment because of them."""

from __future__ import annotations

from typing import Any

import pytest

from genroute.config import DeploymentParams, ModelInfo
from genroute.providers.anthropic.profile import profile_for
from genroute.providers.base import DeploymentSpec
from genroute.providers.models import (
    CLAUDE,
    EFFORT_ORDER,
    TABLES,
    catalogue_context_window,
    closest_effort,
    model_facts,
    model_id,
)
from genroute.providers.openai import translate
from genroute.providers.openai.prefixes import SERVERS, endpoint
from genroute.providers.openai.provider import chat_options
from genroute.providers.registry import PROVIDERS, split_model
from genroute.wire import GenerateContentRequest

ENVIRON = {"AZURE_API_BASE": "https://example.openai.azure.com", "HOSTED_VLLM_API_BASE": "http://v"}


def options(model: str, **info: Any) -> translate.ChatOptions:
    provider, upstream = split_model(model)
    params = DeploymentParams(model=model)
    spec = DeploymentSpec(provider, upstream, params, ModelInfo(**info))
    return chat_options(spec, endpoint(SERVERS[provider], params, upstream, ENVIRON))


def send(model: str, generation: dict[str, Any], **info: Any) -> translate.ChatRequest:
    request = GenerateContentRequest.model_validate(
        {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": generation}
    )
    return translate.to_wire(request, options(model, **info))


GEMINI_CLI = {
    "temperature": 0,
    "topP": 1,
    "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 8192},
}


@pytest.mark.parametrize(
    ("model", "reasons", "sampling", "field"),
    [
        ("openai/gpt-4o", False, True, None),
        ("openai/gpt-4o-mini-2024-07-18", False, True, None),
        ("openai/gpt-4.1", False, True, None),
        ("openai/gpt-4.1-nano", False, True, None),
        ("openai/gpt-3.5-turbo", False, True, None),
        ("openai/chatgpt-4o-latest", False, True, None),
        ("openai/ft:gpt-4o-mini-2024-07-18:org::abc", False, True, None),
        ("openai/o1", True, False, "max_completion_tokens"),
        ("openai/o1-mini", True, False, "max_completion_tokens"),
        ("openai/o3-mini-2025-01-31", True, False, "max_completion_tokens"),
        ("openai/o4-mini", True, False, "max_completion_tokens"),
        ("openai/gpt-5", True, False, "max_completion_tokens"),
        ("openai/gpt-5-nano", True, False, "max_completion_tokens"),
        ("openai/gpt-5-chat-latest", False, True, None),
        ("openai/gpt-5.1-chat-latest", True, False, "max_completion_tokens"),
        ("openai/codex-mini-latest", True, False, "max_completion_tokens"),
        ("azure/o4-mini", True, False, "max_completion_tokens"),
        ("openai/text-embedding-3-small", False, True, None),
        ("hosted_vllm/o3-like-local-model", None, True, None),
        ("groq/openai/gpt-oss-120b", True, True, None),
        ("ollama/llama3.2", None, True, None),
        ("gemini/gemini-2.5-flash", True, True, None),
        ("gemini/gemini-3-pro-preview", True, True, None),
        ("gemini/gemini-2.0-flash", False, True, None),
        ("anthropic/claude-3-7-sonnet-latest", True, True, None),
        ("anthropic/claude-3-5-haiku-latest", False, True, None),
        ("anthropic/claude-opus-4-7", True, False, None),
    ],
)
def test_families(model: str, reasons: bool | None, sampling: bool, field: str | None) -> None:
    provider, upstream = split_model(model)
    facts = model_facts(provider, upstream)
    assert (facts.reasons, facts.sampling, facts.max_tokens_field) == (reasons, sampling, field)


@pytest.mark.parametrize(
    ("model", "mode"),
    [
        ("gemini/gemini-embedding-001", "embedding"),
        ("gemini/text-embedding-004", "embedding"),
        ("gemini/embedding-001", "embedding"),
        ("gemini/gemini-2.5-pro", "chat"),
        ("openai/text-embedding-3-large", "embedding"),
        ("ollama/nomic-embed-text", "embedding"),
        ("mistral/mistral-embed", "embedding"),
        ("openai/gpt-4o", "chat"),
    ],
)
def test_embedding_modes(model: str, mode: str) -> None:
    assert model_facts(*split_model(model)).mode == mode


def test_every_served_prefix_but_anthropic_and_demo_has_a_table() -> None:
    assert set(PROVIDERS) - set(TABLES) == {"anthropic", "demo"}
    assert model_id("Azure/FT:GPT-4o") == "gpt-4o"


def test_model_info_overrides_each_fact() -> None:
    facts = model_facts(
        "azure",
        "prod-deployment",
        ModelInfo(base_model="azure/o3-mini", max_input_tokens=1000, max_output_tokens=10),
    )
    assert (facts.model, facts.reasons, facts.sampling) == ("azure/o3-mini", True, False)
    assert (facts.input_token_limit(), facts.output_limit) == (1000, 10)
    assert model_facts("openai", "gpt-4o", ModelInfo(max_tokens=5)).input_limit == 5
    assert model_facts("gemini", "my-embedder", ModelInfo(mode="embedding")).mode == "embedding"
    assert model_facts("openai", "gpt-4o", ModelInfo(mode="completion")).mode == "chat"
    off = model_facts("openai", "o3", ModelInfo(supports_reasoning=False))
    assert (off.reasons, off.takes_effort, off.sampling) == (False, False, False)
    # An OpenAI/Azure model the table does not know, declared reasoning: OpenAI's rules.
    on = model_facts("azure", "my-reasoner", ModelInfo(supports_reasoning=True))
    assert (on.reasons, on.efforts, on.sampling) == (True, None, False)
    assert on.max_tokens_field == "max_completion_tokens"
    # Elsewhere only reasoning_effort is switched on.
    vllm = model_facts("hosted_vllm", "qwen3", ModelInfo(supports_reasoning=True))
    assert (vllm.reasons, vllm.sampling, vllm.max_tokens_field) == (True, True, None)


def test_input_limits_come_from_genai_prices_once_per_model() -> None:
    catalogue_context_window.cache_clear()
    assert model_facts("anthropic", "claude-sonnet-4-5").input_token_limit() == 200_000
    assert model_facts("openai", "gpt-4o").input_token_limit() == 128_000  # the table's
    assert model_facts("openai", "no-such-model").input_token_limit() is None
    assert model_facts("ollama", "llama3.2").input_token_limit() is None  # not priced there
    assert model_facts("gemini", "gemini-*").input_token_limit() is None  # a pattern
    assert catalogue_context_window.cache_info().misses == 2
    model_facts("anthropic", "claude-sonnet-4-5").input_token_limit()
    assert catalogue_context_window.cache_info().misses == 2


@pytest.mark.parametrize(
    ("wanted", "taken", "sent"),
    [
        ("xhigh", ("low", "medium", "high"), "high"),
        ("minimal", ("low", "medium", "high"), "low"),
        ("minimal", ("none", "low", "medium", "high"), "low"),  # a tie: more thinking
        ("high", ("medium",), "medium"),
        ("medium", ("minimal", "low", "medium", "high"), "medium"),
        ("xhigh", (), "xhigh"),  # not known: sent as asked
    ],
)
def test_closest_effort(wanted: str, taken: tuple[str, ...], sent: str) -> None:
    assert closest_effort(wanted, taken) == sent
    assert set(taken) <= set(EFFORT_ORDER)


@pytest.mark.parametrize(
    "model",
    [
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "openai/gpt-4.1",
        "openai/gpt-3.5-turbo",
        "groq/llama-3.3-70b-versatile",
    ],
)
def test_gemini_cli_thinking_config_is_left_out_for_models_that_do_not_reason(model: str) -> None:
    out = send(model, GEMINI_CLI)
    assert "reasoning_effort" not in out.body
    assert out.body["temperature"] == 0 and out.body["top_p"] == 1
    assert any(d.startswith("thinkingConfig (") for d in out.dropped)


@pytest.mark.parametrize(
    ("model", "thinking", "effort"),
    [
        ("openai/o3", {"thinkingBudget": 0}, "low"),
        ("openai/gpt-5-mini", {"thinkingBudget": 0}, "minimal"),
        ("openai/gpt-5.1", {"thinkingBudget": 0}, "none"),
        ("openai/gpt-5.2", {"thinkingLevel": "XHIGH"}, "xhigh"),
        ("openai/gpt-5.1", {"thinkingLevel": "XHIGH"}, "high"),
        ("openai/gpt-5.1-codex", {"thinkingBudget": 0}, "low"),
        ("openai/gpt-5.1-chat-latest", {"thinkingLevel": "HIGH"}, "medium"),
        ("openai/o4-mini", {"thinkingBudget": 8192}, "medium"),
        ("openai/o1-mini", {"thinkingLevel": "HIGH"}, None),  # reasons, takes no effort
        ("openai/gpt-5", {"thinkingBudget": -1}, None),  # dynamic: the server's default
        ("groq/openai/gpt-oss-20b", {"thinkingBudget": 0}, "low"),
        ("xai/grok-3-mini", {"thinkingLevel": "MEDIUM"}, "high"),
        ("xai/grok-4", {"thinkingLevel": "HIGH"}, None),
        ("mistral/magistral-medium-latest", {"thinkingLevel": "HIGH"}, None),  # server: never
    ],
)
def test_reasoning_models_get_an_effort_they_take(
    model: str, thinking: dict[str, Any], effort: str | None
) -> None:
    out = send(model, {"temperature": 0.5, "thinkingConfig": thinking})
    assert out.body.get("reasoning_effort") == effort


def test_supports_reasoning_switches_reasoning_effort_on_and_off() -> None:
    on = send("azure/my-reasoner", GEMINI_CLI, supports_reasoning=True)
    assert on.body["reasoning_effort"] == "medium" and "temperature" not in on.body
    vllm = send("hosted_vllm/Qwen/Qwen3-8B", GEMINI_CLI, supports_reasoning=True)
    assert vllm.body["reasoning_effort"] == "medium" and vllm.body["temperature"] == 0
    off = send("openai/o3", GEMINI_CLI, supports_reasoning=False)
    assert "reasoning_effort" not in off.body and "temperature" not in off.body
    unknown = send("azure/prod-gpt", GEMINI_CLI)
    assert "reasoning_effort" not in unknown.body and unknown.body["temperature"] == 0


def test_max_tokens_field_per_model_and_server() -> None:
    assert options("openai/gpt-4o").max_tokens_field == "max_completion_tokens"
    assert options("hosted_vllm/llama").max_tokens_field == "max_tokens"
    # openai/ in front of another server: max_tokens, except for a model that requires
    # max_completion_tokens.
    proxy = {"api_base": "https://proxy.example.com/v1"}
    for model, field in (("gpt-4o", "max_tokens"), ("o3-mini", "max_completion_tokens")):
        params = DeploymentParams(model=f"openai/{model}", **proxy)
        spec = DeploymentSpec("openai", model, params)
        assert (
            chat_options(spec, endpoint(SERVERS["openai"], params, model, {})).max_tokens_field
            == field
        )


@pytest.mark.parametrize(
    ("model", "max_tokens", "thinking", "sampling"),
    [
        ("claude-3-haiku-20240307", 4096, "none", True),
        ("claude-3-5-sonnet-latest", 8192, "none", True),
        ("claude-3-7-sonnet-latest", 64_000, "budget", True),
        ("claude-opus-4-20250514", 32_000, "budget", True),
        ("claude-opus-4-1", 32_000, "budget", True),
        ("claude-sonnet-4-0", 64_000, "budget", True),
        ("claude-haiku-4-5", 64_000, "budget", True),
        ("claude-opus-4-6", 64_000, "adaptive", True),
        ("claude-opus-4-7", 64_000, "adaptive", False),
        ("my-proxy-model", 4096, "budget", True),
    ],
)
def test_the_anthropic_profile_reads_the_claude_rows(
    model: str, max_tokens: int, thinking: str, sampling: bool
) -> None:
    spec = DeploymentSpec("anthropic", model, DeploymentParams(model=f"anthropic/{model}"))
    profile = profile_for(spec)
    assert (profile.max_tokens, profile.thinking, profile.sampling) == (
        max_tokens,
        thinking,
        sampling,
    )
    facts = model_facts("anthropic", model)
    if facts.family is not None:
        assert facts.output_limit == max_tokens and facts.reasons == (thinking != "none")
    assert CLAUDE[0].since > CLAUDE[-1].since
