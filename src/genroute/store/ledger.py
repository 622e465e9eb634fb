"""Spend ledger rows: what one call leaves, how a row is made fit for its columns, and how a
batch of them is written.

`SpendRecord` is one finished call. `clean_row` (`genroute.store.ledger_rows`, with the
driver's SQL the writer uses) makes a record fit its columns whatever the call carried, so
that one odd request cannot fail a batch. `write_batch` inserts rows idempotently (each carries the
call's unique `row_id`: a row written twice, by a retry or a replayed spool, is kept once),
adds the cost of the rows it inserted to their keys', teams' and end users' spend, and
deletes their budget holds, in one transaction. A batch the database refuses because of
some rows is bisected under savepoints, still in one transaction: the others are written,
each refused row is returned, and written stripped of its description (`strip_record`) so
that its spend still counts. `is_row_error` tells a failure caused by
the rows (a data or constraint error: bisect the batch and set the bad row aside) from one
of the database itself (unreachable, timed out, missing table: keep the rows for later).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from genroute.call import Call, new_request_id
from genroute.cost import Tokens
from genroute.store.ledger_rows import (
    INT_MAX,
    Row,
    clean_ident,
    clean_row,
    driver_add_spend,
    driver_delete_holds,
    driver_insert,
    driver_row,
    valid_text,
)
from genroute.store.models import EndUser, SpendLog, Team, VirtualKey
from genroute.store.repo import Store, aware, utcnow
from genroute.store.routing import routing_json

__all__ = [
    "FAN_OUT",
    "INSERT_SLICE",
    "INT_MAX",
    "Refused",
    "Row",
    "SpendRecord",
    "Totals",
    "Written",
    "clean_ident",
    "clean_row",
    "driver_row",
    "is_row_error",
    "new_row_id",
    "record_from_json",
    "strip_record",
    "write_batch",
]

INSERT_SLICE = 100  # rows per INSERT statement
FAN_OUT = 2  # parts a refused slice is split into (halves: fewest tries per bad row)
_ROW_STATES = ("22", "23")  # SQLSTATE classes: data exception, integrity constraint


def new_row_id() -> str:
    """A fresh, unique ledger row id (32 hex digits), made as request ids are: 128 random
    bits from `random`, seeded from the system per process and again in a forked child."""
    return new_request_id()


@dataclass(slots=True)
class SpendRecord:
    """What the ledger keeps of one call."""

    request_id: str
    start_time: datetime
    operation: str
    status_code: int
    key_hash: str | None = None
    key_alias: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    end_user: str | None = None
    model_group: str | None = None
    deployment_id: str | None = None
    provider: str | None = None
    provider_model: str | None = None
    error_status: str | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    cost_estimated: bool = False
    latency_ms: float | None = None
    ttft_ms: float | None = None
    stream: bool = False
    row_id: str = field(default_factory=new_row_id)
    cache_hit: str | None = None  # "hit" or "semantic-hit": the response cache answered
    saved_cost: float = 0.0  # what a cache hit's answer cost when it was made
    batch: str | None = None  # batches/{id}: a request of that batch
    cached_content: str | None = None  # cachedContents/{id} the call named
    files: str | None = None  # the uploaded files/{id} it named, space-separated
    trace_id: str | None = None  # the call's trace (32 hex digits)
    routing: str | None = None  # its attempts and fallbacks (`genroute.store.routing`)

    @classmethod
    def of(
        cls,
        call: Call,
        *,
        status_code: int,
        error_status: str | None,
        finished: float,
        row_id: str | None = None,
    ) -> SpendRecord:
        """The record of a finished call (`finished`: its perf_counter end time)."""
        meter, route, caller = call.meter, call.route, call.caller
        resources = call.resources
        tokens = Tokens.from_usage(meter.usage)
        hit = call.cache.hit
        latency = finished - call.started
        ttft = None if meter.first_chunk_at is None else meter.first_chunk_at - call.started
        elapsed = time.perf_counter() - call.started
        return cls(
            request_id=call.request_id,
            start_time=datetime.fromtimestamp(time.time() - elapsed, UTC),
            operation=call.operation.value,
            status_code=status_code,
            key_hash=caller.key_hash,
            key_alias=caller.key_alias,
            team_id=caller.team_id,
            user_id=caller.user_id,
            end_user=caller.end_user,
            model_group=route.group or call.cache.group or call.model,
            deployment_id=route.deployment_id,
            provider=route.provider,
            provider_model=route.provider_model,
            error_status=error_status,
            prompt_tokens=tokens.input_total,
            output_tokens=tokens.output,
            thinking_tokens=tokens.thinking,
            cached_tokens=tokens.cached,
            cost=meter.cost or 0.0,
            cost_estimated=meter.cost_estimated,
            latency_ms=latency * 1000,
            ttft_ms=None if ttft is None else ttft * 1000,
            stream=call.stream,
            row_id=row_id or new_row_id(),
            cache_hit=call.cache.outcome if hit else None,
            saved_cost=call.cache.saved_cost if hit else 0.0,
            batch=resources.batch,
            cached_content=resources.cached_content,
            files=" ".join(resources.files) or None,
            trace_id=call.trace_id,
            routing=routing_json(route),
        )

    def json_line(self) -> bytes:
        """The record as one line of JSON ending in a newline, the same as `to_json`'s
        (serialised by orjson from the record itself, which writes non-finite numbers as
        null as `to_json` does; text with unpaired surrogates goes through `to_json`)."""
        try:
            return orjson.dumps(self, option=orjson.OPT_APPEND_NEWLINE)
        except orjson.JSONEncodeError:
            return orjson.dumps(self.to_json(), option=orjson.OPT_APPEND_NEWLINE)

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data (the spool's and the dead letters' line): text
        with unpaired surrogates repaired, non-finite numbers as None."""
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                value = valid_text(value)
            elif isinstance(value, float) and not math.isfinite(value):
                value = None
            data[f.name] = value
        data["start_time"] = self.start_time.isoformat()
        return data


def record_from_json(data: dict[str, Any]) -> SpendRecord:
    """A record read back from a spool line (unknown fields ignored)."""
    known = {f.name for f in fields(SpendRecord)}
    values = {k: v for k, v in data.items() if k in known}
    start = values.get("start_time")
    values["start_time"] = (
        aware(datetime.fromisoformat(start)) if isinstance(start, str) else utcnow()
    )
    return SpendRecord(**values)


@dataclass(slots=True)
class Totals:
    """Spend per key hash, team and end user in one batch."""

    key: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    team: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    end_user: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @classmethod
    def of(cls, records: Iterable[SpendRecord]) -> Totals:
        """Add up a batch (each id made fit for its column once, not once a row)."""
        key: dict[str, float] = defaultdict(float)
        team: dict[str, float] = defaultdict(float)
        end_user: dict[str, float] = defaultdict(float)
        for record in records:
            cost = record.cost
            if not cost or not math.isfinite(cost):
                continue
            if record.key_hash:
                key[record.key_hash] += cost
            if record.team_id:
                team[record.team_id] += cost
            if record.end_user:
                end_user[record.end_user] += cost
        totals = cls()
        for mine, raw, length in ((totals.key, key, 64), (totals.team, team, 256),
                                  (totals.end_user, end_user, 256)):  # fmt: skip
            for ident, amount in raw.items():
                mine[clean_ident(ident, length)] += amount
        return totals

    def add(self, other: Totals) -> None:
        """Add another batch's totals to these."""
        for mine, theirs in ((self.key, other.key), (self.team, other.team)):
            for ident, amount in theirs.items():
                mine[ident] += amount
        for ident, amount in other.end_user.items():
            self.end_user[ident] += amount

    @property
    def empty(self) -> bool:
        """Whether there is nothing to add anywhere."""
        return not (self.key or self.team or self.end_user)


def is_row_error(exc: BaseException) -> bool:
    """Whether a failed write was caused by the rows themselves (bisect and set them
    aside), not by the database (unreachable, timed out, locked, a missing table)."""
    if isinstance(exc, (sa_exc.DataError, sa_exc.IntegrityError)):
        return True
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(state, str) and state[:2] in _ROW_STATES:
        return True
    if isinstance(exc, sa_exc.StatementError) and isinstance(
        orig, (ValueError, TypeError, OverflowError)
    ):
        return True
    return isinstance(exc, (ValueError, TypeError, OverflowError))


def _insert(dialect: str) -> Any:
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(SpendLog)
    return statement.on_conflict_do_nothing(index_elements=["row_id"]).returning(SpendLog.row_id)


async def _add_totals(conn: Any, totals: Totals) -> None:
    # In the order budget reservations lock rows (kind, then id: end users, keys, teams),
    # so that a batch and a reservation never wait on each other in a cycle. The driver's
    # own SQL: SQLAlchemy's building and caching of the statement cost the loop ~1 ms.
    for table, pk, amounts in (
        (EndUser, EndUser.end_user_id, totals.end_user),
        (VirtualKey, VirtualKey.token, totals.key),
        (Team, Team.team_id, totals.team),
    ):
        if amounts:
            sql = driver_add_spend(conn.dialect, table.__tablename__, pk.key)
            await conn.exec_driver_sql(sql, [(v, k) for k, v in sorted(amounts.items())])


async def _drop_holds(conn: Any, row_ids: list[str]) -> None:
    # The driver's own SQL, compiled once per count: SQLAlchemy's compilation of an IN of
    # 100 values costs the event loop ~0.4 ms a statement.
    for start in range(0, len(row_ids), INSERT_SLICE):
        chunk = tuple(row_ids[start : start + INSERT_SLICE])
        await conn.exec_driver_sql(driver_delete_holds(conn.dialect, len(chunk)), chunk)


@dataclass(frozen=True, slots=True)
class Refused:
    """A row the database refused (set aside), and whether its stripped form (see
    `strip_record`) was written, so that its spend counted."""

    record: SpendRecord
    error: BaseException
    counted: bool


@dataclass(frozen=True, slots=True)
class Written:
    """What `write_batch` did: rows inserted (a row already there is not), the spend it
    added to totals, how many rows needed cleaning to fit their columns, and the rows the
    database refused."""

    inserted: int
    totals: Totals
    cleaned: int
    refused: list[Refused] = field(default_factory=list)


class _Batch:
    """One transaction's writing of rows (see `write_batch`)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.statement = _insert(conn.dialect.name)
        self.inserted: set[str] = set()
        self.cleaned = 0
        self.refused: list[Refused] = []

    def rows(self, records: list[SpendRecord]) -> list[dict[str, Any]]:
        rows = []
        for record in records:
            row, changed = clean_row(record)
            self.cleaned += changed
            rows.append(row)
        return rows

    def params(self, rows: list[Row]) -> tuple[Any, ...]:
        """The rows' values, one after the other, as the driver takes them."""
        flat: list[Any] = []
        for values, changed in rows:
            self.cleaned += changed
            flat += values
        return tuple(flat)

    async def insert(self, records: list[SpendRecord], rows: list[Row] | None = None) -> None:
        # The hot path, run on the event loop: each slice is one INSERT in the driver's own
        # SQL (compiled once per row count) of rows made when their records were queued
        # (`driver_row`), and the loop serves requests between slices.
        if rows is None:
            rows = [driver_row(self.conn.dialect, record) for record in records]
        for start in range(0, len(records), INSERT_SLICE):
            chunk = rows[start : start + INSERT_SLICE]
            sql = driver_insert(self.conn.dialect, len(chunk))
            result = await self.conn.exec_driver_sql(sql, self.params(chunk))
            self.inserted.update(r[0] for r in result.all())
            await asyncio.sleep(0)

    async def _try(self, records: list[SpendRecord]) -> BaseException | None:
        """Insert under a savepoint; the row error that undid it, if one did."""
        try:
            async with self.conn.begin_nested():
                result = await self.conn.execute(self.statement, self.rows(records))
                self.inserted.update(r[0] for r in result.all())
        except Exception as exc:
            if not is_row_error(exc):
                raise
            return exc
        return None

    async def isolate(self, records: list[SpendRecord]) -> None:
        """Insert what the database takes: a slice it refuses is split (in halves, then
        again, under savepoints) until each refused row is alone; that row is written
        stripped of its description (`strip_record`) or, if even that is refused, left out."""
        error = await self._try(records)
        if error is None:
            return
        if len(records) == 1:
            counted = await self._try([strip_record(records[0])]) is None
            self.refused.append(Refused(records[0], error, counted))
            return
        size = -(-len(records) // FAN_OUT)
        for start in range(0, len(records), size):
            await self.isolate(records[start : start + size])
            await asyncio.sleep(0)

    async def finish(self, records: list[SpendRecord]) -> Written:
        totals = Totals.of(r for r in records if r.row_id in self.inserted)
        await _add_totals(self.conn, totals)
        return Written(len(self.inserted), totals, self.cleaned, self.refused)


async def write_batch(
    store: Store, records: list[SpendRecord], rows: list[Row] | None = None
) -> Written:
    """Insert the rows (a row whose `row_id` is already there is skipped), add the cost of
    those inserted to their totals, and delete their budget holds, in one transaction.
    `rows`, when given, are the records' `driver_row`s for the store's dialect.

    When the database refuses the batch because of some of its rows, the batch is written
    again in one transaction that isolates them under savepoints (`_Batch.isolate`): the
    others are written, each refused row is returned in `Written.refused`."""
    row_ids = [clean_ident(r.row_id, 32) for r in records]
    try:
        async with store.session.begin() as session:
            batch = _Batch(await session.connection())
            await _drop_holds(batch.conn, row_ids)
            await batch.insert(records, rows)
            return await batch.finish(records)
    except Exception as exc:
        if not is_row_error(exc):
            raise
    async with store.session.begin() as session:
        batch = _Batch(await session.connection())
        await _drop_holds(batch.conn, row_ids)  # first: a write, so SQLite's transaction is open
        for start in range(0, len(records), INSERT_SLICE):
            await batch.isolate(records[start : start + INSERT_SLICE])
        return await batch.finish(records)


_KEPT_WHEN_STRIPPED = {"request_id", "operation", "key_hash", "team_id", "end_user", "row_id"}


def strip_record(record: SpendRecord) -> SpendRecord:
    """The record with every descriptive text field emptied (model, deployment, provider,
    alias, user, error status): what is left of a row the database refused, so that its
    spend is still written, once (by its row_id), and still counts against its budgets."""
    values = {f.name: getattr(record, f.name) for f in fields(record)}
    for f in fields(record):
        if f.name not in _KEPT_WHEN_STRIPPED and isinstance(values[f.name], str):
            values[f.name] = None
    return SpendRecord(**values)
