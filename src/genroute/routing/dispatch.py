"""The loop around every Router call: choose, attempt, retry, cool down, fall back.

For the client's group, then each of its fallback groups in turn:
  1. take the state of the group's deployments; drop those cooling down or at a cap
     (none left: 503 UNAVAILABLE, or 429 with RetryInfo when rate limits are the cause);
  2. prefer deployments that have not failed in this call, then the lowest `order`;
     let the routing strategy choose one, and count it as started (atomically with
     its caps);
  3. run the attempt; on failure, count it towards the deployment's cooldown and, when
     the failure is retryable (`genroute.routing.retry`), retries are left and the
     group's retry budget allows one (`genroute.routing.budget`), go to 1.
     A retry on the same deployment waits an exponential backoff that honours the
     upstream's Retry-After; a retry on another deployment does not wait.
Whether a failure is retried, cools the deployment down or falls back is decided by its
`FailureReason` (the table in `genroute.errors`). Each attempt is appended to
`call.route.attempts`, and each group fallen back to, to `call.route.fallbacks`.

Every deployment that keeps failing cools down. While it does, calls that have somewhere
else to go (another deployment of the group, or a fallback group) skip it. A call with
nowhere else to go (the client's own group has that one deployment and no fallbacks) is
still tried on it, as in LiteLLM, so that the client gets the upstream's own answer rather
than "no deployment available"; its retries, like all others, are held by the budget.
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

from genroute.call import Attempt, Call
from genroute.config import RouterSettings
from genroute.errors import (
    FailureReason,
    GenrouteError,
    GroupRateLimited,
    GroupUnavailable,
    UpstreamTimeout,
    cancelled,
)
from genroute.routing.budget import RetryBudgets
from genroute.routing.groups import Deployment, ModelGroups
from genroute.routing.retry import backoff_delay
from genroute.routing.state import (
    COOL_RATE_LIMIT,
    USAGE_WINDOW,
    Clock,
    CooldownPolicy,
    DeploymentStats,
    RouterState,
)
from genroute.routing.strategies import strategy_for

__all__ = ["Dispatcher", "Lease", "aclose_quietly", "deadline", "exhausted"]

log = logging.getLogger("genroute.router")
T = TypeVar("T")
MAX_ACQUIRE_RACES = 5
Sleep = Callable[[float], Awaitable[None]]


@contextlib.asynccontextmanager
async def deadline(seconds: float, what: str, call: Call | None = None) -> AsyncIterator[None]:
    """Raise UpstreamTimeout naming `what` when the block takes over `seconds`, or runs past
    the call's own deadline (the client's `X-Server-Timeout`), whichever comes first."""
    remaining = call.remaining() if call is not None else None
    limit = seconds if remaining is None else min(seconds, remaining)
    try:
        async with asyncio.timeout(limit):
            yield
    except TimeoutError:
        if remaining is not None and remaining <= seconds:
            raise UpstreamTimeout(
                f"{what}: the call's deadline passed before the upstream answered"
            ) from None
        raise UpstreamTimeout(f"{what} did not answer within {seconds:g}s") from None


async def aclose_quietly(iterator: AsyncIterator[Any]) -> None:
    """Close an async generator, ignoring what it raises on the way out."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


@dataclass(slots=True)
class Lease:
    """A started attempt on a deployment; `finish` it exactly once when the call ends."""

    state: RouterState
    policy: CooldownPolicy
    deployment: Deployment
    attempt: Attempt
    stream: bool
    measure: bool = True  # count this call's latency (not for countTokens or embeddings)
    done: bool = False

    async def finish(
        self, error: GenrouteError | None, *, tokens: int = 0, ttft: float | None = None
    ) -> FailureReason | None:
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
        reason = error.reason
        if reason.cools_down:
            rate_limited = reason is FailureReason.RATE_LIMIT
            cooled = await self.state.record_failure(
                self.deployment.id,
                self.policy,
                rate_limited=rate_limited,
                retry_after=error.retry_after,
            )
            if cooled:
                log.warning(
                    "deployment %s of %s is cooling down after %s (last: %s %s)",
                    self.deployment.id,
                    self.deployment.model_name,
                    "a rate limit" if rate_limited else "failures",
                    error.code,
                    error.status,
                )
        return reason


class Dispatcher:
    """Runs one operation through a model group and its fallbacks."""

    def __init__(
        self,
        groups: ModelGroups,
        state: RouterState,
        settings: RouterSettings,
        rng: random.Random,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.groups = groups
        self.state = state
        self.settings = settings
        self.rng = rng
        self.sleep = sleep
        self.strategy = strategy_for(settings)
        self.policy = CooldownPolicy(
            allowed_fails=settings.allowed_fails,
            window=settings.allowed_fails_window,
            cooldown_time=settings.cooldown_time,
            enabled=not settings.disable_cooldowns,
        )
        self.budgets = RetryBudgets(
            percent=settings.retry_budget_percent,
            min_retries=settings.retry_budget_min_retries,
            window=settings.retry_budget_window,
            clock=clock,
            enabled=not settings.disable_retry_budget,
        )

    async def run(
        self,
        call: Call,
        op: Callable[[Deployment], Awaitable[T]],
        *,
        stream: bool,
        measure: bool = True,
    ) -> tuple[T, Lease]:
        """The first successful result, and the lease to finish when the call is over.

        `measure`: count the attempts' latency (generate and stream calls, not countTokens
        or embeddings)."""
        chain = [self.groups.canonical(call.model)]
        # Retries and fallbacks are charged to the budget of the group the client called
        # (for a wildcard name, of its wildcard entry).
        budget = self._budget_key(chain[0])
        last: GenrouteError | None = None
        index = -1
        while index + 1 < len(chain):
            index += 1
            group = chain[index]
            if index:
                # After an upstream failure, falling back to a group not known to answer is
                # a retry elsewhere: budgeted (genroute.routing.budget).
                assert last is not None
                if (
                    last.reason.retryable
                    and not self.budgets.healthy(self._budget_key(group))
                    and not self._may_retry(budget, call, f"to {group}")
                ):
                    raise last
                call.route.fallbacks.append(group)
            # The client's own group, one deployment, no fallbacks: nowhere else to go.
            alone = (
                not index
                and len(self.groups.group(group)) == 1
                and not self.groups.fallbacks(group, FailureReason.NO_DEPLOYMENT)
            )
            try:
                return await self._run_group(group, call, op, stream, measure, alone, budget)
            except GenrouteError as exc:
                last = exc
                if not exc.reason.falls_back:
                    raise
                if index == 0:
                    more = self.groups.fallbacks(group, exc.reason)[: self.settings.max_fallbacks]
                    chain += [g for g in dict.fromkeys(more) if g not in chain]
                if index + 1 < len(chain):
                    log.info(
                        "request %s: %s failed (%s %s); falling back to %s",
                        call.request_id,
                        group,
                        exc.code,
                        exc.status,
                        chain[index + 1],
                    )
        assert last is not None
        raise last

    def _budget_key(self, group: str) -> str:
        """A group's name, or that of the wildcard entry it was made from."""
        return self.groups.group(group)[0].entry.model_name

    def _retries(self, deployment: Deployment) -> int:
        own = deployment.spec.params.num_retries
        return self.settings.num_retries if own is None else own

    async def _run_group(
        self,
        group: str,
        call: Call,
        op: Callable[[Deployment], Awaitable[T]],
        stream: bool,
        measure: bool,
        alone: bool,
        budget: str,
    ) -> tuple[T, Lease]:
        deployments = self.groups.group(group)
        key = deployments[0].entry.model_name
        failed: list[str] = []
        last: GenrouteError | None = None
        tries = races = 0
        while True:
            try:
                deployment = await self._pick(group, deployments, set(failed), stream, alone)
            except (GroupUnavailable, GroupRateLimited):
                if last is not None:
                    raise last from None
                raise
            if last is not None and failed and deployment.id == failed[-1]:
                await self._backoff(tries, last)
            if not await self.state.acquire(deployment.id, deployment.limits):
                races += 1
                if races >= MAX_ACQUIRE_RACES:
                    raise GroupRateLimited(
                        f"model group {group!r}: every deployment is at its limit",
                        retry_after=1.0,
                    )
                continue
            tries += 1
            if not call.route.attempts:  # the call's first upstream attempt
                self.budgets.started(budget)
            lease = self._start(call, group, deployment, stream)
            lease.measure = measure
            try:
                result = await op(deployment)
            except GenrouteError as exc:
                reason = await lease.finish(exc)
                last = exc
                if reason is None or not reason.retryable:
                    raise
                self.budgets.outcome(key, answered=False)
                if tries > self._retries(deployment):
                    raise
                if not self._may_retry(budget, call, f"in {group}"):
                    raise
                failed.append(deployment.id)
                log.info(
                    "request %s: attempt %d on %s failed (%s %s); retrying",
                    call.request_id,
                    tries,
                    deployment.id,
                    exc.code,
                    exc.status,
                )
                continue
            except BaseException:
                await lease.finish(cancelled())
                raise
            self.budgets.outcome(key, answered=True)
            return result, lease

    async def _backoff(self, tries: int, last: GenrouteError) -> None:
        """Wait before retrying the deployment that just failed (or give up: `last`)."""
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
        await self.sleep(delay)

    def _may_retry(self, budget: str, call: Call, what: str) -> bool:
        if self.budgets.try_retry(budget):
            return True
        log.info(
            "request %s: the retry budget of %s is spent (retries and fallbacks after a "
            "failure are held under %g%% of its calls); not retrying %s",
            call.request_id,
            budget,
            self.settings.retry_budget_percent,
            what,
        )
        return False

    def _start(self, call: Call, group: str, deployment: Deployment, stream: bool) -> Lease:
        route = call.route
        route.group = group
        route.deployment_id = deployment.id
        route.provider = deployment.spec.provider
        route.provider_model = deployment.spec.upstream_model
        attempt = Attempt(group, deployment.id, deployment.spec.provider, time.perf_counter())
        route.attempts.append(attempt)
        return Lease(self.state, self.policy, deployment, attempt, stream)

    async def _pick(
        self,
        group: str,
        deployments: Sequence[Deployment],
        avoid: set[str],
        stream: bool,
        alone: bool,
    ) -> Deployment:
        """A deployment for the next attempt; one cooling down only when the call is
        `alone` (it has nowhere else to go)."""
        stats = await self.state.snapshot([d.id for d in deployments])
        usable = [
            d
            for d in deployments
            if not stats[d.id].at_cap(d.limits) and (alone or not stats[d.id].cooling)
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
        parts.append(f"{capped} at their rpm, tpm or parallel-request limit")
    message = (
        f"model group {group!r} has no deployment available ({', '.join(parts)}); "
        f"retry in {wait:g}s"
    )
    if rate_only:
        return GroupRateLimited(message, retry_after=wait)
    return GroupUnavailable(message, retry_after=wait)
