"""Batch jobs (Gemini's `batches`) and their requests (SQLAlchemy 2 ORM).

A batch is run by genroute itself, request by request, by whichever instance holds its
lease (`lease_owner` until `lease_until`, renewed while it runs), so a batch survives a
restart: another instance takes the lease over once it lapses and runs what is left. Each
request (`BatchItem`) is PENDING, RUNNING (taken by the lease holder), DONE or FAILED; a
request found RUNNING under a lapsed lease may have reached the upstream already, so it is
failed, not run twice. The Alembic revision 0006 creates both tables (0007 adds
`key_hash`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from genroute.store.models import Base
from genroute.store.owned import owned_page
from genroute.store.repo import guarded

__all__ = ["BatchItem", "BatchRepo", "BatchRow"]

OPEN_STATES = ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING")


class BatchRow(Base):
    """One batch job."""

    __tablename__ = "genroute_batches"
    __table_args__ = (
        Index("ix_genroute_batches_owner_created", "owner", "created_at"),
        Index("ix_genroute_batches_state", "state"),
    )

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(300))
    caller: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    key_hash: Mapped[str | None] = mapped_column(String(64))  # revision 0007
    model: Mapped[str] = mapped_column(String(256), nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    input_file: Mapped[str | None] = mapped_column(String(64))
    output_file: Mapped[str | None] = mapped_column(String(64))
    total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class BatchItem(Base):
    """One request of a batch, and its answer."""

    __tablename__ = "genroute_batch_items"

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str | None] = mapped_column(String(512))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class BatchRepo:
    """Rows of batches and their requests; 503 when the database is down."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.session = async_sessionmaker(engine, expire_on_commit=False)

    async def insert(self, row: BatchRow, items: list[BatchItem]) -> None:
        """Add a batch and its requests at once."""
        async with guarded("saving a batch"), self.session.begin() as session:
            session.add(row)
            session.add_all(items)

    async def get(self, batch_id: str) -> BatchRow | None:
        """A batch's row."""
        async with guarded("reading a batch"), self.session() as session:
            return await session.get(BatchRow, batch_id)

    async def set(self, batch_id: str, **fields: Any) -> None:
        """Change columns of a batch."""
        async with guarded("saving a batch"), self.session.begin() as session:
            await session.execute(
                update(BatchRow).where(BatchRow.batch_id == batch_id).values(**fields)
            )

    async def page(
        self,
        owner: str | None,
        all_owners: bool,
        after: tuple[datetime, str] | None,
        size: int,
        key_hash: str | None = None,
    ) -> list[BatchRow]:
        """Batches, newest first, `size` of them after `after`."""
        query = select(BatchRow)
        query = owned_page(
            query, BatchRow, BatchRow.batch_id, owner, all_owners, after, size, key_hash
        )
        async with guarded("listing batches"), self.session() as session:
            return list((await session.execute(query)).scalars())

    async def remove(self, batch_id: str) -> None:
        """Delete a batch and its requests."""
        async with guarded("deleting a batch"), self.session.begin() as session:
            await session.execute(delete(BatchItem).where(BatchItem.batch_id == batch_id))
            await session.execute(delete(BatchRow).where(BatchRow.batch_id == batch_id))

    async def claim(self, owner: str, now: datetime, until: datetime) -> BatchRow | None:
        """Take the lease of the oldest open batch nobody holds (or whose holder's lease
        lapsed); None when there is none. Atomic: two instances never hold one batch."""
        query = (
            select(BatchRow.batch_id)
            .where(BatchRow.state.in_(OPEN_STATES))
            .where(or_(BatchRow.lease_until.is_(None), BatchRow.lease_until < now))
            .order_by(BatchRow.created_at)
            .limit(5)
        )
        async with guarded("claiming a batch"), self.session.begin() as session:
            for batch_id in list((await session.execute(query)).scalars()):
                taken = await session.execute(
                    update(BatchRow)
                    .where(BatchRow.batch_id == batch_id)
                    .where(or_(BatchRow.lease_until.is_(None), BatchRow.lease_until < now))
                    .values(lease_owner=owner, lease_until=until, state="BATCH_STATE_RUNNING")
                )
                if getattr(taken, "rowcount", 0):
                    return await session.get(BatchRow, batch_id)
        return None

    async def renew(self, batch_id: str, owner: str, until: datetime) -> BatchRow | None:
        """Extend a held lease; the batch as it is now, or None if the lease was lost."""
        async with guarded("renewing a batch lease"), self.session.begin() as session:
            done = await session.execute(
                update(BatchRow)
                .where(BatchRow.batch_id == batch_id, BatchRow.lease_owner == owner)
                .values(lease_until=until)
            )
            if not getattr(done, "rowcount", 0):
                return None
            return await session.get(BatchRow, batch_id)

    async def items(self, batch_id: str, states: tuple[str, ...] | None = None) -> list[BatchItem]:
        """A batch's requests in order (those in `states`, when given)."""
        query = select(BatchItem).where(BatchItem.batch_id == batch_id)
        if states is not None:
            query = query.where(BatchItem.state.in_(states))
        async with guarded("reading batch requests"), self.session() as session:
            return list((await session.execute(query.order_by(BatchItem.idx))).scalars())

    async def counts(self, batch_id: str) -> dict[str, int]:
        """How many of a batch's requests are in each state."""
        query = (
            select(BatchItem.state, func.count())
            .where(BatchItem.batch_id == batch_id)
            .group_by(BatchItem.state)
        )
        async with guarded("counting batch requests"), self.session() as session:
            return {state: int(n) for state, n in (await session.execute(query)).all()}

    async def set_item(self, batch_id: str, idx: int, **fields: Any) -> None:
        """Change one request's state or answer."""
        async with guarded("saving a batch request"), self.session.begin() as session:
            await session.execute(
                update(BatchItem)
                .where(BatchItem.batch_id == batch_id, BatchItem.idx == idx)
                .values(**fields)
            )
