"""What the Router tells the outside: response headers and the /health report.

Headers name the model group and the deployment (its id: never a key), the number of
attempts, and the groups fallen back to:

    x-genroute-model-group: gemini-2.5-flash
    x-genroute-deployment: gemini/gemini-2.5-flash#1a2b3c4d
    x-genroute-attempts: 2
    x-genroute-fallback: backup-group          (only when a fallback served or was tried)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from genroute.call import RouteRecord
from genroute.errors import GenrouteError
from genroute.routing.groups import Deployment
from genroute.routing.state import DeploymentStats
from genroute.wire import GenerateContentResponse

__all__ = ["health_report", "routing_headers", "with_routing_headers"]


def _ascii(text: str) -> bytes:
    """Header-safe text: ASCII, with control characters (CR, LF, NUL) replaced."""
    if text.isascii() and text.isprintable():  # nearly always: nothing to replace
        return text.encode("ascii")
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text)
    return cleaned.encode("ascii", "replace")


def routing_headers(route: RouteRecord) -> list[tuple[bytes, bytes]]:
    """The x-genroute-* headers for a call the Router has routed (none if it never was)."""
    if not route.attempts or route.group is None:
        return []
    headers = [
        (b"x-genroute-model-group", _ascii(route.group)),
        (b"x-genroute-deployment", _ascii(route.deployment_id or "")),
        (b"x-genroute-attempts", str(len(route.attempts)).encode()),
    ]
    if route.fallbacks:
        headers.append((b"x-genroute-fallback", _ascii(",".join(route.fallbacks))))
    return headers


async def with_routing_headers(
    chunks: AsyncIterator[GenerateContentResponse],
    route: RouteRecord,
    headers: list[tuple[bytes, bytes]],
) -> AsyncIterator[GenerateContentResponse]:
    """Relay `chunks`, adding the routing headers to `headers` when the first chunk (or an
    error before it) arrives: the HTTP edge sends its headers only then."""
    added = False
    async with contextlib.aclosing(chunks) as inner:  # type: ignore[type-var]
        try:
            async for chunk in inner:
                if not added:
                    headers.extend(routing_headers(route))
                    added = True
                yield chunk
        except GenrouteError:
            if not added:
                headers.extend(routing_headers(route))
                added = True
            raise
    if not added:
        headers.extend(routing_headers(route))


def health_report(
    deployments: Sequence[Deployment],
    stats: dict[str, DeploymentStats],
    backend: str,
    omitted: int = 0,
) -> dict[str, Any]:
    """LiteLLM's /health shape: healthy and unhealthy endpoints, with their recent state;
    `wildcard_deployments_omitted` says how many wildcard names were not listed."""
    healthy: list[dict[str, Any]] = []
    unhealthy: list[dict[str, Any]] = []
    for d in deployments:
        s, limits = stats[d.id], d.limits
        item: dict[str, Any] = {
            "model_group": d.model_name,
            "deployment": d.id,
            "model": d.spec.params.model,
            "provider": d.spec.provider,
            "cooling_down": s.cooling,
            "in_flight": s.in_flight,
            "rpm_used": s.rpm_used,
            "tpm_used": s.tpm_used,
            "recent_failures": s.recent_failures,
        }
        if d.spec.params.api_base:
            item["api_base"] = d.spec.params.api_base
        if limits.rpm is not None:
            item["rpm_limit"] = limits.rpm
        if limits.tpm is not None:
            item["tpm_limit"] = limits.tpm
        if s.latency is not None:
            item["latency_ms"] = round(s.latency * 1000, 1)
        if s.ttft is not None:
            item["time_to_first_chunk_ms"] = round(s.ttft * 1000, 1)
        if s.cooling:
            item["cooldown_remaining_s"] = round(s.cooldown_remaining, 1)
            item["cooldown_cause"] = s.cooldown_cause
            unhealthy.append(item)
        else:
            item["at_capacity"] = s.at_cap(limits)
            healthy.append(item)
    report: dict[str, Any] = {
        "healthy_count": len(healthy),
        "unhealthy_count": len(unhealthy),
        "healthy_endpoints": healthy,
        "unhealthy_endpoints": unhealthy,
        "router_state": backend,
    }
    if omitted:
        report["wildcard_deployments_omitted"] = omitted
    return report
