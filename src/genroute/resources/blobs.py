"""Where file bytes are kept: the `Blobs` interface, and a directory (the embedded default).

An upload arrives in pieces (Gemini's resumable protocol: one or more requests, each a
stream of body chunks), possibly at different instances. `Blobs.append` writes one
request's chunks after the `offset` bytes already stored and returns the upload's new
state (plain JSON, kept in the file's database row, so any instance continues it);
`final` ends the upload. Nothing buffers more than a bounded piece of a file: a 200 MB
upload does not make the process 200 MB larger.

    LocalBlobs   a directory; a request that died mid-write is cut back to `offset` by
                 the next one (the database row says how much was stored)
    S3Blobs      an S3-compatible bucket (genroute.resources.s3)
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

from genroute.errors import ServiceUnavailable

__all__ = ["WRITE_BUFFER", "Blobs", "LocalBlobs"]

WRITE_BUFFER = 1 << 20  # bytes gathered before one write to disk
READ_CHUNK = 1 << 20


class Blobs(Protocol):
    """Stored bytes, by key."""

    async def append(
        self,
        key: str,
        state: dict[str, Any],
        offset: int,
        chunks: AsyncIterator[bytes],
        final: bool,
    ) -> dict[str, Any]:
        """Write `chunks` after the first `offset` bytes of the upload; its new state."""
        ...

    async def abort(self, key: str, state: dict[str, Any]) -> None:
        """Drop an unfinished upload."""
        ...

    def read(self, key: str) -> AsyncIterator[bytes]:
        """The stored bytes, in bounded chunks."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the bytes (nothing if they are not there)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def _unavailable(what: str, exc: OSError) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"file storage failed ({what}: {exc.strerror or exc}); retry shortly", retry_after=1.0
    )


class LocalBlobs:
    """Files in one directory (made on first use), named by their key."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        if "/" in key or key.startswith(".") or not key:
            raise ValueError(f"not a blob key: {key!r}")
        return self.directory / key

    def _open_at(self, key: str, offset: int) -> Any:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        handle = open(path, "r+b" if path.exists() else "w+b")  # noqa: SIM115 - closed below
        handle.truncate(offset)
        handle.seek(offset)
        return handle

    async def append(
        self,
        key: str,
        state: dict[str, Any],
        offset: int,
        chunks: AsyncIterator[bytes],
        final: bool,
    ) -> dict[str, Any]:
        try:
            handle = await asyncio.to_thread(self._open_at, key, offset)
        except OSError as exc:
            raise _unavailable("opening", exc) from None
        try:
            pending: list[bytes] = []
            size = 0
            async for chunk in chunks:
                pending.append(chunk)
                size += len(chunk)
                if size >= WRITE_BUFFER:
                    await asyncio.to_thread(handle.write, b"".join(pending))
                    pending, size = [], 0
            if pending:
                await asyncio.to_thread(handle.write, b"".join(pending))
            if final:
                await asyncio.to_thread(os.fsync, handle.fileno())
        except OSError as exc:
            raise _unavailable("writing", exc) from None
        finally:
            await asyncio.to_thread(handle.close)
        return state

    async def abort(self, key: str, state: dict[str, Any]) -> None:
        await self.delete(key)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        try:
            handle = await asyncio.to_thread(open, self._path(key), "rb")
        except OSError as exc:
            raise _unavailable("reading", exc) from None
        try:
            while chunk := await asyncio.to_thread(handle.read, READ_CHUNK):
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self._path(key).unlink, True)
        except OSError as exc:
            raise _unavailable("deleting", exc) from None

    async def aclose(self) -> None:
        return None
