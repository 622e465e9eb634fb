"""Rate and parallel-request limits per key, team and end user.

Windows are fixed calendar minutes: `rpm` counts requests admitted in the current minute,
`tpm` the tokens of calls that finished in it (so a call is admitted while the minute's
tokens are under the limit, and its own tokens count when it ends), and
`max_parallel_requests` the calls in flight. `admit` checks every scope of a call and then
counts it in all of them, or in none: in memory that is atomic on the event loop; with
Redis one Lua script does it, so the limits hold across instances.

`FallbackLimiter` is what a gateway with Redis uses: Redis's limits, or, while Redis cannot
be reached (or times out), this process's own limits, with one warning per outage and a
count of the calls admitted that way (`local_admissions`); Redis is tried again after a
backoff and used as soon as it answers. A call is released where it was admitted; a
release Redis does not take leaves its parallel slot to expire (`PARALLEL_TTL`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from genroute.errors import RateLimited, redis_errors
from genroute.governance.health import Dependency

__all__ = [
    "KEY_TTL",
    "PARALLEL_TTL",
    "WINDOW",
    "Clock",
    "FallbackLimiter",
    "LimitCheck",
    "Limiter",
    "MemoryLimiter",
    "RedisLimiter",
    "Ticket",
    "refusal",
]

Clock = Callable[[], float]
log = logging.getLogger("genroute.governance")

WINDOW = 60
KEY_TTL = 2 * WINDOW
PARALLEL_TTL = 600


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """The limits of one scope (`key:<hash>`, `team:<id>`, `end_user:<id>`)."""

    scope: str
    label: str
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None

    @property
    def empty(self) -> bool:
        """Whether no limit is set."""
        return self.rpm is None and self.tpm is None and self.parallel is None


@dataclass(slots=True)
class Ticket:
    """What `admit` counted, so that `release` undoes exactly that."""

    minute: int
    checks: list[LimitCheck] = field(default_factory=list)
    local: bool = False  # admitted by this process's memory while Redis was down


def refusal(check: LimitCheck, kind: str, now: float) -> RateLimited:
    """The 429 for a scope over one of its limits."""
    if kind == "parallel":
        return RateLimited(
            f"Too many parallel requests for {check.label}: max_parallel_requests is "
            f"{check.parallel}",
            retry_after=1.0,
        )
    limit = check.rpm if kind == "rpm" else check.tpm
    wait = float(WINDOW - int(now) % WINDOW)
    unit = "requests" if kind == "rpm" else "tokens"
    return RateLimited(
        f"Rate limit exceeded for {check.label}: {kind}_limit is {limit} {unit} per minute",
        retry_after=wait,
    )


class Limiter(Protocol):
    """Counts calls against limits."""

    async def admit(self, checks: list[LimitCheck]) -> Ticket:
        """Count the call in every scope, or raise RateLimited and count nothing."""

    async def release(self, ticket: Ticket, tokens: int) -> None:
        """The call ended: free its parallel slot and add its tokens."""


class MemoryLimiter:
    """Limits for one process; `clock` is the wall clock the minute windows follow."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._counts: dict[tuple[str, str, int], int] = {}
        self._parallel: dict[str, int] = {}
        self._minute = 0

    def _get(self, scope: str, kind: str, minute: int) -> int:
        return self._counts.get((scope, kind, minute), 0)

    async def admit(self, checks: list[LimitCheck]) -> Ticket:
        now = self._clock()
        minute = int(now // WINDOW)
        if minute != self._minute:
            self._counts = {k: v for k, v in self._counts.items() if k[2] >= minute - 1}
            self._minute = minute
        checks = [c for c in checks if not c.empty]
        for check in checks:
            if check.parallel is not None and self._parallel.get(check.scope, 0) >= check.parallel:
                raise refusal(check, "parallel", now)
            if check.rpm is not None and self._get(check.scope, "rpm", minute) >= check.rpm:
                raise refusal(check, "rpm", now)
            if check.tpm is not None and self._get(check.scope, "tpm", minute) >= check.tpm:
                raise refusal(check, "tpm", now)
        for check in checks:
            if check.rpm is not None:
                key = (check.scope, "rpm", minute)
                self._counts[key] = self._counts.get(key, 0) + 1
            if check.parallel is not None:
                self._parallel[check.scope] = self._parallel.get(check.scope, 0) + 1
        return Ticket(minute, checks)

    async def release(self, ticket: Ticket, tokens: int) -> None:
        minute = int(self._clock() // WINDOW)
        for check in ticket.checks:
            if check.parallel is not None:
                left = self._parallel.get(check.scope, 0) - 1
                if left > 0:
                    self._parallel[check.scope] = left
                else:
                    self._parallel.pop(check.scope, None)
            if check.tpm is not None and tokens:
                key = (check.scope, "tpm", minute)
                self._counts[key] = self._counts.get(key, 0) + tokens


# KEYS: per check, its rpm, tpm and parallel counters. ARGV: per check, rpm, tpm, parallel
# (-1 for none). Returns {index, kind} of the first refusal (kind 1 rpm, 2 tpm, 3 parallel),
# or {-1, 0} after counting the call in every scope.
_ADMIT = """
local n = #KEYS / 3
for i = 0, n - 1 do
  local rpm, tpm, par = tonumber(ARGV[i*3+1]), tonumber(ARGV[i*3+2]), tonumber(ARGV[i*3+3])
  if par >= 0 and tonumber(redis.call('GET', KEYS[i*3+3]) or '0') >= par then return {i, 3} end
  if rpm >= 0 and tonumber(redis.call('GET', KEYS[i*3+1]) or '0') >= rpm then return {i, 1} end
  if tpm >= 0 and tonumber(redis.call('GET', KEYS[i*3+2]) or '0') >= tpm then return {i, 2} end
end
for i = 0, n - 1 do
  if tonumber(ARGV[i*3+1]) >= 0 then
    redis.call('INCR', KEYS[i*3+1]); redis.call('EXPIRE', KEYS[i*3+1], KEY_TTL)
  end
  if tonumber(ARGV[i*3+3]) >= 0 then
    redis.call('INCR', KEYS[i*3+3]); redis.call('EXPIRE', KEYS[i*3+3], PARALLEL_TTL)
  end
end
return {-1, 0}
""".replace("PARALLEL_TTL", str(PARALLEL_TTL)).replace("KEY_TTL", str(KEY_TTL))

_RELEASE = """
local n = #KEYS / 2
for i = 0, n - 1 do
  if ARGV[i*2+1] == '1' then
    if tonumber(redis.call('DECR', KEYS[i*2+2])) < 0 then redis.call('SET', KEYS[i*2+2], 0) end
  end
  local tokens = tonumber(ARGV[i*2+2])
  if tokens > 0 then
    redis.call('INCRBY', KEYS[i*2+1], tokens); redis.call('EXPIRE', KEYS[i*2+1], KEY_TTL)
  end
end
return 0
""".replace("KEY_TTL", str(KEY_TTL))

_KINDS = {1: "rpm", 2: "tpm", 3: "parallel"}


def _none(value: int | None) -> int:
    return -1 if value is None else value


class RedisLimiter:
    """Limits shared by every instance using the same Redis."""

    def __init__(
        self, redis: Any, prefix: str = "genroute:limit", clock: Clock = time.time
    ) -> None:
        self._clock = clock
        self.redis = redis
        self.prefix = prefix
        self._admit = redis.register_script(_ADMIT)
        self._release = redis.register_script(_RELEASE)

    def _keys(self, scope: str, minute: int) -> tuple[str, str, str]:
        base = f"{self.prefix}:{scope}"
        return f"{base}:rpm:{minute}", f"{base}:tpm:{minute}", f"{base}:parallel"

    async def admit(self, checks: list[LimitCheck]) -> Ticket:
        now = self._clock()
        minute = int(now // WINDOW)
        checks = [c for c in checks if not c.empty]
        if not checks:
            return Ticket(minute)
        keys: list[str] = []
        args: list[int] = []
        for check in checks:
            keys.extend(self._keys(check.scope, minute))
            args.extend((_none(check.rpm), _none(check.tpm), _none(check.parallel)))
        index, kind = await self._admit(keys=keys, args=args)
        if int(index) >= 0:
            raise refusal(checks[int(index)], _KINDS[int(kind)], now)
        return Ticket(minute, checks)

    async def release(self, ticket: Ticket, tokens: int) -> None:
        if not ticket.checks:
            return
        minute = int(self._clock() // WINDOW)
        keys: list[str] = []
        args: list[int | str] = []
        for check in ticket.checks:
            _, tpm_key, parallel_key = self._keys(check.scope, minute)
            keys.extend((tpm_key, parallel_key))
            args.extend(
                ("1" if check.parallel is not None else "0", tokens if check.tpm is not None else 0)
            )
        await self._release(keys=keys, args=args)


class FallbackLimiter:
    """Redis's limits, or this process's while Redis is down (module docstring)."""

    def __init__(
        self, remote: RedisLimiter, local: MemoryLimiter, health: Dependency | None = None
    ) -> None:
        self.remote = remote
        self.local = local
        self.health = health or Dependency("Redis (limits)", fallback="this process's limits")
        self.local_admissions = 0

    @property
    def _clock(self) -> Clock:
        return self.remote._clock

    @_clock.setter
    def _clock(self, clock: Clock) -> None:
        self.remote._clock = clock
        self.local._clock = clock

    async def admit(self, checks: list[LimitCheck]) -> Ticket:
        if self.health.should_try():
            try:
                ticket = await self.remote.admit(checks)
            except RateLimited:
                self.health.succeeded()
                raise
            except redis_errors() as exc:
                self.health.failed(exc)
            else:
                self.health.succeeded()
                return ticket
        ticket = await self.local.admit(checks)
        ticket.local = True
        self.local_admissions += 1
        return ticket

    async def release(self, ticket: Ticket, tokens: int) -> None:
        if ticket.local:
            await self.local.release(ticket, tokens)
            return
        if not ticket.checks:
            return
        try:
            await self.remote.release(ticket, tokens)
        except redis_errors() as exc:
            self.health.failed(exc)
            log.debug("limits: a release Redis did not take (its slot expires)", exc_info=True)
