"""RouterState shared by every genroute process through Redis, with a local fallback.

Each operation is one Lua script, so checking a cap and counting the request happen
atomically for all instances, and time is Redis's own (`TIME`), not each host's clock.
Keys, per deployment id `D` under the prefix `P`:

    P:D:s      hash   inflight, lat, ttft, n, cool_until, cool_cause
    P:D:rpm    zset   one member per request started, scored by its start time
    P:D:tpm    hash   5-second bucket → tokens
    P:D:fails  zset   one member per failure, scored by its time

When Redis cannot be reached the state falls back to this process's memory, logs one
warning for the outage (not one per request), and tries Redis again after
`reconnect_interval` seconds. A request counted in flight in Redis that ends while Redis is
away is given back there once it is reachable again, so that an outage leaves no
deployment looking busy (at its `max_parallel_requests`) for good. That memory forgets deployments that are no longer resident
as `LocalState` does; in Redis, every key expires once unused (`KEY_TTL` at most).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from genroute.routing.state import (
    COOL_FAILURE,
    COOL_RATE_LIMIT,
    LATENCY_ALPHA,
    TPM_BUCKET,
    USAGE_WINDOW,
    CooldownPolicy,
    DeploymentStats,
    Limits,
    LocalState,
    Resident,
    cooldown_seconds,
)

__all__ = ["ACQUIRE", "FAILURE", "KEY_TTL", "RELEASE", "REPAY", "SNAPSHOT", "RedisState"]

log = logging.getLogger("genroute.router")
T = TypeVar("T")
KEY_TTL = 3600  # seconds an unused deployment's hash is kept

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

_TPM_SUM = """
local function tpm_sum(key, now, window, bucket)
  local lowest = math.floor((now - window) / bucket)
  local total = 0
  local items = redis.call('HGETALL', key)
  for j = 1, #items, 2 do
    if tonumber(items[j]) <= lowest then
      redis.call('HDEL', key, items[j])
    else
      total = total + tonumber(items[j + 1])
    end
  end
  return total
end
"""

SNAPSHOT = (
    _NOW
    + _TPM_SUM
    + """
local window, bucket = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS, 4 do
  local s, rpm, tpm, fails = KEYS[i], KEYS[i + 1], KEYS[i + 2], KEYS[i + 3]
  redis.call('ZREMRANGEBYSCORE', rpm, '-inf', now - window)
  local used = redis.call('ZCARD', rpm)
  local oldest = redis.call('ZRANGE', rpm, 0, 0, 'WITHSCORES')
  local reset = ''
  if oldest[2] then reset = tostring(tonumber(oldest[2]) + window - now) end
  local tok = tpm_sum(tpm, now, window, bucket)
  local h = redis.call('HMGET', s, 'inflight', 'lat', 'ttft', 'n', 'cool_until', 'cool_cause')
  local cool = 0
  if h[5] then cool = math.max(0, tonumber(h[5]) - now) end
  local nf = redis.call('ZCOUNT', fails, now - 600, '+inf')
  out[#out + 1] = {tostring(h[1] or 0), tostring(used), tostring(tok), h[2] or '', h[3] or '',
                   h[4] or '0', tostring(nf), tostring(cool), h[6] or '', reset}
end
return out
"""
)

ACQUIRE = (
    _NOW
    + _TPM_SUM
    + """
local s, rpm, tpm = KEYS[1], KEYS[2], KEYS[3]
local window, bucket = tonumber(ARGV[1]), tonumber(ARGV[2])
local rcap, tcap, pcap = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', rpm, '-inf', now - window)
if rcap >= 0 and redis.call('ZCARD', rpm) >= rcap then return 0 end
if tcap >= 0 and tpm_sum(tpm, now, window, bucket) >= tcap then return 0 end
local inflight = tonumber(redis.call('HGET', s, 'inflight') or '0')
if pcap >= 0 and inflight >= pcap then return 0 end
redis.call('ZADD', rpm, now, ARGV[6])
redis.call('EXPIRE', rpm, math.ceil(window) + 5)
redis.call('HINCRBY', s, 'inflight', 1)
redis.call('EXPIRE', s, tonumber(ARGV[7]))
return 1
"""
)

RELEASE = (
    _NOW
    + """
local s, tpm = KEYS[1], KEYS[2]
local tokens, alpha = tonumber(ARGV[1]), tonumber(ARGV[4])
if redis.call('HINCRBY', s, 'inflight', -1) < 0 then redis.call('HSET', s, 'inflight', 0) end
if tokens > 0 then
  redis.call('HINCRBY', tpm, tostring(math.floor(now / tonumber(ARGV[6]))), tokens)
  redis.call('EXPIRE', tpm, 120)
end
local function average(field, value)
  local old = redis.call('HGET', s, field)
  local new = tonumber(value)
  if old then new = tonumber(old) + alpha * (new - tonumber(old)) end
  redis.call('HSET', s, field, tostring(new))
end
if ARGV[2] ~= '' then
  average('lat', ARGV[2])
  redis.call('HINCRBY', s, 'n', 1)
end
if ARGV[3] ~= '' then average('ttft', ARGV[3]) end
redis.call('EXPIRE', s, tonumber(ARGV[5]))
return 1
"""
)

FAILURE = (
    _NOW
    + """
local s, fails = KEYS[1], KEYS[2]
local window, allowed, seconds = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZADD', fails, now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', fails, '-inf', now - math.max(window, 600))
redis.call('EXPIRE', fails, math.ceil(math.max(window, 600)) + 60)
if ARGV[6] ~= '1' then return 0 end
if tonumber(redis.call('HGET', s, 'cool_until') or '0') > now then return 0 end
if redis.call('ZCOUNT', fails, now - window, '+inf') <= allowed then return 0 end
redis.call('HSET', s, 'cool_until', tostring(now + seconds), 'cool_cause', ARGV[4])
redis.call('EXPIRE', s, math.max(tonumber(ARGV[7]), math.ceil(seconds) + 60))
redis.call('ZREMRANGEBYSCORE', fails, now - window, '+inf')
return 1
"""
)

REPAY = """
local s = KEYS[1]
if redis.call('HINCRBY', s, 'inflight', -tonumber(ARGV[1])) < 0 then
  redis.call('HSET', s, 'inflight', 0)
end
redis.call('EXPIRE', s, tonumber(ARGV[2]))
return 1
"""


def _float(value: Any) -> float | None:
    text = value.decode() if isinstance(value, bytes) else str(value)
    return float(text) if text else None


def _cap(value: int | None) -> int:
    return -1 if value is None else value


class RedisState:
    """RouterState in Redis, shared by every instance using the same URL and prefix."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "genroute:router",
        socket_timeout: float = 0.5,
        reconnect_interval: float = 5.0,
    ) -> None:
        self._client: Redis = Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self._prefix = prefix
        self._reconnect_interval = reconnect_interval
        self._local = LocalState()
        self._local_held: dict[str, int] = {}
        self._owed: dict[str, int] = {}  # releases Redis missed while it was away
        self._down_until = 0.0
        self._down = False
        self._snapshot = self._client.register_script(SNAPSHOT)
        self._acquire = self._client.register_script(ACQUIRE)
        self._release = self._client.register_script(RELEASE)
        self._failure = self._client.register_script(FAILURE)
        self._repay_script = self._client.register_script(REPAY)

    @property
    def backend(self) -> str:
        return "memory (redis unreachable)" if self._down else "redis"

    def retain(self, resident: Resident) -> None:
        self._local.retain(resident)

    def _keys(self, deployment_id: str, *names: str) -> list[str]:
        return [f"{self._prefix}:{deployment_id}:{name}" for name in names]

    async def _run(
        self, remote: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]
    ) -> T:
        if self._down and time.monotonic() < self._down_until:
            return await local()
        try:
            result = await remote()
        except (TimeoutError, RedisError, OSError) as exc:
            if not self._down:
                log.warning(
                    "router state: Redis is unreachable (%s: %s); using this process's memory "
                    "until it is back (retrying every %gs)",
                    type(exc).__name__,
                    exc,
                    self._reconnect_interval,
                )
            self._down = True
            self._down_until = time.monotonic() + self._reconnect_interval
            return await local()
        if self._down:
            log.warning("router state: Redis is reachable again; sharing state through it")
            self._down = False
        if self._owed:
            await self._repay()
        return result

    async def _repay(self) -> None:
        """Give Redis back the in-flight counts of requests that ended while it was away."""
        for deployment_id, count in list(self._owed.items()):
            try:
                await self._repay_script(keys=self._keys(deployment_id, "s"), args=[count, KEY_TTL])
            except (TimeoutError, RedisError, OSError):
                return  # still owed; tried again after the next call that reaches Redis
            if self._owed.get(deployment_id) == count:
                del self._owed[deployment_id]
            else:
                self._owed[deployment_id] -= count

    async def snapshot(self, ids: Sequence[str]) -> dict[str, DeploymentStats]:
        async def remote() -> dict[str, DeploymentStats]:
            keys = [k for i in ids for k in self._keys(i, "s", "rpm", "tpm", "fails")]
            rows = await self._snapshot(keys=keys, args=[USAGE_WINDOW, TPM_BUCKET])
            stats: dict[str, DeploymentStats] = {}
            for deployment_id, row in zip(ids, rows, strict=True):
                cause = row[8].decode() if isinstance(row[8], bytes) else str(row[8])
                remaining = _float(row[7]) or 0.0
                stats[deployment_id] = DeploymentStats(
                    in_flight=max(0, int(_float(row[0]) or 0)),
                    rpm_used=int(_float(row[1]) or 0),
                    tpm_used=int(_float(row[2]) or 0),
                    latency=_float(row[3]),
                    ttft=_float(row[4]),
                    samples=int(_float(row[5]) or 0),
                    recent_failures=int(_float(row[6]) or 0),
                    cooldown_remaining=remaining,
                    cooldown_cause=(cause or COOL_FAILURE) if remaining > 0 else None,
                    rpm_reset_in=_float(row[9]),
                )
            return stats

        return await self._run(remote, lambda: self._local.snapshot(ids))

    async def acquire(self, deployment_id: str, limits: Limits) -> bool:
        async def remote() -> bool:
            keys = self._keys(deployment_id, "s", "rpm", "tpm")
            args: list[str | int | float] = [
                USAGE_WINDOW,
                TPM_BUCKET,
                _cap(limits.rpm),
                _cap(limits.tpm),
                _cap(limits.max_parallel),
                os.urandom(8).hex(),
                KEY_TTL,
            ]
            return bool(await self._acquire(keys=keys, args=args))

        async def local() -> bool:
            ok = await self._local.acquire(deployment_id, limits)
            if ok:
                self._local_held[deployment_id] = self._local_held.get(deployment_id, 0) + 1
            return ok

        return await self._run(remote, local)

    async def release(
        self, deployment_id: str, *, tokens: int, latency: float | None, ttft: float | None
    ) -> None:
        held = self._local_held.get(deployment_id, 0)
        if held:  # acquired while Redis was down: give it back where it was counted
            if held > 1:
                self._local_held[deployment_id] = held - 1
            else:
                del self._local_held[deployment_id]
            await self._local.release(deployment_id, tokens=tokens, latency=latency, ttft=ttft)
            return

        async def remote() -> None:
            args: list[str | int | float] = [
                tokens,
                "" if latency is None else repr(latency),
                "" if ttft is None else repr(ttft),
                LATENCY_ALPHA,
                KEY_TTL,
                TPM_BUCKET,
            ]
            await self._release(keys=self._keys(deployment_id, "s", "tpm"), args=args)

        async def owed() -> None:  # counted in Redis, which is away: give it back later
            self._owed[deployment_id] = self._owed.get(deployment_id, 0) + 1

        await self._run(remote, owed)

    async def record_failure(
        self,
        deployment_id: str,
        policy: CooldownPolicy,
        *,
        rate_limited: bool,
        retry_after: float | None,
    ) -> bool:
        async def remote() -> bool:
            args: list[str | int | float] = [
                policy.window,
                policy.allowed_fails,
                cooldown_seconds(policy, rate_limited, retry_after),
                COOL_RATE_LIMIT if rate_limited else COOL_FAILURE,
                os.urandom(8).hex(),
                "1" if policy.enabled else "0",
                KEY_TTL,
            ]
            return bool(
                await self._failure(keys=self._keys(deployment_id, "s", "fails"), args=args)
            )

        async def local() -> bool:
            return await self._local.record_failure(
                deployment_id, policy, rate_limited=rate_limited, retry_after=retry_after
            )

        return await self._run(remote, local)

    async def aclose(self) -> None:
        await self._client.aclose()
