"""Uploaded files' metadata, and where each file was copied upstream (SQLAlchemy 2 ORM).

A file's bytes are kept by `genroute.resources` (a directory or an S3 bucket); its row here
says who owns it, what it is and where its bytes are, so every instance sharing the
database serves it. While it is uploaded (Gemini's resumable protocol, over several
requests that may reach different instances) the row holds the upload's state: the
session token, the bytes received, the S3 multipart upload's parts.

`FileCopy` remembers a file uploaded to a deployment's own Files API (a Gemini
deployment), so that it is uploaded once per deployment. The Alembic revision 0004
creates both tables; change them together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Index, String, delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from genroute.store.models import Base
from genroute.store.owned import owned_page
from genroute.store.repo import aware, guarded, utcnow

__all__ = ["FileCopy", "FileRepo", "FileRow"]


class FileRow(Base):
    """One uploaded file (or one being uploaded: state UPLOADING)."""

    __tablename__ = "genroute_files"
    __table_args__ = (
        Index("ix_genroute_files_owner_created", "owner", "created_at"),
        Index("ix_genroute_files_expires_at", "expires_at"),
    )

    file_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(300))
    key_hash: Mapped[str | None] = mapped_column(String(64))
    display_name: Mapped[str | None] = mapped_column(String(512))
    mime_type: Mapped[str] = mapped_column(String(255), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    declared_size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    error: Mapped[str | None] = mapped_column(String(1024))
    blob_key: Mapped[str] = mapped_column(String(512), nullable=False)
    upload_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    upload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class FileCopy(Base):
    """A file uploaded to one upstream's Files API (`target`: the upstream and its key,
    hashed), with the name and URI it has there."""

    __tablename__ = "genroute_file_copies"

    file_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    target: Mapped[str] = mapped_column(String(64), primary_key=True)
    upstream_name: Mapped[str] = mapped_column(String(256), nullable=False)
    upstream_uri: Mapped[str] = mapped_column(String(1024), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Its state there (revision 0008): PROCESSING until the upstream has read it (videos);
    # ACTIVE (or None, for copies made before) once it may be named in a call.
    state: Mapped[str | None] = mapped_column(String(16))


class FileRepo:
    """Rows of files and their upstream copies over one engine; a database that cannot be
    reached is a 503 (`ServiceUnavailable`), as everywhere in the store."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.session = async_sessionmaker(engine, expire_on_commit=False)

    async def insert(self, row: FileRow) -> None:
        """Add a new row (IntegrityError when the id is taken)."""
        async with guarded("saving a file"), self.session.begin() as session:
            session.add(row)

    async def get(self, file_id: str) -> FileRow | None:
        """The row of a file, whatever its state."""
        async with guarded("reading a file"), self.session() as session:
            return await session.get(FileRow, file_id)

    async def by_upload(self, upload_id: str) -> FileRow | None:
        """The row of the upload with this session token."""
        async with guarded("reading an upload"), self.session() as session:
            found = await session.execute(select(FileRow).where(FileRow.upload_id == upload_id))
            return found.scalar_one_or_none()

    async def advance(self, file_id: str, expected: int, fields: dict[str, Any]) -> bool:
        """Update an upload's row only if it has received `expected` bytes so far (another
        request may have moved it on); whether it was updated."""
        fields = {**fields, "updated_at": utcnow()}
        async with guarded("saving an upload"), self.session.begin() as session:
            result = await session.execute(
                update(FileRow)
                .where(FileRow.file_id == file_id, FileRow.size_bytes == expected)
                .values(**fields)
            )
            return bool(getattr(result, "rowcount", 0))

    async def page(
        self,
        owner: str | None,
        all_owners: bool,
        after: tuple[datetime, str] | None,
        size: int,
        now: datetime,
        key_hash: str | None = None,
    ) -> list[FileRow]:
        """Active and failed files, newest first, `size` of them after `after` (the
        created_at and id of the last one of the previous page)."""
        query = select(FileRow).where(FileRow.state != "UPLOADING", FileRow.expires_at > now)
        query = owned_page(
            query, FileRow, FileRow.file_id, owner, all_owners, after, size, key_hash
        )
        async with guarded("listing files"), self.session() as session:
            return list((await session.execute(query)).scalars())

    async def remove(self, file_id: str) -> None:
        """Delete a file's row and its copies' rows."""
        async with guarded("deleting a file"), self.session.begin() as session:
            await session.execute(delete(FileCopy).where(FileCopy.file_id == file_id))
            await session.execute(delete(FileRow).where(FileRow.file_id == file_id))

    async def expired(self, now: datetime, limit: int = 100) -> list[FileRow]:
        """Files past their expiry (and uploads abandoned past theirs), oldest first."""
        query = (
            select(FileRow)
            .where(FileRow.expires_at <= now)
            .order_by(FileRow.expires_at)
            .limit(limit)
        )
        async with guarded("finding expired files"), self.session() as session:
            return list((await session.execute(query)).scalars())

    async def copy(self, file_id: str, target: str) -> FileCopy | None:
        """Where a file was uploaded to an upstream, if it was and has not expired there."""
        async with guarded("reading a file copy"), self.session() as session:
            found = await session.get(FileCopy, (file_id, target))
        if found is None or aware(found.expires_at) <= utcnow():  # type: ignore[operator]
            return None
        return found

    async def remove_copy(self, file_id: str, target: str) -> None:
        """Forget a file's copy on an upstream (it failed there)."""
        async with guarded("deleting a file copy"), self.session.begin() as session:
            await session.execute(
                delete(FileCopy).where(FileCopy.file_id == file_id, FileCopy.target == target)
            )

    async def save_copy(self, entry: FileCopy) -> None:
        """Remember (or replace) a file's copy on an upstream."""
        async with guarded("saving a file copy"), self.session.begin() as session:
            await session.merge(entry)
