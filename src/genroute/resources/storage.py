"""What keeping a cached content on a provider costs, as a spend-ledger row.

Gemini charges for every token-hour a context cache is kept (its cachedContents), besides
the cached-token rate of the calls that read it. genroute creates a cached content on a
Gemini deployment once (`genroute.resources.resolve`), for the time the cache has left,
and prices that time then: the tokens the upstream says it holds, times the hours asked for, times
the model's storage rate (`genroute.providers.models.cache_storage_price`: model_info's
`cache_storage_cost_per_token_per_hour`, else the documented table). The charge is one
ledger row (operation `cachedContentStorage`) under the key and team that own the cache,
counted in their spend like a call's. Providers that charge no storage (OpenAI,
Anthropic's prompt cache, whose writes are priced on the call) have no such row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from genroute.cost import storage_cost
from genroute.providers.base import UpstreamCache
from genroute.providers.models import cache_storage_price
from genroute.store.caches import CacheRow
from genroute.store.ledger import SpendRecord
from genroute.store.repo import utcnow

__all__ = ["STORAGE_OPERATION", "Charge", "storage_charge"]

STORAGE_OPERATION = "cachedContentStorage"
Charge = Callable[[SpendRecord], Awaitable[None]]


def storage_charge(
    row: CacheRow, deployment: Any, created: UpstreamCache, seconds: float
) -> SpendRecord | None:
    """The ledger row for keeping `created` (a copy of the cached content `row` on
    `deployment`) for `seconds`; None when no storage price is known for its model."""
    spec = deployment.spec
    rate = cache_storage_price(spec.provider, spec.upstream_model, spec.model_info)
    tokens = created.tokens or row.token_count
    cost = storage_cost(tokens, seconds / 3600.0, rate)
    if not cost.known:
        return None
    owner = row.owner or ""
    return SpendRecord(
        request_id=f"storage-{row.cache_id}-{created.name.rsplit('/', 1)[-1]}"[:128],
        start_time=utcnow(),
        operation=STORAGE_OPERATION,
        status_code=200,
        key_hash=row.key_hash,
        team_id=owner.removeprefix("team:") if owner.startswith("team:") else None,
        model_group=row.model,
        deployment_id=getattr(deployment, "id", None) or None,
        provider=spec.provider,
        provider_model=spec.upstream_model,
        cached_tokens=tokens,
        cost=cost.usd,
        cached_content=f"cachedContents/{row.cache_id}",
    )
