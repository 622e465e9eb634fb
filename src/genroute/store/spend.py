"""Queries over the spend ledger: the rows themselves, and totals grouped for reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from genroute.store.models import SpendLog
from genroute.store.repo import Store, aware

__all__ = ["GROUPS", "MAX_LOGS", "SpendFilter", "spend_logs", "spend_report", "spend_totals"]

GROUPS = {
    "model": SpendLog.model_group,
    "key": SpendLog.key_hash,
    "end_user": SpendLog.end_user,
    "team": SpendLog.team_id,
}
MAX_LOGS = 10_000


@dataclass(slots=True)
class SpendFilter:
    """Which ledger rows to read; every field optional."""

    key_hash: str | None = None
    end_user: str | None = None
    team_id: str | None = None
    model: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def apply(self, query: Any) -> Any:
        """The query narrowed to these rows."""
        if self.key_hash:
            query = query.where(SpendLog.key_hash == self.key_hash)
        if self.end_user:
            query = query.where(SpendLog.end_user == self.end_user)
        if self.team_id:
            query = query.where(SpendLog.team_id == self.team_id)
        if self.model:
            query = query.where(SpendLog.model_group == self.model)
        if self.start:
            query = query.where(SpendLog.start_time >= self.start)
        if self.end:
            query = query.where(SpendLog.start_time < self.end)
        return query


def _log_dict(row: SpendLog) -> dict[str, Any]:
    data = {str(c.key): getattr(row, c.key) for c in SpendLog.__table__.columns if c.key != "id"}
    data["start_time"] = aware(row.start_time).isoformat()  # type: ignore[union-attr]
    return data


async def spend_logs(
    store: Store, where: SpendFilter, limit: int = 1000, offset: int = 0
) -> list[dict[str, Any]]:
    """Ledger rows, oldest first."""
    query = where.apply(select(SpendLog)).order_by(SpendLog.id).limit(min(limit, MAX_LOGS))
    async with store.session() as session:
        rows = (await session.execute(query.offset(offset))).scalars()
        return [_log_dict(row) for row in rows]


_CACHE_HITS = func.sum(case((SpendLog.cache_hit.is_not(None), 1), else_=0))


async def spend_totals(store: Store, where: SpendFilter) -> dict[str, float | int]:
    """Requests, tokens and cost of the matching rows; the calls the response cache
    answered and what their answers had cost (`cache_saved`)."""
    query = where.apply(
        select(
            func.count(SpendLog.id),
            func.coalesce(func.sum(SpendLog.cost), 0.0),
            func.coalesce(func.sum(SpendLog.prompt_tokens), 0),
            func.coalesce(func.sum(SpendLog.output_tokens + SpendLog.thinking_tokens), 0),
            func.coalesce(_CACHE_HITS, 0),
            func.coalesce(func.sum(SpendLog.saved_cost), 0.0),
        )
    )
    async with store.session() as session:
        count, cost, prompt, output, hits, saved = (await session.execute(query)).one()
    return {
        "requests": int(count),
        "spend": float(cost),
        "prompt_tokens": int(prompt),
        "output_tokens": int(output),
        "cache_hits": int(hits),
        "cache_saved": float(saved),
    }


async def spend_report(
    store: Store, group_by: str, where: SpendFilter, by_day: bool = True
) -> list[dict[str, Any]]:
    """Spend grouped by day (optionally) and by model, key, team or end user."""
    column = GROUPS[group_by]
    keys: list[Any] = []
    if by_day:
        start: Any = SpendLog.start_time
        if store.engine.dialect.name == "postgresql":
            start = func.timezone("UTC", start)  # days in UTC, whatever the server's zone
        keys.append(func.date(start).label("day"))
    keys.append(column.label("group"))
    query = where.apply(
        select(
            *keys,
            func.count(SpendLog.id).label("requests"),
            func.sum(SpendLog.cost).label("spend"),
            func.sum(SpendLog.prompt_tokens).label("prompt_tokens"),
            func.sum(SpendLog.output_tokens + SpendLog.thinking_tokens).label("output_tokens"),
            _CACHE_HITS.label("cache_hits"),
            func.sum(SpendLog.saved_cost).label("cache_saved"),
        )
    ).group_by(*keys)
    query = query.order_by(*keys)
    async with store.session() as session:
        rows = (await session.execute(query)).all()
    result: list[dict[str, Any]] = []
    for row in rows:
        item: dict[str, Any] = {
            group_by: row.group,
            "requests": int(row.requests),
            "spend": float(row.spend or 0.0),
            "prompt_tokens": int(row.prompt_tokens or 0),
            "output_tokens": int(row.output_tokens or 0),
            "cache_hits": int(row.cache_hits or 0),
            "cache_saved": float(row.cache_saved or 0.0),
        }
        if by_day:
            item = {"day": str(row.day), **item}
        result.append(item)
    return result
