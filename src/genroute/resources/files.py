"""The Files API's logic: uploads (Gemini's resumable protocol), get, list, delete, expiry.

`FileService` keeps each file's metadata in the database (`genroute.store.files`) and its
bytes in `Blobs` (a directory, or S3), so every instance sharing them serves every file.
An upload is started (`start`: the declared size, type and name checked against the
config), fed by one or more requests (`receive`: each a stream of body chunks, appended
after the bytes already stored, never held whole in memory), and finalized; it is then
ACTIVE until it expires (`files.ttl_hours`, 48 as on Gemini) or is deleted.

A file is the caller's to see only if it owns it (`genroute.resources.owners`); another
owner's file is answered exactly as a missing one. `File` JSON is Gemini's shape.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import string
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from genroute.config import FilesSettings
from genroute.errors import GenrouteError, InvalidRequest, NotFound, PayloadTooLarge
from genroute.resources.blobs import Blobs
from genroute.resources.owners import Access
from genroute.store.files import FileRepo, FileRow
from genroute.store.repo import aware, utcnow

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "FileService",
    "NewFile",
    "file_json",
    "page_token",
    "parse_file_name",
    "parse_page_token",
]

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
_ID_CHARS = string.ascii_lowercase + string.digits
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
Clock = Callable[[], datetime]


def parse_file_name(name: str, field: str = "name") -> str:
    """The id of `files/{id}` (or a bare id); InvalidRequest naming `field` otherwise."""
    file_id = name[len("files/") :] if name.startswith("files/") else name
    if not _NAME.match(file_id):
        raise InvalidRequest(
            f"{field}: {name[:80]!r} is not a file name (files/ and up to 40 lowercase "
            "letters, digits or dashes, not starting or ending with a dash)"
        )
    return file_id


def _time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return aware(value).astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")  # type: ignore[union-attr]


def file_json(row: FileRow, base_uri: str) -> dict[str, Any]:
    """A file as Gemini's `File` resource; `base_uri` is the API root the uri is under
    (`http://host:4000/v1beta`)."""
    data: dict[str, Any] = {
        "name": f"files/{row.file_id}",
        "mimeType": row.mime_type,
        "sizeBytes": str(row.size_bytes),
        "createTime": _time(row.created_at),
        "updateTime": _time(row.updated_at),
        "expirationTime": _time(row.expires_at),
        "uri": f"{base_uri}/files/{row.file_id}",
        "state": row.state,
        "source": "UPLOADED",
    }
    if row.display_name:
        data["displayName"] = row.display_name
    if row.sha256:
        data["sha256Hash"] = base64.b64encode(row.sha256.encode()).decode()
    if row.state == "FAILED" and row.error:
        data["error"] = {"code": 400, "message": row.error}
    return data


@dataclass(frozen=True, slots=True)
class NewFile:
    """What the start of an upload says about the file."""

    mime_type: str | None
    size: int | None
    display_name: str | None = None
    name: str | None = None


class _Counted:
    """The chunks of one request, counted against a limit and hashed when asked."""

    def __init__(self, chunks: AsyncIterator[bytes], limit: int, why: str, hash_it: bool) -> None:
        self._chunks = chunks
        self._limit = limit
        self._why = why
        self.size = 0
        self.sha = hashlib.sha256() if hash_it else None

    async def stream(self) -> AsyncIterator[bytes]:
        """The chunks, counted (PayloadTooLarge past the limit) and hashed."""
        async for chunk in self._chunks:
            self.size += len(chunk)
            if self.size > self._limit:
                raise PayloadTooLarge(self._why)
            if self.sha is not None:
                self.sha.update(chunk)
            yield chunk


class FileService:
    """Files: metadata in the database, bytes in `blobs`; see the module docstring."""

    def __init__(
        self,
        repo: FileRepo,
        blobs: Blobs,
        settings: FilesSettings,
        *,
        now: Clock = utcnow,
    ) -> None:
        self.repo = repo
        self.blobs = blobs
        self.settings = settings
        self.now = now

    # -- uploads ----------------------------------------------------------------------------

    def _check_new(self, new: NewFile, checked: bool) -> str:
        if not checked:  # a file genroute writes itself (a batch's answers)
            return parse_file_name(new.name or "", "file.name")
        if not new.mime_type:
            raise InvalidRequest(
                "file.mimeType: required (send X-Goog-Upload-Header-Content-Type or "
                "file.mimeType when starting the upload)"
            )
        if not self.settings.allows(new.mime_type):
            raise InvalidRequest(
                f"file.mimeType: {new.mime_type!r} files may not be uploaded here "
                f"(files.allowed_mime_types: {', '.join(self.settings.allowed_mime_types)})"
            )
        limit = self.settings.max_file_bytes
        if new.size is not None and new.size > limit:
            raise PayloadTooLarge(
                f"file.sizeBytes: {new.size} bytes is over the limit of {limit} bytes "
                "(files.max_file_size_mb)"
            )
        if new.name is not None:
            return parse_file_name(new.name, "file.name")
        return "".join(secrets.choice(_ID_CHARS) for _ in range(12))

    async def start(
        self, access: Access, key_hash: str | None, new: NewFile, *, checked: bool = True
    ) -> FileRow:
        """Begin an upload: a row in state UPLOADING with a fresh session token (`checked`:
        against the configured types and sizes, as for every client's upload)."""
        file_id = self._check_new(new, checked)
        now = self.now()
        row = FileRow(
            file_id=file_id,
            owner=access.owner,
            key_hash=key_hash,
            display_name=(new.display_name or None) and new.display_name[:512],
            mime_type=new.mime_type or "",
            size_bytes=0,
            declared_size=new.size,
            state="UPLOADING",
            blob_key=f"{file_id}-{secrets.token_hex(8)}",
            upload_id=secrets.token_urlsafe(24),
            upload={},
            created_at=now,
            updated_at=now,
            expires_at=now + timedelta(hours=self.settings.ttl_hours),
        )
        try:
            await self.repo.insert(row)
        except IntegrityError:
            raise GenrouteError(
                f"File files/{file_id} already exists.", code=409, status="ALREADY_EXISTS"
            ) from None
        return row

    async def session(self, upload_id: str) -> FileRow:
        """The upload with this session token (its credential), if it is still open."""
        row = await self.repo.by_upload(upload_id)
        if row is None or row.state != "UPLOADING" or aware(row.expires_at) <= self.now():  # type: ignore[operator]
            raise NotFound("No upload session with this upload_id (it ended, or never began).")
        return row

    async def receive(
        self,
        row: FileRow,
        offset: int | None,
        chunks: AsyncIterator[bytes],
        finalize: bool,
    ) -> FileRow:
        """Append one request's body to the upload (after `offset` bytes, which must be
        what is stored) and, with `finalize`, end it; the row as it is now."""
        stored = row.size_bytes
        if offset is not None and offset != stored:
            raise InvalidRequest(
                f"X-Goog-Upload-Offset: {offset}, but the upload has {stored} bytes; "
                "query the upload (X-Goog-Upload-Command: query) and resume from there"
            )
        cap = self.settings.max_file_bytes
        why = f"the file is over the limit of {cap} bytes (files.max_file_size_mb)"
        if row.declared_size is not None and row.declared_size < cap:
            cap = row.declared_size
            why = (
                f"the upload is longer than the {cap} bytes declared by "
                "X-Goog-Upload-Header-Content-Length"
            )
        counted = _Counted(chunks, cap - stored, why, hash_it=stored == 0 and finalize)
        state = await self.blobs.append(
            row.blob_key, dict(row.upload or {}), stored, counted.stream(), finalize
        )
        total = stored + counted.size
        fields: dict[str, Any] = {"size_bytes": total, "upload": state}
        if finalize:
            if row.declared_size is not None and total != row.declared_size:
                await self._discard(row, state)
                raise InvalidRequest(
                    f"the upload ended at {total} bytes, but X-Goog-Upload-Header-Content-"
                    f"Length declared {row.declared_size}"
                )
            sha = counted.sha.hexdigest() if counted.sha is not None else await self._hash(row)
            fields.update(state="ACTIVE", sha256=sha, upload_id=None, upload=None)
        if not await self.repo.advance(row.file_id, stored, fields):
            raise GenrouteError(
                "another request moved this upload on meanwhile; query it and resume",
                code=409,
                status="ABORTED",
            )
        for name, value in fields.items():
            setattr(row, name, value)
        return row

    async def _hash(self, row: FileRow) -> str:
        sha = hashlib.sha256()
        async for chunk in self.blobs.read(row.blob_key):
            sha.update(chunk)
        return sha.hexdigest()

    async def _discard(self, row: FileRow, state: dict[str, Any]) -> None:
        await self.blobs.abort(row.blob_key, state)
        await self.repo.remove(row.file_id)

    async def cancel(self, row: FileRow) -> None:
        """End an upload without a file."""
        await self._discard(row, dict(row.upload or {}))

    # -- files ------------------------------------------------------------------------------

    async def get(self, access: Access, name: str) -> FileRow:
        """A file the caller may see (uploaded, not expired); 404 otherwise."""
        file_id = parse_file_name(name)
        row = await self.repo.get(file_id)
        if (
            row is None
            or row.state == "UPLOADING"
            or not access.may_see(row.owner)
            or aware(row.expires_at) <= self.now()  # type: ignore[operator]
        ):
            raise Access.hidden("File", file_id)
        return row

    async def list(
        self,
        access: Access,
        page_size: int | None,
        token: str | None,
        key_hash: str | None = None,
    ) -> tuple[list[FileRow], str | None]:
        """One page of the caller's files, newest first, and the next page's token (those made by
        `key_hash` only, when given)."""
        size = max(1, min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE))
        after = parse_page_token(token) if token else None
        rows = await self.repo.page(
            access.owner, access.sees_all, after, size + 1, self.now(), key_hash
        )
        more = len(rows) > size
        rows = rows[:size]
        following = page_token(rows[-1].created_at, rows[-1].file_id) if more and rows else None
        return rows, following

    async def delete(self, access: Access, name: str) -> None:
        """Delete a file the caller may see: its bytes, then its row."""
        row = await self.get(access, name)
        await self.blobs.delete(row.blob_key)
        await self.repo.remove(row.file_id)

    def read(self, row: FileRow) -> AsyncIterator[bytes]:
        """A file's bytes, in bounded chunks."""
        return self.blobs.read(row.blob_key)

    async def sweep(self) -> int:
        """Delete files (and abandoned uploads) past their expiry; how many."""
        count = 0
        for row in await self.repo.expired(self.now()):
            if row.state == "UPLOADING":
                await self.blobs.abort(row.blob_key, dict(row.upload or {}))
            await self.blobs.delete(row.blob_key)
            await self.repo.remove(row.file_id)
            count += 1
        return count


def page_token(created: datetime, ident: str) -> str:
    """The token of the page after a row (its creation time and id)."""
    stamp = aware(created).isoformat()  # type: ignore[union-attr]
    return base64.urlsafe_b64encode(f"{stamp}|{ident}".encode()).decode().rstrip("=")


def parse_page_token(token: str) -> tuple[datetime, str]:
    """The creation time and id a page token was made of; 400 for any other text."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        stamp, ident = raw.split("|", 1)
        return datetime.fromisoformat(stamp), ident
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("pageToken: not a token this API gave") from None
