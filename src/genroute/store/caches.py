"""Cached contents (Gemini's `cachedContents`) and their copies on upstreams (SQLAlchemy 2).

A cached content is a prefix of requests kept for reuse: contents, a system instruction,
tools and a tool config (`payload`, as Gemini's JSON), for one model, until `expires_at`.
`CacheCopy` remembers the cache created on a deployment's own API (a Gemini deployment)
for it. The Alembic revision 0005 creates both tables; change them together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, String, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from genroute.store.models import Base
from genroute.store.owned import owned_page
from genroute.store.repo import aware, guarded

__all__ = ["CacheCopy", "CacheRepo", "CacheRow"]


class CacheRow(Base):
    """One cached content."""

    __tablename__ = "genroute_cached_contents"
    __table_args__ = (
        Index("ix_genroute_cached_contents_owner_created", "owner", "created_at"),
        Index("ix_genroute_cached_contents_expires_at", "expires_at"),
    )

    cache_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(300))
    key_hash: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(256), nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(512))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    token_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class CacheCopy(Base):
    """A cached content created on one upstream (`target`: the upstream and its key)."""

    __tablename__ = "genroute_cache_copies"

    cache_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    target: Mapped[str] = mapped_column(String(64), primary_key=True)
    upstream_name: Mapped[str] = mapped_column(String(256), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class CacheRepo:
    """Rows of cached contents and their upstream copies; 503 when the database is down."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.session = async_sessionmaker(engine, expire_on_commit=False)

    async def insert(self, row: CacheRow) -> None:
        """Add a new cached content."""
        async with guarded("saving a cached content"), self.session.begin() as session:
            session.add(row)

    async def get(self, cache_id: str) -> CacheRow | None:
        """A cached content's row."""
        async with guarded("reading a cached content"), self.session() as session:
            return await session.get(CacheRow, cache_id)

    async def save(self, row: CacheRow) -> None:
        """Write a changed row back."""
        async with guarded("saving a cached content"), self.session.begin() as session:
            await session.merge(row)

    async def page(
        self,
        owner: str | None,
        all_owners: bool,
        after: tuple[datetime, str] | None,
        size: int,
        now: datetime,
        key_hash: str | None = None,
    ) -> list[CacheRow]:
        """Unexpired cached contents, newest first, `size` of them after `after`."""
        query = select(CacheRow).where(CacheRow.expires_at > now)
        query = owned_page(
            query, CacheRow, CacheRow.cache_id, owner, all_owners, after, size, key_hash
        )
        async with guarded("listing cached contents"), self.session() as session:
            return list((await session.execute(query)).scalars())

    async def remove(self, cache_id: str) -> None:
        """Delete a cached content and its copies' rows."""
        async with guarded("deleting a cached content"), self.session.begin() as session:
            await session.execute(delete(CacheCopy).where(CacheCopy.cache_id == cache_id))
            await session.execute(delete(CacheRow).where(CacheRow.cache_id == cache_id))

    async def expired(self, now: datetime, limit: int = 100) -> list[str]:
        """Ids of cached contents past their expiry."""
        query = select(CacheRow.cache_id).where(CacheRow.expires_at <= now).limit(limit)
        async with guarded("finding expired cached contents"), self.session() as session:
            return list((await session.execute(query)).scalars())

    async def copy(self, cache_id: str, target: str, now: datetime) -> CacheCopy | None:
        """The upstream copy of a cached content, if it has not expired there."""
        async with guarded("reading a cache copy"), self.session() as session:
            found = await session.get(CacheCopy, (cache_id, target))
        if found is None or aware(found.expires_at) <= now:  # type: ignore[operator]
            return None
        return found

    async def save_copy(self, entry: CacheCopy) -> None:
        """Remember (or replace) a cached content's copy on an upstream."""
        async with guarded("saving a cache copy"), self.session.begin() as session:
            await session.merge(entry)
