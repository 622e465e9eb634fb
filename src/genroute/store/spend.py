"""Queries over the spend ledger: the rows themselves, and totals grouped for reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from genroute.store.models import SpendLog
from genroute.store.repo import Store, aware
from genroute.store.routing import parse_routing

__all__ = [
    "BUCKETS",
    "GROUPS",
    "MAX_LOGS",
    "SpendFilter",
    "deployment_stats",
    "spend_logs",
    "spend_report",
    "spend_totals",
]

GROUPS = {
    "model": SpendLog.model_group,
    "key": SpendLog.key_hash,
    "end_user": SpendLog.end_user,
    "team": SpendLog.team_id,
}
MAX_LOGS = 10_000
BUCKETS = ("day", "hour")


@dataclass(slots=True)
class SpendFilter:
    """Which ledger rows to read; every field optional."""

    key_hash: str | None = None
    end_user: str | None = None
    team_id: str | None = None
    model: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    # "success" (below 400), "error" (400 and over) or one HTTP status code
    status: str | int | None = None
    request_id: str | None = None
    batch: str | None = None  # batches/{id}: the rows of that batch's requests

    def apply(self, query: Any) -> Any:
        """The query narrowed to these rows."""
        if self.request_id:
            query = query.where(SpendLog.request_id == self.request_id)
        if self.batch:
            query = query.where(SpendLog.batch == self.batch)
        if self.status == "success":
            query = query.where(SpendLog.status_code < 400)
        elif self.status == "error":
            query = query.where(SpendLog.status_code >= 400)
        elif isinstance(self.status, int):
            query = query.where(SpendLog.status_code == self.status)
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
    data["routing"] = parse_routing(row.routing)
    return data


async def spend_logs(
    store: Store,
    where: SpendFilter,
    limit: int = 1000,
    offset: int = 0,
    *,
    newest_first: bool = False,
) -> list[dict[str, Any]]:
    """Ledger rows in the order they were written (or newest first by start time)."""
    order = [SpendLog.start_time.desc(), SpendLog.id.desc()] if newest_first else [SpendLog.id]
    query = where.apply(select(SpendLog)).order_by(*order).limit(min(limit, MAX_LOGS))
    async with store.session() as session:
        rows = (await session.execute(query.offset(offset))).scalars()
        return [_log_dict(row) for row in rows]


_CACHE_HITS = func.sum(case((SpendLog.cache_hit.is_not(None), 1), else_=0))
# Calls refused before they reached a model (`genroute.store.routing.refusal_json`): rows
# with cost 0 that `requests` counts, and `refused` says how many of them there are.
_REFUSED = func.sum(case((SpendLog.routing.like('{"refused"%'), 1), else_=0))


async def spend_totals(store: Store, where: SpendFilter) -> dict[str, float | int]:
    """Requests, tokens and cost of the matching rows; the calls the response cache
    answered and what their answers had cost (`cache_saved`); of the requests, those
    refused before they reached a model (`refused`: a key, budget or limit, cost 0)."""
    query = where.apply(
        select(
            func.count(SpendLog.id),
            func.coalesce(func.sum(SpendLog.cost), 0.0),
            func.coalesce(func.sum(SpendLog.prompt_tokens), 0),
            func.coalesce(func.sum(SpendLog.output_tokens + SpendLog.thinking_tokens), 0),
            func.coalesce(_CACHE_HITS, 0),
            func.coalesce(func.sum(SpendLog.saved_cost), 0.0),
            func.coalesce(_REFUSED, 0),
        )
    )
    async with store.session() as session:
        count, cost, prompt, output, hits, saved, refused = (await session.execute(query)).one()
    return {
        "requests": int(count),
        "spend": float(cost),
        "prompt_tokens": int(prompt),
        "output_tokens": int(output),
        "cache_hits": int(hits),
        "cache_saved": float(saved),
        "refused": int(refused),
    }


def _bucket(store: Store, bucket: str) -> Any:
    """The ledger's start time cut to its UTC day (`2026-12-03`) or hour
    (`2026-12-03 14:00`), on SQLite and PostgreSQL alike."""
    start: Any = SpendLog.start_time
    postgres = store.engine.dialect.name == "postgresql"
    if postgres:
        start = func.timezone("UTC", start)  # whatever the server's zone
    if bucket == "day":
        return func.date(start)
    if postgres:
        return func.to_char(func.date_trunc("hour", start), "YYYY-MM-DD HH24:00")
    return func.strftime("%Y-%m-%d %H:00", start)


async def spend_report(
    store: Store, group_by: str, where: SpendFilter, by_day: bool = True, bucket: str = "day"
) -> list[dict[str, Any]]:
    """Spend grouped by time (`bucket`: day or hour; none without `by_day`) and by model,
    key, team or end user. Grouped by key, each row also names the key's alias. `requests`
    counts the calls refused before they reached a model too; `refused` says how many."""
    column = GROUPS[group_by]
    keys: list[Any] = []
    if by_day:
        keys.append(_bucket(store, bucket).label("period"))
    keys.append(column.label("group"))
    extra = [func.max(SpendLog.key_alias).label("key_alias")] if group_by == "key" else []
    query = where.apply(
        select(
            *keys,
            *extra,
            func.count(SpendLog.id).label("requests"),
            func.sum(SpendLog.cost).label("spend"),
            func.sum(SpendLog.prompt_tokens).label("prompt_tokens"),
            func.sum(SpendLog.output_tokens + SpendLog.thinking_tokens).label("output_tokens"),
            _CACHE_HITS.label("cache_hits"),
            func.sum(SpendLog.saved_cost).label("cache_saved"),
            _REFUSED.label("refused"),
        )
    ).group_by(*keys)
    query = query.order_by(*keys)
    async with store.session() as session:
        rows = (await session.execute(query)).all()
    result: list[dict[str, Any]] = []
    for row in rows:
        item: dict[str, Any] = {group_by: row.group}
        if extra:
            item["key_alias"] = row.key_alias
        item.update(
            requests=int(row.requests),
            spend=float(row.spend or 0.0),
            prompt_tokens=int(row.prompt_tokens or 0),
            output_tokens=int(row.output_tokens or 0),
            cache_hits=int(row.cache_hits or 0),
            cache_saved=float(row.cache_saved or 0.0),
            refused=int(row.refused or 0),
        )
        if by_day:
            item = {bucket: str(row.period), **item}
        result.append(item)
    return result


async def deployment_stats(store: Store, since: datetime) -> dict[str, dict[str, Any]]:
    """Per deployment, the calls it answered since `since`: requests, errors (status 400
    and over), error rate and mean latency (ms). Calls refused before they reached a model
    name no deployment: they are not counted here."""
    errors = func.sum(case((SpendLog.status_code >= 400, 1), else_=0))
    query = (
        select(
            SpendLog.deployment_id,
            func.count(SpendLog.id),
            errors,
            func.avg(SpendLog.latency_ms),
        )
        .where(SpendLog.start_time >= since, SpendLog.deployment_id.is_not(None))
        .group_by(SpendLog.deployment_id)
    )
    async with store.session() as session:
        rows = (await session.execute(query)).all()
    stats: dict[str, dict[str, Any]] = {}
    for deployment, count, failed, latency in rows:
        requests, failures = int(count), int(failed or 0)
        stats[str(deployment)] = {
            "requests": requests,
            "errors": failures,
            "error_rate": failures / requests if requests else 0.0,
            "avg_latency_ms": None if latency is None else round(float(latency), 1),
        }
    return stats
