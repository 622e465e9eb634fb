"""Routing strategies: which deployment of a group serves the next attempt.

Every strategy gets only the deployments that may be used now (not cooling down, under
their rpm/tpm/parallel caps) and their current stats, and returns one of them.

    simple-shuffle         random, weighted by `weight` (else rpm, else tpm, else equal)
    least-busy             fewest requests in flight (ties: random)
    latency-based-routing  lowest moving average of latency (of time to first chunk for
                           streams); deployments without samples are tried first; with
                           `routing_strategy_args.lowest_latency_buffer` b, a random one of
                           those within (1 + b) x the best
    usage-based-routing    most headroom: lowest max(rpm_used/rpm, tpm_used/tpm); a deployment
                           without caps counts as empty; ties by fewer tokens, then requests
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from genroute.config import RouterSettings
from genroute.routing.groups import Deployment
from genroute.routing.state import DeploymentStats

__all__ = [
    "Strategy",
    "latency_based",
    "least_busy",
    "simple_shuffle",
    "strategy_for",
    "usage_based",
]

Strategy = Callable[
    [Sequence[Deployment], dict[str, DeploymentStats], bool, random.Random], Deployment
]


def _lowest(
    candidates: Sequence[Deployment], key: Callable[[Deployment], object], rng: random.Random
) -> Deployment:
    scores = {d.id: key(d) for d in candidates}
    best = min(scores.values())  # type: ignore[type-var]
    return rng.choice([d for d in candidates if scores[d.id] == best])


def simple_shuffle(
    candidates: Sequence[Deployment],
    stats: dict[str, DeploymentStats],
    stream: bool,
    rng: random.Random,
) -> Deployment:
    """Weighted random choice."""
    if len(candidates) == 1:
        return candidates[0]
    weights = [d.weight for d in candidates]
    if not any(weights):
        return rng.choice(list(candidates))
    return rng.choices(list(candidates), weights=weights, k=1)[0]


def least_busy(
    candidates: Sequence[Deployment],
    stats: dict[str, DeploymentStats],
    stream: bool,
    rng: random.Random,
) -> Deployment:
    """Fewest requests in flight."""
    return _lowest(candidates, lambda d: stats[d.id].in_flight, rng)


def usage_based(
    candidates: Sequence[Deployment],
    stats: dict[str, DeploymentStats],
    stream: bool,
    rng: random.Random,
) -> Deployment:
    """Most rpm/tpm headroom."""

    def key(d: Deployment) -> tuple[float, int, int]:
        s, limits = stats[d.id], d.limits
        used = 0.0
        if limits.rpm:
            used = max(used, s.rpm_used / limits.rpm)
        if limits.tpm:
            used = max(used, s.tpm_used / limits.tpm)
        return (used, s.tpm_used, s.rpm_used)

    return _lowest(candidates, key, rng)


def latency_based(buffer: float) -> Strategy:
    """Lowest moving-average latency (time to first chunk for streams)."""

    def choose(
        candidates: Sequence[Deployment],
        stats: dict[str, DeploymentStats],
        stream: bool,
        rng: random.Random,
    ) -> Deployment:
        def measure(d: Deployment) -> float | None:
            s = stats[d.id]
            return s.ttft if stream and s.ttft is not None else s.latency

        unmeasured = [d for d in candidates if measure(d) is None]
        if unmeasured:
            return rng.choice(unmeasured)
        values = {d.id: measure(d) or 0.0 for d in candidates}
        best = min(values.values())
        near = [d for d in candidates if values[d.id] <= best * (1 + buffer)]
        return rng.choice(near)

    return choose


def strategy_for(settings: RouterSettings) -> Strategy:
    """The strategy named by `router_settings.routing_strategy`."""
    name = settings.routing_strategy
    if name == "least-busy":
        return least_busy
    if name == "latency-based-routing":
        return latency_based(settings.routing_strategy_args.lowest_latency_buffer)
    if name in ("usage-based-routing", "usage-based-routing-v2"):
        return usage_based
    return simple_shuffle
