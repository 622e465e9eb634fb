"""genroute.cost: prices from model_info and genai-prices, tiers, unknown models, the SDK."""

from __future__ import annotations

import logging

import pytest

import genroute
from genroute.config import ModelInfo
from genroute.cost import Pricer, Tokens, call_cost, estimate_usage, pricer_for
from genroute.routing import Router
from genroute.wire import GenerateContentRequest, UsageMetadata


def usage(prompt: int, output: int, thinking: int = 0, cached: int = 0) -> UsageMetadata:
    return UsageMetadata(
        prompt_token_count=prompt,
        candidates_token_count=output,
        thoughts_token_count=thinking or None,
        cached_content_token_count=cached or None,
        total_token_count=prompt + output + thinking,
    )


def test_tokens_from_usage() -> None:
    tokens = Tokens.from_usage(usage(100, 20, thinking=30, cached=40))
    assert (tokens.prompt, tokens.output, tokens.thinking, tokens.cached) == (100, 20, 30, 40)
    assert tokens.total == 150
    assert Tokens.from_usage(None).total == 0


def test_custom_prices_cover_cached_thinking_and_long_context() -> None:
    info = ModelInfo(
        input_cost_per_token=1e-6,
        output_cost_per_token=4e-6,
        cache_read_input_token_cost=0.25e-6,
        output_cost_per_reasoning_token=3e-6,
        input_cost_per_token_above_200k_tokens=2e-6,
        output_cost_per_token_above_200k_tokens=8e-6,
    )
    cost = call_cost(usage(1000, 100, thinking=50, cached=400), "vllm", "mine", info)
    assert cost.source == "model_info" and cost.known
    assert cost.usd == pytest.approx(600e-6 + 400 * 0.25e-6 + 100 * 4e-6 + 50 * 3e-6)
    long = call_cost(usage(250_000, 100), "vllm", "mine", info)
    assert long.usd == pytest.approx(250_000 * 2e-6 + 100 * 8e-6)
    # Without a reasoning or cache price, thinking is output and cached tokens are input.
    plain = ModelInfo(input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    assert call_cost(usage(10, 10, 10, 5), None, "x", plain).usd == pytest.approx(10e-6 + 40e-6)


def test_gemini_prices_from_genai_prices() -> None:
    cost = call_cost(
        usage(1_000_000, 100_000, thinking=100_000), "gemini", "gemini-2.5-flash", None
    )
    assert cost.known and cost.source == "genai-prices"
    # $0.30 / M input, $2.50 / M output (thinking billed as output).
    assert cost.usd == pytest.approx(0.30 + 0.5)
    cached = call_cost(usage(1_000_000, 0, cached=1_000_000), "gemini", "gemini-2.5-flash", None)
    assert cached.usd == pytest.approx(0.03)
    short = call_cost(usage(100_000, 0), "gemini", "gemini-2.5-pro", None).usd
    long = call_cost(usage(300_000, 0), "gemini", "gemini-2.5-pro", None).usd
    assert long / 300_000 > short / 100_000  # the long-context tier costs more per token


def test_unknown_model_costs_zero_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    pricer = Pricer()
    with caplog.at_level(logging.WARNING, logger="genroute.cost"):
        for _ in range(3):
            cost = pricer.cost(usage(10, 10), "gemini", "no-such-model-xyz")
            assert cost.usd == 0.0 and not cost.known
        pricer.cost(usage(10, 10), "demo", "echo")
    messages = [r.message for r in caplog.records]
    assert len(messages) == 2
    assert "gemini/no-such-model-xyz" in messages[0] and "input_cost_per_token" in messages[0]


def test_pricer_for_finds_entries_by_id_model_and_name() -> None:
    router = Router(
        [
            {
                "model_name": "local",
                "params": {"model": "demo/llama"},
                "model_info": {"id": "dep-1", "input_cost_per_token": 1.0},
            }
        ]
    )
    pricer = pricer_for(router.config.model_list)
    assert pricer.info_for("dep-1") is pricer.info_for("demo/llama") is pricer.info_for("local")
    assert pricer.cost(usage(3, 0), "demo", "llama", "unknown-id", "local").usd == 3.0


def test_estimate_usage_for_streams_without_one() -> None:
    request = GenerateContentRequest.model_validate(
        {
            "contents": [{"parts": [{"text": "x" * 40}]}],
            "systemInstruction": {"parts": [{"text": "y" * 8}]},
        }
    )
    estimated = estimate_usage(request, output_chars=21)
    assert estimated.prompt_token_count == 12 and estimated.candidates_token_count == 6


PRICED = [
    {
        "model_name": "demo",
        "params": {"model": "demo/echo"},
        "model_info": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002},
    }
]


async def test_sdk_reports_the_cost_of_its_responses() -> None:
    async with genroute.Client(PRICED) as client:
        response = await client.agenerate_content(model="demo", contents="hello there", user="erin")
        assert genroute.response_cost(response) == pytest.approx(2 * 0.001 + 10 * 0.002)
        stream = await client.agenerate_content_stream(model="demo", contents="hello there")
        chunks = [chunk async for chunk in stream]
        costs = [genroute.response_cost(c) for c in chunks]
        assert costs[-1] == pytest.approx(0.022)
    unpriced = await genroute.agenerate_content(model="demo/echo", contents="hi")
    assert genroute.response_cost(unpriced) == 0.0
    assert genroute.response_cost(object()) is None


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("gemini", "gemini-2.5-flash"),
        ("gemini", "gemini-2.5-pro"),
        ("openai", "gpt-4o"),
        ("anthropic", "claude-sonnet-4-5"),
    ],
)
def test_cached_rates_match_genai_prices_exactly(provider: str, model: str) -> None:
    from genai_prices import Usage, calc_price

    from genroute.cost import Tokens, catalogue_cost
    from genroute.providers.catalog import price_provider_id

    for prompt, cached, output, thinking in [
        (10, 0, 5, 0),
        (1000, 400, 300, 50),
        (250_000, 1000, 2000, 0),
        (199_999, 0, 1, 0),
        (200_001, 0, 1, 0),
    ]:
        tokens = Tokens(prompt=prompt, output=output, thinking=thinking, cached=cached)
        ours = catalogue_cost(tokens, provider, model)
        usage = Usage(
            input_tokens=prompt, cache_read_tokens=cached, output_tokens=output + thinking
        )
        theirs = float(
            calc_price(usage, model, provider_id=price_provider_id(provider)).total_price
        )
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-12), (model, prompt)


def written(prompt: int, output: int, cache_write: int, cached: int = 0) -> UsageMetadata:
    found = usage(prompt, output, cached=cached)
    found.set_private("_cache_write_tokens", cache_write)
    return found


def test_prompt_cache_writes_are_priced_at_the_write_rate() -> None:
    # Anthropic's 5-minute cache: $3.75 / M written, $0.30 / M read, $3 / M input.
    # (Under 200k tokens: above, Sonnet 4.5's long-context prices apply.)
    first = call_cost(
        written(100_000, 0, cache_write=90_000), "anthropic", "claude-sonnet-4-5", None
    )
    assert first.usd == pytest.approx(10_000 * 3e-6 + 90_000 * 3.75e-6)
    second = call_cost(usage(100_000, 0, cached=90_000), "anthropic", "claude-sonnet-4-5", None)
    assert second.usd == pytest.approx(10_000 * 3e-6 + 90_000 * 0.3e-6)
    # OpenAI has no write price: written tokens cost the input price.
    openai = call_cost(written(1000, 0, cache_write=1000), "openai", "gpt-4o", None)
    assert openai.usd == pytest.approx(1000 * 2.5e-6)
    # model_info's cache_creation_input_token_cost (LiteLLM's key), else the input price.
    info = ModelInfo(
        input_cost_per_token=1e-6,
        output_cost_per_token=2e-6,
        cache_read_input_token_cost=0.1e-6,
        cache_creation_input_token_cost=1.5e-6,
    )
    custom = call_cost(written(1000, 10, cache_write=600, cached=300), None, "mine", info)
    assert custom.usd == pytest.approx(100e-6 + 300 * 0.1e-6 + 600 * 1.5e-6 + 10 * 2e-6)
    # What a translator reads from the provider's usage.
    from genroute.providers.anthropic.response import usage_metadata

    read = usage_metadata(
        {
            "input_tokens": 5,
            "cache_creation_input_tokens": 700,
            "cache_read_input_tokens": 300,
            "output_tokens": 9,
        }
    )
    assert read.prompt_token_count == 1005 and read.cached_content_token_count == 300
    assert Tokens.from_usage(read).cache_write == 700


def test_storage_of_a_context_cache() -> None:
    from genroute.cost import storage_cost
    from genroute.providers.models import cache_storage_price

    # Gemini's storage prices per token-hour: the documented table, model_info wins.
    assert cache_storage_price("gemini", "gemini-2.5-flash") == pytest.approx(1e-6)
    assert cache_storage_price("gemini", "gemini-2.5-pro") == pytest.approx(4.5e-6)
    assert cache_storage_price("gemini", "models/gemini-3-pro-preview") == pytest.approx(4.5e-6)
    assert cache_storage_price("openai", "gpt-4o") is None  # no storage charge
    info = ModelInfo(cache_storage_cost_per_token_per_hour=2e-6)
    assert cache_storage_price("gemini", "gemini-2.5-flash", info) == pytest.approx(2e-6)
    assert storage_cost(10_000, 0.5, 1e-6).usd == pytest.approx(0.005)
    assert not storage_cost(10_000, 0.5, None).known


@pytest.mark.parametrize(
    ("provider", "model", "info"),
    [
        ("gemini", "gemini-2.5-flash", None),
        ("openai", "gpt-4o", None),
        ("gemini", "no-such-model", None),
        ("openai", "mine", ModelInfo(input_cost_per_token=1e-6, output_cost_per_token=4e-6)),
    ],
)
def test_token_counts_cost_what_their_usage_costs(
    provider: str, model: str, info: ModelInfo | None
) -> None:
    from genroute.cost import tokens_cost

    usage = UsageMetadata(
        prompt_token_count=1200,
        candidates_token_count=300,
        thoughts_token_count=50,
        cached_content_token_count=200,
        total_token_count=1550,
    )
    tokens = Tokens.from_usage(usage)
    assert tokens_cost(tokens, provider, model, info) == call_cost(usage, provider, model, info)
    pricer = Pricer({"grp": info} if info else {})
    assert pricer.tokens_cost(tokens, provider, model, "grp") == pricer.cost(
        usage, provider, model, "grp"
    )


async def test_the_server_reads_its_models_prices_before_the_first_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """genai-prices' catalogue loads in ~80 ms, on the event loop of the call that first
    needs it: the app reads the prices of its configured models when it is made, so no
    call waits (models with their own prices, and wildcards, are not looked up)."""
    from genroute import cost
    from genroute.config import config_from_data
    from genroute.server import create_app

    looked_up: list[tuple[str, str]] = []
    original = cost._catalogue_model

    def recording(provider_id: str, model: str, today: object) -> object:
        looked_up.append((provider_id, model))
        return original(provider_id, model, today)  # type: ignore[arg-type]

    monkeypatch.setattr(cost, "_catalogue_model", recording)
    data = {
        "model_list": [
            {"model_name": "flash", "litellm_params": {"model": "gemini/gemini-2.5-flash"}},
            {"model_name": "mini", "litellm_params": {"model": "openai/gpt-4o-mini"}},
            {
                "model_name": "own",
                "litellm_params": {"model": "openai/my-model"},
                "model_info": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
            },
            {"model_name": "gemini-*", "litellm_params": {"model": "gemini/*"}},
        ]
    }
    app = create_app(config_from_data(data))
    try:
        assert sorted(looked_up) == [("google", "gemini-2.5-flash"), ("openai", "gpt-4o-mini")]
        # What a first call's price is read from is there already.
        assert ("google", "gemini-2.5-flash", cost._today()) in cost._tiers_cache
        price = app.pipeline.pricer.cost(usage(1000, 100), "gemini", "gemini-2.5-flash")
        assert price.known and price.usd > 0
    finally:
        await app.pipeline.aclose()
