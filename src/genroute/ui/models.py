"""The Models page: every model group, each deployment with its provider, its health
(serving, cooling down, at capacity), its cooldown, its recent latency and error rate.

From the management API's `/model/health`: the Router's state (shared through Redis when
configured, else this instance's) and the ledger's calls over the last 15 minutes.
"""

from __future__ import annotations

from typing import Any

from genroute.ui.context import Page
from genroute.ui.http import Response

__all__ = ["OPTIONAL", "health_label", "page"]

# What /model/health leaves out of a deployment that has none.
OPTIONAL = (
    "api_base",
    "latency_ms",
    "cooldown_remaining_s",
    "cooldown_cause",
    "avg_latency_ms",
    "error_rate",
)


def health_label(deployment: dict[str, Any]) -> str:
    """Healthy, Cooling down or At capacity."""
    if deployment.get("cooling_down"):
        return "Cooling down"
    if deployment.get("at_capacity"):
        return "At capacity"
    return "Healthy"


async def page(page: Page) -> Response:
    """The Models page: one table per model group."""
    health = await page.api("GET", "/model/health")
    groups: dict[str, list[dict[str, Any]]] = {}
    for deployment in health["deployments"]:
        for name in OPTIONAL:
            deployment.setdefault(name, None)
        deployment["health"] = health_label(deployment)
        groups.setdefault(deployment["model_group"], []).append(deployment)
    return page.render(
        "models.html",
        page_name="models",
        groups=groups,
        window=health["window"],
        router_state=health["router_state"],
        omitted=health["wildcard_deployments_omitted"],
    )
