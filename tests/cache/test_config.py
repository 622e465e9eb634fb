"""`litellm_settings.cache` and `cache_params`: LiteLLM's keys load unchanged, and a bad
value stops start-up naming its key."""

from __future__ import annotations

import pytest

from genroute.cache import build_cache, cache_redis_url
from genroute.cache.service import ResponseCache
from genroute.cache.store import LocalStore, RedisStore
from genroute.config import ConfigError, config_from_data
from genroute.cost import pricer_for
from genroute.routing import Router

MODELS = [
    {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o", "api_key": "k"}},
    {
        "model_name": "azure-embedding-model",
        "litellm_params": {"model": "openai/text-embedding-3-small", "api_key": "k"},
    },
]

# As LiteLLM's proxy docs write them.
LITELLM_REDIS_SEMANTIC = {
    "model_list": MODELS,
    "litellm_settings": {
        "set_verbose": True,
        "cache": True,
        "cache_params": {
            "type": "redis-semantic",
            "host": "127.0.0.1",
            "port": 6379,
            "password": "secret",
            "namespace": "litellm.caching.caching",
            "ttl": 600,
            "similarity_threshold": 0.8,
            "redis_semantic_cache_embedding_model": "azure-embedding-model",
            "supported_call_types": ["acompletion", "atext_completion", "aembedding",
                                     "atranscription"],
        },
    },
}  # fmt: skip


def build(data: dict, environ: dict | None = None) -> ResponseCache | None:
    config = config_from_data(data, environ=environ or {})
    return build_cache(config, Router(config=config), pricer_for(config.model_list))


async def test_litellm_configs_load_unchanged() -> None:
    cache = build(LITELLM_REDIS_SEMANTIC)
    assert cache is not None and isinstance(cache.store, RedisStore)
    assert cache.index is not None and cache.shared is not None
    assert cache.store.prefix == "litellm.caching.caching"
    assert cache.params.kinds == {"generate", "embed"}
    config = config_from_data(LITELLM_REDIS_SEMANTIC)
    assert cache_redis_url(config, {}) == "redis://:secret@127.0.0.1:6379/0"
    await cache.aclose()
    local = build({"model_list": MODELS, "litellm_settings": {"cache": True}})
    assert local is not None and isinstance(local.store, LocalStore) and local.index is None
    assert build({"model_list": MODELS, "litellm_settings": {"cache_params": {}}}) is None


def test_where_the_cache_finds_its_redis() -> None:
    data = {"model_list": MODELS, "litellm_settings": {"cache": True,
            "cache_params": {"type": "redis"}}}  # fmt: skip
    config = config_from_data(data)
    assert cache_redis_url(config, {"REDIS_URL": "redis://r:1/2"}) == "redis://r:1/2"
    env = {"REDIS_HOST": "h", "REDIS_PORT": "7000", "REDIS_PASSWORD": "p w"}
    assert cache_redis_url(config, env) == "redis://:p%20w@h:7000/0"
    with pytest.raises(ConfigError, match=r"cache_params\.host: type redis needs a Redis"):
        cache_redis_url(config, {})
    config = config_from_data({**data, "general_settings": {"redis_url": "redis://g:1/0"}})
    assert cache_redis_url(config, {}) == "redis://g:1/0"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"type": "s3"}, r"cache_params\.type: .*'s3' is not a cache type"),
        ({"type": "redis-semantic"}, r"similarity_threshold: required"),
        ({"ttl": 0}, r"cache_params\.ttl"),
        ({"similarity_threshold": 1.5}, r"cache_params\.similarity_threshold"),
        ({"supported_call_types": ["acompletion", "speech"]}, r"supported_call_types.*'speech'"),
        ({"qdrant_api_base": "x"}, r"cache_params\.qdrant_api_base: unknown"),
        ({"url": "redis://a", "host": "b"}, r"either url or host"),
    ],
)
def test_a_bad_value_is_named(params: dict, named: str) -> None:
    data = {"model_list": MODELS, "litellm_settings": {"cache": True, "cache_params": params}}
    with pytest.raises(ConfigError, match=named):
        config_from_data(data)


def test_the_embedding_model_must_be_a_configured_group() -> None:
    params = {**LITELLM_REDIS_SEMANTIC["litellm_settings"]["cache_params"]}
    params["redis_semantic_cache_embedding_model"] = "nowhere"
    data = {"model_list": MODELS, "litellm_settings": {"cache": True, "cache_params": params}}
    with pytest.raises(
        ConfigError, match=r"redis_semantic_cache_embedding_model: no model_name 'nowhere'"
    ):
        config_from_data(data)  # at load: `genroute check-config` says it too
    params["redis_semantic_cache_embedding_model"] = "text-embedding-3-large"
    wildcard = [*MODELS, {"model_name": "text-embedding-*", "params": {"model": "openai/*"}}]
    assert build({**data, "model_list": wildcard}) is not None
