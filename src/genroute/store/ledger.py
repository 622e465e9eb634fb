"""Spend ledger rows: what one call leaves, how a row is made fit for its columns, and how a
batch of them is written.

`SpendRecord` is one finished call. `clean_row` makes a record fit its columns whatever
the call carried (text clipped to the column's length, NULs and unpaired surrogates
removed, counts clamped to the column's range, non-finite numbers dropped), so that one
odd request cannot fail a batch. `write_batch` inserts rows idempotently (each carries the
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
import functools
import math
import operator
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Boolean, DateTime, Float, Integer, String, bindparam, delete, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from genroute.call import Call, new_request_id
from genroute.cost import Tokens
from genroute.store.models import BudgetHold, EndUser, SpendLog, Team, VirtualKey
from genroute.store.repo import Store, aware, utcnow
from genroute.store.routing import routing_json

__all__ = [
    "FAN_OUT",
    "INSERT_SLICE",
    "INT_MAX",
    "Refused",
    "SpendRecord",
    "Totals",
    "Written",
    "clean_ident",
    "clean_row",
    "is_row_error",
    "new_row_id",
    "record_from_json",
    "strip_record",
    "write_batch",
]

INSERT_SLICE = 100  # rows per INSERT statement
INT_MAX = 2**31 - 1  # an Integer column on PostgreSQL
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
            start_time=datetime.fromtimestamp(time.time() - elapsed, utcnow().tzinfo),
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
                value = _valid_text(value)
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


def _valid_text(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # unpaired surrogates
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _clean_text(value: Any, length: int | None) -> str:
    if type(value) is str and value.isascii() and "\x00" not in value:  # nearly always
        return value[:length] if length is not None else value
    text = value if isinstance(value, str) else str(value)
    if "\x00" in text:
        text = text.replace("\x00", "")
    text = _valid_text(text)
    return text[:length] if length is not None else text


def clean_ident(value: str, length: int = 256) -> str:
    """A key hash, team or end-user id as its column stores it (see `clean_row`)."""
    return _clean_text(value, length)


def _clean_value(column: Any, value: Any) -> Any:
    kind = column.type
    if value is None:
        return None if column.nullable else _default(kind)
    if isinstance(kind, String):
        return _clean_text(value, kind.length)
    if isinstance(kind, Boolean):
        return bool(value)
    if isinstance(kind, Integer):
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            return None if column.nullable else 0
        return max(-INT_MAX, min(INT_MAX, number))
    if isinstance(kind, Float):
        try:
            real = float(value)
        except (TypeError, ValueError, OverflowError):
            real = math.nan
        if math.isfinite(real):
            return real
        return None if column.nullable else 0.0
    if isinstance(kind, DateTime):
        return value if isinstance(value, datetime) else utcnow()
    return value


def _default(kind: Any) -> Any:
    if isinstance(kind, String):
        return ""
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, (Integer, Float)):
        return 0
    return utcnow()


_COLUMNS = [c for c in SpendLog.__table__.columns if c.key != "id"]


def _fits(column: Any) -> Callable[[Any], bool]:
    """A quick test that a value already fits its column as it is (what `_clean_value`
    would return unchanged): true for nearly every value a call leaves, so that building a
    batch's rows costs a few type checks per field (the flush runs on the event loop)."""
    kind, nullable = column.type, column.nullable
    if isinstance(kind, String):
        length = kind.length or sys.maxsize
        return lambda v: (
            (type(v) is str and len(v) <= length and v.isascii() and "\x00" not in v)
            or (v is None and nullable)
        )
    if isinstance(kind, Boolean):
        return lambda v: type(v) is bool or (v is None and nullable)
    if isinstance(kind, Integer):
        return lambda v: (type(v) is int and -INT_MAX <= v <= INT_MAX) or (v is None and nullable)
    if isinstance(kind, Float):
        return lambda v: (type(v) is float and math.isfinite(v)) or (v is None and nullable)
    if isinstance(kind, DateTime):
        return lambda v: type(v) is datetime
    return lambda v: False


_KEYS = [c.key for c in _COLUMNS]
_VALUES = operator.attrgetter(*_KEYS)
_FITS = [_fits(c) for c in _COLUMNS]
# The text columns, checked in one pass (nearly every value fits as it is), and the others.
_TEXT = [
    (i, c.type.length or sys.maxsize) for i, c in enumerate(_COLUMNS) if isinstance(c.type, String)
]
_OTHER = [i for i, c in enumerate(_COLUMNS) if not isinstance(c.type, String)]


def _clean_values(record: SpendRecord) -> tuple[list[Any], bool]:
    """The record's values, in `_COLUMNS` order, made fit for their columns, and whether
    anything had to change. A value that already fits (nearly all) costs a type check."""
    values = list(_VALUES(record))
    odd = [
        i
        for i, length in _TEXT
        if (v := values[i]) is not None
        and not (type(v) is str and len(v) <= length and v.isascii() and "\x00" not in v)
    ]
    odd += [i for i in _OTHER if not _FITS[i](values[i])]
    changed = False
    for i in odd:
        value = values[i]
        cleaned = _clean_value(_COLUMNS[i], value)
        if cleaned != value and not (value is None and cleaned is None):
            changed = True
        values[i] = cleaned
    return values, changed


def clean_row(record: SpendRecord) -> tuple[dict[str, Any], bool]:
    """The record as a row that fits its columns, and whether anything had to change."""
    values, changed = _clean_values(record)
    return dict(zip(_KEYS, values, strict=True)), changed


@functools.cache
def _driver_insert(dialect: Any, rows: int) -> str:
    """The INSERT of `rows` rows as the driver's own SQL (see `_Batch.insert`)."""
    width = len(_KEYS)
    if dialect.paramstyle == "qmark":
        marks = ["?"] * (rows * width)
    elif dialect.paramstyle == "numeric_dollar":
        marks = [f"${i}" for i in range(1, rows * width + 1)]
    else:
        raise ValueError(f"unsupported paramstyle {dialect.paramstyle!r}")
    groups = ("(" + ", ".join(marks[r * width : (r + 1) * width]) + ")" for r in range(rows))
    return (
        f"INSERT INTO {SpendLog.__tablename__} ({', '.join(_KEYS)}) VALUES "
        + ", ".join(groups)
        + " ON CONFLICT (row_id) DO NOTHING RETURNING row_id"
    )


@functools.cache
def _processors(dialect: Any) -> list[tuple[int, Callable[[Any], Any]]]:
    """The columns whose values the dialect converts before the driver sees them (a
    SQLite DATETIME as text, a Boolean as an integer), with the converter: what
    SQLAlchemy itself would apply."""
    found: list[tuple[int, Callable[[Any], Any]]] = []
    for index, column in enumerate(_COLUMNS):
        process = column.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            found.append((index, process))
    return found


@dataclass(slots=True)
class Totals:
    """Spend per key hash, team and end user in one batch."""

    key: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    team: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    end_user: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @classmethod
    def of(cls, records: Iterable[SpendRecord]) -> Totals:
        """Add up a batch."""
        totals = cls()
        for record in records:
            cost = record.cost
            if not cost or not math.isfinite(cost):
                continue
            if record.key_hash:
                totals.key[clean_ident(record.key_hash, 64)] += cost
            if record.team_id:
                totals.team[clean_ident(record.team_id)] += cost
            if record.end_user:
                totals.end_user[clean_ident(record.end_user)] += cost
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
    # so that a batch and a reservation never wait on each other in a cycle.
    for table, pk, amounts in (
        (EndUser, EndUser.end_user_id, totals.end_user),
        (VirtualKey, VirtualKey.token, totals.key),
        (Team, Team.team_id, totals.team),
    ):
        if not amounts:
            continue
        statement = (
            update(table.__table__)  # type: ignore[arg-type]
            .where(table.__table__.c[pk.key] == bindparam("ident"))
            .values(spend=table.__table__.c.spend + bindparam("amount"))
        )
        await conn.execute(
            statement, [{"ident": k, "amount": v} for k, v in sorted(amounts.items())]
        )


async def _drop_holds(conn: Any, row_ids: list[str]) -> None:
    for start in range(0, len(row_ids), INSERT_SLICE):
        chunk = row_ids[start : start + INSERT_SLICE]
        await conn.execute(delete(BudgetHold).where(BudgetHold.hold_id.in_(chunk)))


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

    def params(self, records: list[SpendRecord]) -> tuple[Any, ...]:
        """The rows' values, one after the other, as the driver takes them."""
        processors = _processors(self.conn.dialect)
        flat: list[Any] = []
        for record in records:
            values, changed = _clean_values(record)
            self.cleaned += changed
            for index, process in processors:
                if values[index] is not None:
                    values[index] = process(values[index])
            flat += values
        return tuple(flat)

    async def insert(self, records: list[SpendRecord]) -> None:
        # The hot path, run on the event loop: each slice is one INSERT in the driver's own
        # SQL (compiled once per row count) with its values converted as SQLAlchemy would,
        # a few microseconds a row, and the loop serves requests between slices.
        for start in range(0, len(records), INSERT_SLICE):
            chunk = records[start : start + INSERT_SLICE]
            sql = _driver_insert(self.conn.dialect, len(chunk))
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


async def write_batch(store: Store, records: list[SpendRecord]) -> Written:
    """Insert the rows (a row whose `row_id` is already there is skipped), add the cost of
    those inserted to their totals, and delete their budget holds, in one transaction.

    When the database refuses the batch because of some of its rows, the batch is written
    again in one transaction that isolates them under savepoints (`_Batch.isolate`): the
    others are written, each refused row is returned in `Written.refused`."""
    row_ids = [clean_ident(r.row_id, 32) for r in records]
    try:
        async with store.session.begin() as session:
            batch = _Batch(await session.connection())
            await _drop_holds(batch.conn, row_ids)
            await batch.insert(records)
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
