"""The Router: groups, wildcards, aliases, weighted choice and the models list."""

from __future__ import annotations

import collections

import pytest

from genroute.errors import InvalidRequest, NotFound
from genroute.routing import Router, normalise_model_name
from genroute.wire import GenerateContentRequest
from tests.calls import call


def make(entries: list[dict[str, object]], **settings: object) -> Router:
    return Router(entries, router_settings=settings)


def test_models_prefix_is_dropped_and_slashes_kept() -> None:
    assert normalise_model_name("models/gemini-2.5-flash") == "gemini-2.5-flash"
    assert normalise_model_name("models/org/model-x") == "org/model-x"
    router = make([{"model_name": "org/model-x", "params": {"model": "demo/x"}}])
    assert router.group("models/org/model-x")[0].spec.upstream_model == "x"


def test_unknown_model_is_not_found() -> None:
    router = make([{"model_name": "a", "params": {"model": "demo/x"}}])
    with pytest.raises(NotFound):
        router.group("b")


def test_wildcard_substitutes_the_matched_part() -> None:
    router = make(
        [{"model_name": "gemini-*", "params": {"model": "gemini/gemini-*", "api_key": "k"}}]
    )
    deployment = router.group("gemini-2.5-flash")[0]
    assert deployment.spec.provider == "gemini"
    assert deployment.spec.upstream_model == "gemini-2.5-flash"
    assert router.group("gemini-2.5-flash")[0] is deployment


def test_alias_routes_to_its_group() -> None:
    router = make(
        [{"model_name": "local", "params": {"model": "demo/x"}}],
        model_group_alias={"gemini-2.5-flash": "local"},
    )
    assert router.group("gemini-2.5-flash")[0].model_name == "local"
    assert "gemini-2.5-flash" in router.model_names


def test_weighted_shuffle_follows_weights() -> None:
    router = make(
        [
            {"model_name": "g", "params": {"model": "demo/a", "weight": 1}},
            {"model_name": "g", "params": {"model": "demo/b", "weight": 3}},
        ]
    )
    router._rng.seed(1)
    counts = collections.Counter(router.pick("g").spec.upstream_model for _ in range(4000))
    assert 0.70 < counts["b"] / 4000 < 0.80


def test_provider_prefix_errors_are_clear() -> None:
    with pytest.raises(InvalidRequest, match="not served by this genroute version"):
        make([{"model_name": "a", "params": {"model": "sagemaker/my-endpoint"}}])
    with pytest.raises(InvalidRequest, match="unknown provider prefix 'nosuch'"):
        make([{"model_name": "a", "params": {"model": "nosuch/x"}}])
    with pytest.raises(InvalidRequest, match="names no provider"):
        make([{"model_name": "a", "params": {"model": "gpt-4o"}}])


def test_ad_hoc_models_only_without_a_model_list() -> None:
    assert Router().group("demo/anything")[0].spec.upstream_model == "anything"
    with pytest.raises(NotFound):
        make([{"model_name": "a", "params": {"model": "demo/x"}}]).group("demo/anything")


def test_list_models_is_google_shaped_and_labels_the_demo() -> None:
    router = make(
        [
            {"model_name": "demo", "params": {"model": "demo/echo"}},
            {
                "model_name": "emb",
                "params": {"model": "demo/e"},
                "model_info": {"mode": "embedding", "max_input_tokens": 2048},
            },
        ]
    )
    models = {m.name: m for m in router.list_models()}
    assert set(models) == {"models/demo", "models/emb"}
    assert "not a real LLM" in (models["models/demo"].description or "")
    assert models["models/emb"].input_token_limit == 2048


async def test_generate_through_the_demo() -> None:
    router = make([{"model_name": "d", "params": {"model": "demo/echo"}}])
    request = GenerateContentRequest.model_validate(
        {"contents": [{"parts": [{"text": "one two"}]}]}
    )
    response = await router.generate(call("d"), request)
    assert response.text.endswith("You said: one two")
    chunks = [c async for c in router.stream(call("d", stream=True), request)]
    assert "".join(c.text for c in chunks) == response.text
    assert chunks[-1].candidates is not None and chunks[-1].candidates[0].finish_reason == "STOP"
    assert all(c.candidates and c.candidates[0].finish_reason is None for c in chunks[:-1])
    await router.aclose()
