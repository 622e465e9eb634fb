"""Virtual keys, teams and end users; budgets, rate limits and the spend ledger.

    service.py  Governance: authentication, admission and settlement of calls
    layer.py    Governed: the pipeline layer that admits and settles every operation
    cache.py    a short-TTL cache of key, team and end-user rows, and unwritten spend
    limits.py   rpm/tpm/parallel limits in memory or in Redis

`build_governance(config)` is None when neither a master key nor a database is configured
(the gateway is then open, as without this package). Otherwise the store is the configured
`general_settings.database_url`, or a SQLite file `genroute.db` next to the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genroute.config import Config
from genroute.governance.layer import Governed
from genroute.governance.limits import LimitCheck, Limiter, MemoryLimiter, RedisLimiter
from genroute.governance.service import Admission, Governance, model_allowed
from genroute.store import Store, default_url


def redis_url(config: Config) -> str | None:
    """`router_settings.redis_url`, else `general_settings.redis_url`."""
    return getattr(config.router_settings, "redis_url", None) or config.general_settings.redis_url


def database_url(config: Config) -> str | None:
    """The configured database, the default SQLite file when only a master key is set."""
    settings = config.general_settings
    if settings.database_url:
        return settings.database_url
    if settings.master_key is None:
        return None
    source = Path(config.source)
    return default_url(source.parent if source.is_file() else None)


def build_governance(config: Config) -> Governance | None:
    """The Governance for a config, or None when the gateway is open."""
    url = database_url(config)
    if url is None:
        return None
    redis: Any = None
    limiter: Limiter = MemoryLimiter()
    if (rurl := redis_url(config)) is not None:
        import redis.asyncio as aioredis

        redis = aioredis.from_url(rurl)
        limiter = RedisLimiter(redis)
    settings = config.general_settings
    return Governance(
        Store(url),
        master_key=settings.master_key,
        limiter=limiter,
        redis=redis,
        cache_ttl=settings.key_cache_ttl,
        flush_interval=settings.spend_flush_interval,
    )


__all__ = [
    "Admission",
    "Governance",
    "Governed",
    "LimitCheck",
    "Limiter",
    "MemoryLimiter",
    "RedisLimiter",
    "build_governance",
    "database_url",
    "model_allowed",
    "redis_url",
]
