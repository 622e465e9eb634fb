"""Per-deployment routing state: cooldowns, requests in flight, rpm/tpm usage and latency.

`RouterState` is the interface the Router uses; `LocalState` keeps it in this process's
memory. `genroute.routing.redis_state.RedisState` shares the same state between processes
through Redis and falls back to a `LocalState` while Redis is unreachable.

Windows: rpm counts requests started in the last 60 s (sliding); tpm sums the tokens of
calls that finished in the last 60 s, in 5-second buckets. A deployment cools down when it
has failed more than `allowed_fails` times within `allowed_fails_window` seconds.

Deployments built for wildcard names come and go (`genroute.routing.groups` keeps the
recently used ones). The Router tells the state which ids are still resident
(`retain`); `LocalState` forgets the others once nothing is in flight on them, sweeping
whenever it has doubled in size since the last sweep, so its memory follows the number of
resident deployments, not the number of names clients ever sent.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "COOL_FAILURE",
    "COOL_RATE_LIMIT",
    "SWEEP_FLOOR",
    "USAGE_WINDOW",
    "Clock",
    "CooldownPolicy",
    "DeploymentStats",
    "Limits",
    "LocalState",
    "Resident",
    "RouterState",
    "cooldown_seconds",
    "ema",
]

Clock = Callable[[], float]
Resident = Callable[[str], bool]

USAGE_WINDOW = 60.0
TPM_BUCKET = 5.0
LATENCY_ALPHA = 0.3  # weight of a new sample in the moving average

COOL_RATE_LIMIT = "rate_limit"
COOL_FAILURE = "failure"
SWEEP_FLOOR = 256  # LocalState never sweeps below this many entries


@dataclass(frozen=True, slots=True)
class Limits:
    """A deployment's caps; None means no cap."""

    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None


@dataclass(frozen=True, slots=True)
class CooldownPolicy:
    """When a failing deployment is taken out of rotation, and for how long."""

    allowed_fails: int = 3
    window: float = 60.0
    cooldown_time: float = 5.0
    enabled: bool = True


@dataclass(slots=True)
class DeploymentStats:
    """What the strategies and /health know about one deployment right now."""

    in_flight: int = 0
    rpm_used: int = 0
    tpm_used: int = 0
    latency: float | None = None  # moving average of whole-call seconds
    ttft: float | None = None  # moving average of seconds to a stream's first chunk
    samples: int = 0
    recent_failures: int = 0
    cooldown_remaining: float = 0.0
    cooldown_cause: str | None = None
    rpm_reset_in: float | None = None  # seconds until the oldest counted request leaves

    @property
    def cooling(self) -> bool:
        """True while the deployment is skipped after failures."""
        return self.cooldown_remaining > 0

    def at_cap(self, limits: Limits) -> bool:
        """True when starting one more request would exceed a cap."""
        return (
            (limits.rpm is not None and self.rpm_used >= limits.rpm)
            or (limits.tpm is not None and self.tpm_used >= limits.tpm)
            or (limits.max_parallel is not None and self.in_flight >= limits.max_parallel)
        )


class RouterState(Protocol):
    """Where the Router keeps per-deployment state (this process, or shared via Redis)."""

    @property
    def backend(self) -> str:
        """`memory`, `redis`, or `memory (redis unreachable)`."""

    async def snapshot(self, ids: Sequence[str]) -> dict[str, DeploymentStats]:
        """The current stats of each deployment."""

    async def acquire(self, deployment_id: str, limits: Limits) -> bool:
        """Count a request as started unless a cap is reached (atomically); False if capped."""

    async def release(
        self, deployment_id: str, *, tokens: int, latency: float | None, ttft: float | None
    ) -> None:
        """A started request has ended: one fewer in flight, its tokens and timings counted."""

    async def record_failure(
        self,
        deployment_id: str,
        policy: CooldownPolicy,
        *,
        rate_limited: bool,
        retry_after: float | None,
    ) -> bool:
        """Count a failure; True when it put the deployment into cooldown."""

    def retain(self, resident: Resident) -> None:
        """Keep state only for deployment ids `resident` accepts (and any in flight)."""

    async def aclose(self) -> None:
        """Release connections."""


def ema(old: float | None, sample: float) -> float:
    """The moving average after one more sample."""
    return sample if old is None else old + LATENCY_ALPHA * (sample - old)


def cooldown_seconds(
    policy: CooldownPolicy, rate_limited: bool, retry_after: float | None
) -> float:
    """How long to cool down: `cooldown_time`, or the upstream's retry delay if longer."""
    if rate_limited and retry_after is not None:
        return max(policy.cooldown_time, retry_after)
    return policy.cooldown_time


@dataclass(slots=True)
class _Local:
    in_flight: int = 0
    starts: collections.deque[float] = field(default_factory=collections.deque)
    tokens: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)
    token_sum: int = 0
    fails: collections.deque[float] = field(default_factory=collections.deque)
    latency: float | None = None
    ttft: float | None = None
    samples: int = 0
    cool_until: float = 0.0
    cool_cause: str | None = None


class LocalState:
    """RouterState in this process's memory (one event loop, so no locks are needed).

    `clock` gives the time in seconds (monotonic by default); tests pass their own to move
    windows and cooldowns forward without sleeping."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._items: dict[str, _Local] = {}
        self._clock = clock
        self._resident: Resident | None = None
        self._sweep_at = SWEEP_FLOOR

    @property
    def backend(self) -> str:
        return "memory"

    def retain(self, resident: Resident) -> None:
        self._resident = resident

    def __len__(self) -> int:
        return len(self._items)

    def _get(self, deployment_id: str) -> _Local:
        item = self._items.get(deployment_id)
        if item is None:
            if len(self._items) >= self._sweep_at:
                self._sweep()
            item = self._items[deployment_id] = _Local()
        return item

    def _sweep(self) -> None:
        """Forget deployments no longer resident with nothing in flight."""
        resident = self._resident
        if resident is not None:
            gone = [k for k, v in self._items.items() if not v.in_flight and not resident(k)]
            for key in gone:
                del self._items[key]
        self._sweep_at = max(SWEEP_FLOOR, 2 * len(self._items))

    @staticmethod
    def _prune(item: _Local, now: float) -> None:
        while item.starts and item.starts[0] <= now - USAGE_WINDOW:
            item.starts.popleft()
        while item.tokens and item.tokens[0][0] <= now - USAGE_WINDOW:
            item.token_sum -= item.tokens.popleft()[1]

    def _stats(self, item: _Local, now: float) -> DeploymentStats:
        self._prune(item, now)
        remaining = max(0.0, item.cool_until - now)
        return DeploymentStats(
            in_flight=item.in_flight,
            rpm_used=len(item.starts),
            tpm_used=item.token_sum,
            latency=item.latency,
            ttft=item.ttft,
            samples=item.samples,
            recent_failures=sum(1 for t in item.fails if t > now - 600),
            cooldown_remaining=remaining,
            cooldown_cause=item.cool_cause if remaining else None,
            rpm_reset_in=(item.starts[0] + USAGE_WINDOW - now) if item.starts else None,
        )

    async def snapshot(self, ids: Sequence[str]) -> dict[str, DeploymentStats]:
        now = self._clock()
        return {i: self._stats(self._get(i), now) for i in ids}

    async def acquire(self, deployment_id: str, limits: Limits) -> bool:
        now = self._clock()
        item = self._get(deployment_id)
        if self._stats(item, now).at_cap(limits):
            return False
        item.starts.append(now)
        item.in_flight += 1
        return True

    async def release(
        self, deployment_id: str, *, tokens: int, latency: float | None, ttft: float | None
    ) -> None:
        item = self._get(deployment_id)
        item.in_flight = max(0, item.in_flight - 1)
        if tokens:
            item.tokens.append((self._clock(), tokens))
            item.token_sum += tokens
        if latency is not None:
            item.latency = ema(item.latency, latency)
            item.samples += 1
        if ttft is not None:
            item.ttft = ema(item.ttft, ttft)

    async def record_failure(
        self,
        deployment_id: str,
        policy: CooldownPolicy,
        *,
        rate_limited: bool,
        retry_after: float | None,
    ) -> bool:
        now = self._clock()
        item = self._get(deployment_id)
        item.fails.append(now)
        while item.fails and item.fails[0] <= now - max(policy.window, 600):
            item.fails.popleft()
        if not policy.enabled or item.cool_until > now:  # off, or cooling already
            return False
        in_window = sum(1 for t in item.fails if t > now - policy.window)
        if in_window <= policy.allowed_fails:
            return False
        item.cool_until = now + cooldown_seconds(policy, rate_limited, retry_after)
        item.cool_cause = COOL_RATE_LIMIT if rate_limited else COOL_FAILURE
        item.fails.clear()
        return True

    async def aclose(self) -> None:
        return None
