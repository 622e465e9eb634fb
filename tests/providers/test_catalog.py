"""The provider catalog: one row per prefix, read by the registry, prefixes.py, cost,
tracing, the embedded default config and the CLI banner."""

from __future__ import annotations

import pytest
from genai_prices import data as prices

from genroute.errors import InvalidRequest
from genroute.providers.catalog import (
    CATALOG,
    facts_for,
    first_env,
    key_env_present,
    not_served,
    otel_name,
    price_provider_id,
    served,
)
from genroute.providers.openai.prefixes import SERVERS
from genroute.providers.registry import ALIASES, NOT_YET_SERVED, PROVIDERS, split_model

# The gen_ai.provider.name values OpenTelemetry's GenAI conventions define.
WELL_KNOWN_OTEL = {
    "anthropic", "aws.bedrock", "azure.ai.inference", "azure.ai.openai", "cohere", "deepseek",
    "gcp.gemini", "gcp.gen_ai", "gcp.vertex_ai", "groq", "ibm.watsonx.ai", "mistral_ai",
    "openai", "perplexity", "x_ai",
}  # fmt: skip


def test_first_env_strips_values_and_skips_blank_ones() -> None:
    env = {"A": "   ", "B": "  value \n", "C": "other"}
    assert first_env(("A", "B", "C"), env) == "value"
    assert first_env(("A", "MISSING"), env) is None
    assert first_env((), env) is None


def test_first_env_reads_the_process_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GENROUTE_TEST_FIRST_ENV", " x ")
    assert first_env(["GENROUTE_TEST_FIRST_ENV"]) == "x"


def test_key_env_present_names_the_first_key_variable_set() -> None:
    env = {"GEMINI_API_KEY": " ", "GOOGLE_API_KEY": "g"}
    assert key_env_present("gemini", env) == "GOOGLE_API_KEY"
    assert key_env_present("gemini", {}) is None
    assert key_env_present("anthropic", {"ANTHROPIC_API_KEY": "k"}) == "ANTHROPIC_API_KEY"
    assert key_env_present("no_such_prefix", {"X": "y"}) is None


def test_lookups_for_known_and_unknown_prefixes() -> None:
    assert facts_for("azure") is CATALOG["azure"] and facts_for("nope") is None
    assert facts_for(None) is None and facts_for("") is None
    assert price_provider_id("gemini") == price_provider_id("google_ai_studio") == "google"
    assert price_provider_id("ollama") is None and price_provider_id("nope") is None
    assert otel_name("gemini") == "gcp.gemini" and otel_name("mistral") == "mistral_ai"
    assert otel_name("ollama") == "ollama" and otel_name("my_server") == "my_server"
    assert otel_name(None) == "unknown"


def test_every_price_id_is_one_genai_prices_knows() -> None:
    known = {provider.id for provider in prices.providers}
    ids = {f.price_id for f in CATALOG.values() if f.price_id is not None}
    assert ids <= known, ids - known


def test_otel_names_are_well_known_or_the_prefix_itself() -> None:
    for name, facts in CATALOG.items():
        assert facts.otel_name in WELL_KNOWN_OTEL or facts.otel_name == name, name


def test_served_rows_are_exactly_what_the_registry_builds() -> None:
    assert served() == set(PROVIDERS) | set(ALIASES)
    assert not_served() == NOT_YET_SERVED
    assert not served() & not_served()


def test_compatible_servers_take_their_facts_from_the_catalog() -> None:
    for prefix, server in SERVERS.items():
        facts = CATALOG[prefix]
        assert server.facts is facts and server.prefix == prefix
        assert (server.key_env, server.base_env, server.default_base, server.key_required) == (
            facts.key_env,
            facts.base_env,
            facts.default_base,
            facts.key_required,
        )


def test_served_rows_that_need_a_key_name_where_it_comes_from() -> None:
    for facts in CATALOG.values():
        if facts.served and facts.key_required:
            assert facts.key_env, facts.name
        assert facts.label


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gemini/gemini-2.5-flash", ("gemini", "gemini-2.5-flash")),
        ("google_ai_studio/gemini-2.5-pro", ("gemini", "gemini-2.5-pro")),
        ("gemini-2.5-flash", ("gemini", "gemini-2.5-flash")),
        (" vllm/meta/llama ", ("vllm", "meta/llama")),
        ("azure/my-deployment", ("azure", "my-deployment")),
    ],
)
def test_split_model(model: str, expected: tuple[str, str]) -> None:
    assert split_model(model) == expected


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("sagemaker/my-endpoint", "model 'sagemaker/my-endpoint': provider 'sagemaker' is not served by this "
         "genroute version; served providers: "),
        ("nope/x", "model 'nope/x': unknown provider prefix 'nope'; use one of "),
        ("llama3", "model 'llama3' names no provider; write it as provider/model, e.g. gemini/llama3"),
    ],
)  # fmt: skip
def test_split_model_errors_keep_their_wording(model: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        split_model(model)
    assert info.value.message.startswith(message)
