"""The Store: keys, teams and end users (create, read, update, delete) and budget resets.

Rows go in and out as plain dicts shaped like LiteLLM's management responses, so the
management API and the CLI share them. The spend ledger's writes are in `ledger.py`, its
queries in `spend.py`.

A database that cannot be reached, times out or is locked makes these methods raise
`ServiceUnavailable` (503, retry later), never a bare driver error: `database_unavailable`
tells such a failure from an error in the request.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from genroute.errors import GenrouteError, ServiceUnavailable, StoreError
from genroute.store.engine import (
    DEFAULT_TIMEOUT,
    MAX_OVERFLOW,
    POOL_SIZE,
    create_engine,
    migrate,
)
from genroute.store.models import Base, EndUser, Team, VirtualKey

__all__ = [
    "BUDGETED_FIELDS",
    "KEY_PREFIX",
    "KIND_PK",
    "KIND_TABLE",
    "Store",
    "aware",
    "database_unavailable",
    "guarded",
    "hash_key",
    "new_secret",
    "parse_duration",
    "row_dict",
    "utcnow",
]

KEY_PREFIX = "sk-"
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "mo": 30 * 86400}
BUDGETED_FIELDS = (
    "max_budget",
    "budget_duration",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "blocked",
    "metadata",
)
KIND_TABLE: dict[str, type[Base]] = {"key": VirtualKey, "team": Team, "end_user": EndUser}
KIND_PK = {"key": "token", "team": "team_id", "end_user": "end_user_id"}


def parse_duration(value: str) -> timedelta:
    """`30s`, `10m`, `1h`, `1d`, `7d`, `30d`, `2w` or `1mo` (30 days) as a timedelta."""
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a duration such as 1h, 1d, 7d or 30d")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """A datetime read back from the database, as aware UTC (SQLite drops the zone)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def hash_key(key: str) -> str:
    """The hex SHA-256 of a secret key: the only form stored."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """A fresh `sk-…` key with 192 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(24)


def row_dict(row: Base) -> dict[str, Any]:
    """A row as JSON-ready data (datetimes as ISO text, `metadata` by its column name)."""
    data: dict[str, Any] = {}
    for column in row.__table__.columns:
        attr = "metadata_" if column.key == "metadata" else column.key
        value = getattr(row, attr)
        if isinstance(value, datetime):
            value = aware(value).isoformat()  # type: ignore[union-attr]
        data[str(column.key)] = value
    if isinstance(row, VirtualKey):
        data["key_hash"] = data.pop("token")
    return data


def database_unavailable(exc: BaseException) -> bool:
    """Whether an exception means the database could not do its work (unreachable, timed
    out, locked, its pool exhausted), as opposed to an error in what was asked of it."""
    if isinstance(exc, GenrouteError):
        return False
    if isinstance(exc, (sa_exc.IntegrityError, sa_exc.DataError)):
        return False
    return isinstance(
        exc, (OSError, TimeoutError, sa_exc.DBAPIError, sa_exc.TimeoutError, sa_exc.InterfaceError)
    )


@asynccontextmanager
async def guarded(what: str) -> AsyncIterator[None]:
    """Turn a failure of the database into ServiceUnavailable (503, retry in a second)."""
    try:
        yield
    except Exception as exc:
        if not database_unavailable(exc):
            raise
        raise ServiceUnavailable(
            f"The database is unavailable ({what}: {type(exc).__name__}); retry shortly",
            retry_after=1.0,
        ) from exc


P = ParamSpec("P")
R = TypeVar("R")


def _guard(what: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    def decorate(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(method)
        async def guarded_method(*args: P.args, **kwargs: P.kwargs) -> R:
            async with guarded(what):
                return await method(*args, **kwargs)

        return guarded_method

    return decorate


def _column_values(fields: dict[str, Any]) -> dict[str, Any]:
    values = {("metadata_" if k == "metadata" else k): v for k, v in fields.items()}
    if "budget_duration" in fields:
        duration = fields["budget_duration"]
        values["budget_reset_at"] = utcnow() + parse_duration(duration) if duration else None
    return values


class Store:
    """Async access to genroute's tables over one pooled engine."""

    def __init__(
        self,
        url: str,
        engine: AsyncEngine | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        pool_size: int = POOL_SIZE,
        max_overflow: int = MAX_OVERFLOW,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.engine = engine or create_engine(
            url, timeout, pool_size=pool_size, max_overflow=max_overflow
        )
        self.session = async_sessionmaker(self.engine, expire_on_commit=False)
        self.migrated = False

    async def start(self) -> None:
        """Run the migrations (on an engine of their own, without a statement timeout)."""
        engine = create_engine(self.url, None)
        try:
            await migrate(engine, self.url)
        finally:
            await engine.dispose()
        self.migrated = True

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    # -- generic rows ------------------------------------------------------------------------

    async def _get(self, kind: str, ident: str) -> Any:
        table = KIND_TABLE[kind]
        async with self.session() as session:
            return await session.get(table, ident)

    @_guard("reading a row")
    async def get(self, kind: str, ident: str) -> dict[str, Any] | None:
        """One key (by hash), team or end user as a dict, or None."""
        row = await self._get(kind, ident)
        return None if row is None else row_dict(row)

    @_guard("reading a row")
    async def load(self, kind: str, ident: str) -> dict[str, Any] | None:
        """Like `get`, but first resets the spend of a budget whose period has ended."""
        row = await self._get(kind, ident)
        if row is None:
            return None
        now = utcnow()
        reset_at = aware(row.budget_reset_at)
        if reset_at is not None and reset_at <= now and row.budget_duration:
            table = KIND_TABLE[kind]
            pk = getattr(table, KIND_PK[kind])
            async with self.session.begin() as session:
                await session.execute(
                    update(table)
                    .where(pk == ident, table.budget_reset_at == row.budget_reset_at)  # type: ignore[attr-defined]
                    .values(spend=0.0, budget_reset_at=now + parse_duration(row.budget_duration))
                )
            row = await self._get(kind, ident)
        return None if row is None else row_dict(row)

    @_guard("creating a row")
    async def create(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Insert a team or end user (fields already validated)."""
        table = KIND_TABLE[kind]
        now = utcnow()
        row = table(**_column_values(fields), spend=0.0, created_at=now, updated_at=now)
        row.metadata_ = row.metadata_ or {}  # type: ignore[attr-defined]
        if kind != "end_user":
            row.models = row.models or []  # type: ignore[attr-defined]
        try:
            async with self.session.begin() as session:
                session.add(row)
        except IntegrityError:
            raise StoreError(f"{kind} {fields.get(KIND_PK[kind])!r} already exists") from None
        return row_dict(row)

    @_guard("updating a row")
    async def update(self, kind: str, ident: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Change some fields of a row; StoreError 404 when there is none."""
        table = KIND_TABLE[kind]
        pk = getattr(table, KIND_PK[kind])
        values = {**_column_values(fields), "updated_at": utcnow()}
        try:
            async with self.session.begin() as session:
                result = await session.execute(update(table).where(pk == ident).values(**values))
        except IntegrityError:
            raise StoreError(f"{kind}: that key_alias is taken") from None
        if not result.rowcount:  # type: ignore[attr-defined]
            raise StoreError(f"{kind} {ident!r} not found", 404)
        found = await self.get(kind, ident)
        assert found is not None
        return found

    @_guard("deleting rows")
    async def delete(self, kind: str, idents: list[str]) -> list[str]:
        """Delete rows; returns the identifiers that existed."""
        table = KIND_TABLE[kind]
        pk = getattr(table, KIND_PK[kind])
        async with self.session.begin() as session:
            found = list((await session.execute(select(pk).where(pk.in_(idents)))).scalars())
            await session.execute(delete(table).where(pk.in_(idents)))
        return found

    @_guard("reading keys")
    async def key_tokens(self, aliases: list[str]) -> list[str]:
        """The hashes of the keys that have these aliases (unknown aliases have none)."""
        query = select(VirtualKey.token).where(VirtualKey.key_alias.in_(aliases))
        async with self.session() as session:
            return list((await session.execute(query)).scalars())

    @_guard("listing rows")
    async def list(self, kind: str, team_id: str | None = None) -> list[dict[str, Any]]:
        """Every row of a kind (keys optionally of one team), newest first."""
        table = KIND_TABLE[kind]
        query = select(table).order_by(table.created_at.desc())  # type: ignore[attr-defined]
        if team_id is not None and kind == "key":
            query = query.where(VirtualKey.team_id == team_id)
        async with self.session() as session:
            return [row_dict(row) for row in (await session.execute(query)).scalars()]

    # -- keys and end users --------------------------------------------------------------------

    async def create_key(self, fields: dict[str, Any]) -> dict[str, Any]:
        """A new virtual key; the secret is in the result's `key` and nowhere else."""
        fields = dict(fields)
        secret = fields.pop("key", None) or new_secret()
        duration = fields.pop("duration", None)
        if duration:
            fields["expires"] = utcnow() + parse_duration(duration)
        fields["token"] = hash_key(secret)
        fields["key_name"] = f"{secret[:3]}...{secret[-4:]}"
        try:
            data = await self.create("key", fields)
        except StoreError:
            raise StoreError("key: that key or key_alias already exists") from None
        return {"key": secret, **data}

    @_guard("reading a key")
    async def key_by_alias(self, alias: str) -> dict[str, Any] | None:
        """A key found by its alias."""
        async with self.session() as session:
            row = (
                await session.execute(select(VirtualKey).where(VirtualKey.key_alias == alias))
            ).scalar_one_or_none()
        return None if row is None else row_dict(row)

    @_guard("creating an end user")
    async def ensure_end_user(self, end_user_id: str) -> None:
        """Create the end user on first sight (a race with another instance is harmless)."""
        now = utcnow()
        try:
            async with self.session.begin() as session:
                exists = await session.get(EndUser, end_user_id)
                if exists is None:
                    session.add(
                        EndUser(
                            end_user_id=end_user_id,
                            spend=0.0,
                            blocked=False,
                            metadata_={},
                            created_at=now,
                            updated_at=now,
                        )
                    )
        except IntegrityError:
            return
