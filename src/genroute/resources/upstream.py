"""A genroute file on a deployment's own Files API (Gemini's): uploaded once per upstream
and key, remembered in the database, and named only once the upstream has made it ACTIVE.

Gemini keeps some uploads PROCESSING for a while (videos, long audio) and refuses a call
naming one before it is ACTIVE. `upstream_uri` uploads a file (or finds its copy), and if
the copy is not ACTIVE yet looks at it again (`GET files/{id}` on the upstream) with
growing pauses, for at most `files.upstream_processing_wait_seconds`: ACTIVE, the call goes
on with its uri; FAILED, a 400 naming the part and why; still PROCESSING, a 400
FAILED_PRECONDITION naming the part that says to retry shortly (with a retry delay). The
copy's state is kept, so a retry on any instance reuses the upload and only looks again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from genroute.call import Call
from genroute.errors import GenrouteError, InvalidRequest
from genroute.providers.base import UpstreamFiles
from genroute.store.files import FileCopy, FileRepo, FileRow
from genroute.store.repo import utcnow

__all__ = ["RETRY_AFTER", "UPSTREAM_COPY_LIFE", "upstream_uri"]

UPSTREAM_COPY_LIFE = timedelta(hours=47)  # Gemini keeps a file 48 hours
RETRY_AFTER = 10.0  # seconds a client is told to wait for a file still PROCESSING
_FIRST_PAUSE, _MOST_PAUSE = 0.1, 2.0


def _expiry(value: Any) -> datetime:
    """When an upstream copy stops being usable: an hour before the upstream says."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")) - timedelta(hours=1)
        except ValueError:
            pass
    return utcnow() + UPSTREAM_COPY_LIFE


def _copy(row: FileRow, target: str, file: dict[str, Any]) -> FileCopy:
    return FileCopy(
        file_id=row.file_id,
        target=target,
        upstream_name=str(file.get("name") or ""),
        upstream_uri=str(file["uri"]),
        expires_at=_expiry(file.get("expirationTime")),
        state=str(file.get("state") or "ACTIVE"),
    )


async def upstream_uri(
    call: Call,
    provider: UpstreamFiles,
    repo: FileRepo,
    row: FileRow,
    chunks: AsyncIterator[bytes] | None,
    *,
    where: str,
    wait: float,
) -> str:
    """The uri of `row` on `provider`'s Files API, once ACTIVE there (see the module);
    `chunks` are the file's bytes, read only when it must be uploaded."""
    target = provider.files_target
    copy = await repo.copy(row.file_id, target)
    if copy is None:
        assert chunks is not None
        file = await provider.upload_file(
            call,
            chunks,
            size=row.size_bytes,
            mime_type=row.mime_type,
            display_name=row.display_name,
        )
        copy = _copy(row, target, file)
        await repo.save_copy(copy)
    if copy.state in (None, "ACTIVE"):
        return copy.upstream_uri
    deadline = time.monotonic() + wait
    pause = _FIRST_PAUSE
    while True:
        file = await provider.get_file(call, copy.upstream_name)
        state = str(file.get("state") or "ACTIVE")
        if state == "ACTIVE":
            await repo.save_copy(
                _copy(row, target, {**file, "uri": file.get("uri") or copy.upstream_uri})
            )
            return copy.upstream_uri
        if state == "FAILED":
            await repo.remove_copy(row.file_id, target)
            error = file.get("error")
            reason = error.get("message") if isinstance(error, dict) else None
            raise InvalidRequest(
                f"{where}.fileData.fileUri: files/{row.file_id} could not be processed by the "
                f"{provider_name(provider)} deployment ({reason or 'state FAILED'}); upload it "
                "again, or in another format"
            )
        left = deadline - time.monotonic()
        if left <= 0:
            raise GenrouteError(
                f"{where}.fileData.fileUri: files/{row.file_id} is still being processed by the "
                f"{provider_name(provider)} deployment it is sent to (state {state}, as videos "
                f"are for a while after their upload; genroute waited {wait:g} s, "
                "files.upstream_processing_wait_seconds): retry the call in a few seconds",
                code=400,
                status="FAILED_PRECONDITION",
                retry_after=RETRY_AFTER,
            )
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, _MOST_PAUSE)


def provider_name(provider: Any) -> str:
    """The provider's name, for messages."""
    spec = getattr(provider, "spec", None)
    return str(getattr(spec, "provider", None) or getattr(provider, "name", "upstream"))
