"""A Gemini deployment's own Files API (the resumable upload) and cachedContents.

    POST {host}{prefix}/upload/{v}/files      X-Goog-Upload-Protocol: resumable
                                              X-Goog-Upload-Command: start
                                              X-Goog-Upload-Header-Content-Length / -Type
         → X-Goog-Upload-URL
    POST {upload url}                         X-Goog-Upload-Command: upload[, finalize]
                                              X-Goog-Upload-Offset: bytes sent so far
         → (the last) {"file": File}

The bytes go in chunks of `CHUNK` bytes read from the caller's stream, so a file of any
size is sent in bounded memory. Errors are the Gemini provider's own (`map_error`).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from genroute.errors import UpstreamMalformed, UpstreamTimeout, UpstreamUnavailable
from genroute.providers.base import UpstreamCache
from genroute.providers.gemini.translate import PROVIDER, map_error
from genroute.providers.transport import HttpRequest, Timeout, Transport

__all__ = [
    "CHUNK",
    "create_cached_content",
    "files_target",
    "get_file",
    "upload_file",
    "upload_root",
]

CHUNK = 8 * 1024 * 1024


def upload_root(root: str) -> str:
    """The upload URL for a versioned API root: `…/v1beta` → `…/upload/v1beta/files`."""
    head, _, version = root.rstrip("/").rpartition("/")
    return f"{head}/upload/{version}/files"


def files_target(root: str, key: str | None) -> str:
    """Who a file uploaded to this root with this key is visible to, as a short digest."""
    return hashlib.sha256(f"{root}\0{key or ''}".encode()).hexdigest()[:32]


async def _send(transport: Transport, request: HttpRequest) -> tuple[int, Mapping[str, str], bytes]:
    try:
        async with await transport.send(request) as response:
            return response.status, response.headers, await response.read()
    except TimeoutError:
        raise UpstreamTimeout(f"{PROVIDER} file upload timed out", provider=PROVIDER) from None
    except OSError as exc:
        raise UpstreamUnavailable(
            f"{PROVIDER} file upload unreachable: {exc}", provider=PROVIDER
        ) from None


async def _pieces(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= CHUNK:
            yield bytes(buffer[:CHUNK])
            del buffer[:CHUNK]
    if buffer:
        yield bytes(buffer)


async def upload_file(
    transport: Transport,
    root: str,
    headers: Mapping[str, str],
    chunks: AsyncIterator[bytes],
    *,
    size: int,
    mime_type: str,
    display_name: str | None,
    seconds: float,
) -> dict[str, Any]:
    """Upload `size` bytes to the Files API under `root` (each request within `seconds`);
    the File the upstream made."""
    limit = Timeout(total=seconds, connect=min(seconds, 30))
    base = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    start = {
        **base,
        "content-type": "application/json",
        "x-goog-upload-protocol": "resumable",
        "x-goog-upload-command": "start",
        "x-goog-upload-header-content-length": str(size),
        "x-goog-upload-header-content-type": mime_type,
    }
    meta = {"file": {"displayName": display_name}} if display_name else {"file": {}}
    request = HttpRequest("POST", upload_root(root), start, orjson.dumps(meta), limit)
    status, reply_headers, body = await _send(transport, request)
    if status != 200:
        raise map_error(status, body, reply_headers)
    url = reply_headers.get("x-goog-upload-url")
    if not url:
        raise UpstreamMalformed(
            f"{PROVIDER} file upload: the start gave no X-Goog-Upload-URL", provider=PROVIDER
        )
    offset = 0
    sent = False
    async for piece in _pieces(chunks):
        last = offset + len(piece) >= size
        status, reply_headers, body = await _send(
            transport,
            HttpRequest(
                "POST",
                url,
                {
                    **base,
                    "x-goog-upload-command": "upload, finalize" if last else "upload",
                    "x-goog-upload-offset": str(offset),
                },
                piece,
                limit,
            ),
        )
        if status != 200:
            raise map_error(status, body, reply_headers)
        offset += len(piece)
        sent = last
    if not sent:  # an empty file: finalize with no bytes
        request = HttpRequest(
            "POST",
            url,
            {**base, "x-goog-upload-command": "finalize", "x-goog-upload-offset": str(offset)},
            b"",
            limit,
        )
        status, reply_headers, body = await _send(transport, request)
        if status != 200:
            raise map_error(status, body, reply_headers)
    try:
        file = orjson.loads(body)["file"]
        if not isinstance(file, dict) or not file.get("uri"):
            raise KeyError("uri")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise UpstreamMalformed(
            f"{PROVIDER} file upload: the finalize reply has no file with a uri",
            provider=PROVIDER,
        ) from None
    return dict(file)


async def get_file(
    transport: Transport, root: str, headers: Mapping[str, str], name: str, *, seconds: float
) -> dict[str, Any]:
    """A file of this upstream's Files API (`GET {root}/files/{id}`): its `File`."""
    limit = Timeout(total=seconds, connect=min(seconds, 30))
    request = HttpRequest("GET", f"{root}/{name}", dict(headers), b"", limit)
    status, reply_headers, reply = await _send(transport, request)
    if status != 200:
        raise map_error(status, reply, reply_headers)
    try:
        file = orjson.loads(reply)
        if not isinstance(file, dict) or not file.get("name"):
            raise KeyError("name")
    except (orjson.JSONDecodeError, KeyError):
        raise UpstreamMalformed(
            f"{PROVIDER} files.get: the reply is not a File", provider=PROVIDER
        ) from None
    return dict(file)


async def create_cached_content(
    transport: Transport,
    root: str,
    headers: Mapping[str, str],
    body: dict[str, Any],
    *,
    seconds: float,
) -> UpstreamCache:
    """Create a cached content (`POST {root}/cachedContents`): its upstream name and the
    tokens the upstream counted in it."""
    limit = Timeout(total=seconds, connect=min(seconds, 30))
    sent = {**headers, "content-type": "application/json"}
    request = HttpRequest("POST", f"{root}/cachedContents", sent, orjson.dumps(body), limit)
    status, reply_headers, reply = await _send(transport, request)
    if status != 200:
        raise map_error(status, reply, reply_headers)
    try:
        data = orjson.loads(reply)
        name = data["name"]
        if not isinstance(name, str) or not name.startswith("cachedContents/"):
            raise KeyError("name")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise UpstreamMalformed(
            f"{PROVIDER} cachedContents: the reply has no name", provider=PROVIDER
        ) from None
    usage = data.get("usageMetadata")
    tokens = str(usage.get("totalTokenCount", "")) if isinstance(usage, dict) else ""
    return UpstreamCache(name, int(tokens) if tokens.isdigit() else 0)
