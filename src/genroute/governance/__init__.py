"""Virtual keys, teams and end users; budgets, rate limits and the spend ledger.

    service.py   Governance: authentication, admission and settlement of calls;
                 readiness and metrics
    layer.py     Governed: the pipeline layer that admits and settles every operation
    estimate.py  the most a call can cost (what it holds on its budgets)
    budgets.py   budget holds, atomic across instances (Redis, else the database)
    cache.py     a short-TTL cache of key, team and end-user rows, and unwritten spend
    limits.py    rpm/tpm/parallel limits in memory or in Redis (with a local fallback)
    health.py    whether the database and Redis are up, and when to retry them

`build_governance(config)` is None when neither a master key nor a database is configured
(the gateway is then open, as without this package). Otherwise the store is the configured
`general_settings.database_url`, or a SQLite file `genroute.db` next to the config file,
and the spend journal is `general_settings.spend_spool_dir`, or a `genroute-spool`
directory next to the config file (for a config without a file: next to its SQLite
database, else in the working directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from genroute.config import Config
from genroute.governance.layer import Governed
from genroute.governance.limits import (
    FallbackLimiter,
    LimitCheck,
    Limiter,
    MemoryLimiter,
    RedisLimiter,
)
from genroute.governance.service import Admission, Governance, model_allowed
from genroute.store import Store, default_url
from genroute.store.engine import is_sqlite

SPOOL_DIR = "genroute-spool"


def redis_url(config: Config) -> str | None:
    """`router_settings`' Redis (`redis_url`, or `redis_host`/`redis_port`), else
    `general_settings.redis_url`."""
    settings = config.router_settings
    connection = getattr(settings, "redis_connection_url", None)
    found = connection() if callable(connection) else getattr(settings, "redis_url", None)
    return found or config.general_settings.redis_url


def _config_dir(config: Config) -> Path | None:
    source = Path(config.source)
    return source.parent if source.is_file() else None


def spool_dir(config: Config) -> Path:
    """Where the spend journal lives: `spend_spool_dir`, else next to the config file,
    else (a config without a file) next to a SQLite database, else in the working
    directory."""
    configured = config.general_settings.spend_spool_dir
    if configured:
        return Path(configured).expanduser()
    base = _config_dir(config)
    url = database_url(config)
    if base is None and url is not None and is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            base = Path(database).expanduser().parent
    return (base or Path.cwd()) / SPOOL_DIR


def database_url(config: Config) -> str | None:
    """The configured database, the default SQLite file when only a master key is set."""
    settings = config.general_settings
    if settings.database_url:
        return settings.database_url
    if settings.master_key is None:
        return None
    return default_url(_config_dir(config))


def _redis_client(url: str, timeout: float) -> Any:
    """A Redis client that fails fast (socket and connect timeouts, one retry): governance
    falls back to local limits rather than wait on it."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aioredis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1),
    )


def build_governance(config: Config) -> Governance | None:
    """The Governance for a config, or None when the gateway is open."""
    url = database_url(config)
    if url is None:
        return None
    settings = config.general_settings
    redis: Any = None
    limiter: Limiter = MemoryLimiter()
    if (rurl := redis_url(config)) is not None:
        redis = _redis_client(rurl, settings.redis_socket_timeout)
        limiter = FallbackLimiter(RedisLimiter(redis), MemoryLimiter())
    return Governance(
        Store(
            url,
            timeout=settings.database_timeout,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        ),
        master_key=settings.master_key,
        limiter=limiter,
        redis=redis,
        cache_ttl=settings.key_cache_ttl,
        flush_interval=settings.spend_flush_interval,
        max_stale=settings.key_cache_max_stale,
        spool_dir=spool_dir(config),
        spool_max_bytes=int(settings.spend_spool_max_mb * (1 << 20)),
        default_max_output_tokens=settings.default_max_output_tokens,
    )


__all__ = [
    "SPOOL_DIR",
    "Admission",
    "FallbackLimiter",
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
    "spool_dir",
]
