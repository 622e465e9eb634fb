"""The response cache: one layer of the call pipeline (docs/cache.md).

    Observed → Governed → Metered → Cached → Router → provider

    keys.py      the exact key, the scope (the key's team), what may be cached
    assemble.py  a stream assembled into one response, and replayed as chunks
    store.py     entries in this process (a bounded LRU) or in Redis; Redis outages
    semantic.py  the vector index (numpy), kept in step across instances by a Redis stream
    service.py   ResponseCache: plans, lookups, background writes, metrics
    layer.py     Cached: the pipeline layer

Configured with LiteLLM's `litellm_settings: {cache: true, cache_params: {...}}`
(`genroute.config.cache.CacheParams`); `build_cache` makes the `ResponseCache` a config
asks for, or None when the cache is off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from genroute.cache.layer import Cached
from genroute.cache.service import ControlSource, GroupResolver, ResponseCache
from genroute.cache.store import LocalStore, RedisHealth, RedisStore
from genroute.config import Config, ConfigError
from genroute.cost import Pricer

__all__ = [
    "DEFAULT_PREFIX",
    "Cached",
    "ResponseCache",
    "build_cache",
    "cache_redis_url",
]

DEFAULT_PREFIX = "genroute:cache"
_WHERE = "litellm_settings.cache_params"
BLOCK_MS = 1000


def cache_redis_url(config: Config, environ: Mapping[str, str] | None = None) -> str:
    """The cache's Redis: `cache_params.url`, else `host`/`port`/`password`, else
    $REDIS_URL or $REDIS_HOST/$REDIS_PORT/$REDIS_PASSWORD (as LiteLLM reads them), else
    general_settings.redis_url. ConfigError naming the key when there is none."""
    params = config.litellm_settings.cache_params
    env = os.environ if environ is None else environ
    if params.url:
        return params.url
    host, port, password = params.host, params.port, params.password
    if not host and env.get("REDIS_URL"):
        return env["REDIS_URL"]
    if not host and env.get("REDIS_HOST"):
        host = env["REDIS_HOST"]
        port = int(env.get("REDIS_PORT") or port)
        password = password or env.get("REDIS_PASSWORD")
    if host:
        auth = f":{quote(password, safe='')}@" if password else ""
        return f"redis://{auth}{host}:{port}/0"
    if config.general_settings.redis_url:
        return config.general_settings.redis_url
    raise ConfigError(
        f"{config.source}: {_WHERE}.host: type {params.type} needs a Redis: give host (and "
        "port, password) or url, set $REDIS_URL or $REDIS_HOST, or general_settings.redis_url"
    )


def _client(url: str, timeout: float | None) -> Any:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout if timeout is not None else 2.0,
        retry=Retry(NoBackoff(), 0),
    )


def build_cache(
    config: Config,
    groups: GroupResolver,
    pricer: Pricer,
    controls: ControlSource | None = None,
) -> ResponseCache | None:
    """The response cache a config turns on (`litellm_settings.cache: true`), or None."""
    settings = config.litellm_settings
    if not settings.cache:
        return None
    params = settings.cache_params
    max_bytes = int(params.max_memory_mb * (1 << 20))
    prefix = params.namespace or DEFAULT_PREFIX
    index = None
    if params.semantic:  # numpy is imported only by a semantic cache
        from genroute.cache.semantic import VectorIndex

        index = VectorIndex(params.max_entries, max_bytes)
    if not params.shared:
        store = LocalStore(params.max_entries, max_bytes)
        return ResponseCache(params, store, groups, pricer, index=index, controls=controls)
    url = cache_redis_url(config)
    client = _client(url, params.socket_timeout)
    health = RedisHealth()
    shared = None
    clients: tuple[Any, ...] = (client,)
    if index is not None:
        from genroute.cache.semantic import SharedIndex

        reader = _client(url, BLOCK_MS / 1000 + max(2.0, params.socket_timeout))
        shared = SharedIndex(index, client, reader, prefix, health, block_ms=BLOCK_MS)
        clients = (client, reader)
    return ResponseCache(
        params,
        RedisStore(client, prefix, health),
        groups,
        pricer,
        index=index,
        shared=shared,
        health=health,
        controls=controls,
        clients=clients,
    )
