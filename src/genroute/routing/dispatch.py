"""The loop around every Router call: choose, attempt, retry, cool down, fall back.

For the client's group, then each of its fallback groups in turn:
  1. take the state of the group's deployments; drop those cooling down or at a cap
     (none left: 503 UNAVAILABLE, or 429 with RetryInfo when rate limits are the cause);
  2. prefer deployments that have not failed in this call, then the lowest `order`;
     let the routing strategy choose one, and count it as started (atomically with
     its caps);
  3. run the attempt; on failure, count it towards the deployment's cooldown and, when
     the failure is retryable (`genroute.routing.retry`) and retries are left, go to 1.
     A retry on the same deployment waits an exponential backoff that honours the
     upstream's Retry-After; a retry on another deployment does not wait.
Each attempt is appended to `ctx.attempt_log`; the group fallen back to, to `ctx.fallbacks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from genroute.config import RouterSettings
from genroute.context import Attempt, CallContext
from genroute.errors import GenrouteError, UpstreamTimeout
from genroute.routing.groups import Deployment, ModelGroups
from genroute.routing.retry import (
    FailureKind,
    GroupRateLimited,
    GroupUnavailable,
    backoff_delay,
    classify,
)
from genroute.routing.state import (
    COOL_RATE_LIMIT,
    USAGE_WINDOW,
    CooldownPolicy,
    DeploymentStats,
    RouterState,
)
from genroute.routing.strategies import strategy_for

log = logging.getLogger("genroute.router")
T = TypeVar("T")
MAX_ACQUIRE_RACES = 5


@contextlib.asynccontextmanager
async def deadline(seconds: float, what: str) -> AsyncIterator[None]:
    """Raise UpstreamTimeout naming `what` when the block takes over `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise UpstreamTimeout(f"{what} did not answer within {seconds:g}s") from None


async def aclose_quietly(iterator: AsyncIterator[Any]) -> None:
    """Close an async generator, ignoring what it raises on the way out."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


def cancelled_error() -> GenrouteError:
    """What a call the client abandoned is recorded as."""
    return GenrouteError("the client went away before the call ended", code=499)


@dataclass(slots=True)
class Lease:
    """A started attempt on a deployment; `finish` it exactly once when the call ends."""

    state: RouterState
    policy: CooldownPolicy
    deployment: Deployment
    attempt: Attempt
    stream: bool
    may_cool: bool
    measure: bool = True  # count this call's latency (not for countTokens or embeddings)
    done: bool = False

    async def finish(
        self, error: GenrouteError | None, *, tokens: int = 0, ttft: float | None = None
    ) -> FailureKind | None:
        """Release the deployment, record timings and usage, count a failure."""
        if self.done:
            return None
        self.done = True
        now = time.perf_counter()
        self.attempt.ended = now
        elapsed = now - self.attempt.started
        timed_out = isinstance(error, UpstreamTimeout)
        latency = None
        if self.measure and not self.stream and (error is None or timed_out):
            latency = elapsed
        if self.stream and timed_out and ttft is None:
            ttft = elapsed
        await self.state.release(self.deployment.id, tokens=tokens, latency=latency, ttft=ttft)
        if error is None:
            return None
        self.attempt.error_code = error.code
        self.attempt.error_status = error.status
        self.attempt.error_message = error.message
        kind = classify(error)
        if kind.cools_down and self.may_cool:
            cooled = await self.state.record_failure(
                self.deployment.id,
                self.policy,
                rate_limited=kind is FailureKind.RATE_LIMIT,
                retry_after=error.retry_after,
            )
            if cooled:
                log.warning(
                    "deployment %s of %s is cooling down after %s (last: %s %s)",
                    self.deployment.id,
                    self.deployment.model_name,
                    "a rate limit" if kind is FailureKind.RATE_LIMIT else "failures",
                    error.code,
                    error.status,
                )
        return kind


class Dispatcher:
    """Runs one operation through a model group and its fallbacks."""

    def __init__(
        self,
        groups: ModelGroups,
        state: RouterState,
        settings: RouterSettings,
        rng: random.Random,
    ) -> None:
        self.groups = groups
        self.state = state
        self.settings = settings
        self.rng = rng
        self.strategy = strategy_for(settings)
        self.policy = CooldownPolicy(
            allowed_fails=settings.allowed_fails,
            window=settings.allowed_fails_window,
            cooldown_time=settings.cooldown_time,
            enabled=not settings.disable_cooldowns,
        )

    async def run(
        self,
        model: str,
        ctx: CallContext,
        op: Callable[[Deployment], Awaitable[T]],
        *,
        stream: bool,
        measure: bool = True,
    ) -> tuple[T, Lease]:
        """The first successful result, and the lease to finish when the call is over.

        `measure`: count the attempts' latency (generate and stream calls, not countTokens
        or embeddings)."""
        chain = [self.groups.canonical(model)]
        last: GenrouteError | None = None
        index = -1
        while index + 1 < len(chain):
            index += 1
            group = chain[index]
            if index:
                ctx.fallbacks.append(group)
            try:
                return await self._run_group(group, ctx, op, stream, measure)
            except GenrouteError as exc:
                last = exc
                kind = classify(exc)
                if not kind.falls_back:
                    raise
                if index == 0:
                    more = self.groups.fallbacks(group, kind)[: self.settings.max_fallbacks]
                    chain += [g for g in dict.fromkeys(more) if g not in chain]
                if index + 1 < len(chain):
                    log.info(
                        "request %s: %s failed (%s %s); falling back to %s",
                        ctx.request_id,
                        group,
                        exc.code,
                        exc.status,
                        chain[index + 1],
                    )
        assert last is not None
        raise last

    def _retries(self, deployment: Deployment) -> int:
        own = deployment.spec.params.num_retries
        return self.settings.num_retries if own is None else own

    async def _run_group(
        self,
        group: str,
        ctx: CallContext,
        op: Callable[[Deployment], Awaitable[T]],
        stream: bool,
        measure: bool,
    ) -> tuple[T, Lease]:
        deployments = self.groups.group(group)
        may_cool = len(deployments) > 1 or bool(self.groups.fallbacks(group, FailureKind.TRANSIENT))
        failed: list[str] = []
        last: GenrouteError | None = None
        tries = races = 0
        while True:
            try:
                deployment = await self._pick(group, deployments, set(failed), stream)
            except (GroupUnavailable, GroupRateLimited):
                if last is not None:
                    raise last from None
                raise
            if last is not None and failed and deployment.id == failed[-1]:
                delay = backoff_delay(
                    tries,
                    base=self.settings.retry_backoff_base,
                    cap=self.settings.max_retry_backoff,
                    minimum=self.settings.retry_after,
                    hinted=last.retry_after,
                    rng=self.rng,
                )
                if delay is None:
                    raise last
                await asyncio.sleep(delay)
            if not await self.state.acquire(deployment.id, deployment.limits):
                races += 1
                if races >= MAX_ACQUIRE_RACES:
                    raise GroupRateLimited(
                        f"model group {group!r}: every deployment is at its limit",
                        retry_after=1.0,
                    )
                continue
            tries += 1
            lease = self._start(ctx, group, deployment, stream, may_cool)
            lease.measure = measure
            try:
                result = await op(deployment)
            except GenrouteError as exc:
                kind = await lease.finish(exc)
                last = exc
                if kind is None or not kind.retryable or tries > self._retries(deployment):
                    raise
                failed.append(deployment.id)
                log.info(
                    "request %s: attempt %d on %s failed (%s %s); retrying",
                    ctx.request_id,
                    tries,
                    deployment.id,
                    exc.code,
                    exc.status,
                )
                continue
            except BaseException:
                await lease.finish(cancelled_error())
                raise
            return result, lease

    def _start(
        self, ctx: CallContext, group: str, deployment: Deployment, stream: bool, may_cool: bool
    ) -> Lease:
        ctx.attempts += 1
        ctx.model_group = group
        ctx.deployment_id = deployment.id
        ctx.provider = deployment.spec.provider
        ctx.provider_model = deployment.spec.upstream_model
        attempt = Attempt(group, deployment.id, deployment.spec.provider, time.perf_counter())
        ctx.attempt_log.append(attempt)
        return Lease(self.state, self.policy, deployment, attempt, stream, may_cool)

    async def _pick(
        self, group: str, deployments: Sequence[Deployment], avoid: set[str], stream: bool
    ) -> Deployment:
        stats = await self.state.snapshot([d.id for d in deployments])
        usable = [
            d for d in deployments if not stats[d.id].cooling and not stats[d.id].at_cap(d.limits)
        ]
        if not usable:
            raise exhausted(group, deployments, stats)
        preferred = [d for d in usable if d.id not in avoid] or usable
        first = min(_order(d) for d in preferred)
        preferred = [d for d in preferred if _order(d) == first]
        return self.strategy(preferred, stats, stream, self.rng)


def _order(deployment: Deployment) -> int:
    order = deployment.spec.params.order
    return sys.maxsize if order is None else order


def exhausted(
    group: str, deployments: Sequence[Deployment], stats: dict[str, DeploymentStats]
) -> GenrouteError:
    """The error for a group with no usable deployment: 429 for rate limits, else 503."""
    waits: list[float] = []
    cooling = capped = 0
    rate_only = True
    for d in deployments:
        s = stats[d.id]
        if s.cooling:
            cooling += 1
            waits.append(s.cooldown_remaining)
            rate_only = rate_only and s.cooldown_cause == COOL_RATE_LIMIT
        else:
            capped += 1
            waits.append(s.rpm_reset_in if s.rpm_reset_in is not None else USAGE_WINDOW)
    wait = max(1.0, math.ceil(min(waits) * 10) / 10) if waits else 1.0
    parts = []
    if cooling:
        parts.append(f"{cooling} cooling down after {'rate limits' if rate_only else 'failures'}")
    if capped:
        parts.append(f"{capped} at their rpm/tpm limit")
    message = (
        f"model group {group!r} has no deployment available ({', '.join(parts)}); "
        f"retry in {wait:g}s"
    )
    if rate_only:
        return GroupRateLimited(message, retry_after=wait)
    return GroupUnavailable(message, retry_after=wait)
