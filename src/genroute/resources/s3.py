"""File bytes in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, ...).

Requests are signed with botocore's `S3SigV4Auth` (the credentials of the `files.s3`
config, else botocore's chain) and sent with aiohttp; bodies stream both ways. An upload
is an S3 multipart upload, made when its first full part is ready: a request's bytes are
cut into parts of `part_size_mb`; what is left over at the end of a request that does not
finish the upload (less than a part; S3 refuses parts under 5 MB but the last) is kept as
a `<key>.tail` object and put in front of the next request's bytes. A file smaller than
one part is a single PutObject. So at most one part is in memory per upload.
"""

from __future__ import annotations

import asyncio
import io
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from genroute.config import S3Settings
from genroute.errors import ServiceUnavailable

__all__ = ["S3Blobs"]

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
READ_CHUNK = 1 << 20


def _text(body: bytes, tag: str) -> str | None:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    for name in (f"{_NS}{tag}", tag):
        found = root.find(f".//{name}")
        if found is not None and found.text:
            return found.text
    return root.text if root.tag in (f"{_NS}{tag}", tag) else None


class S3Blobs:
    """Blobs in one bucket under a prefix; see the module docstring."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.part_size = int(settings.part_size_mb * 1024 * 1024)
        endpoint = settings.endpoint_url or f"https://s3.{settings.region}.amazonaws.com"
        self._endpoint = endpoint
        self._credentials: Any = None
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    # -- plumbing ------------------------------------------------------------------------

    def _url(self, key: str, query: str = "") -> str:
        path = quote(f"{self.settings.prefix}{key}", safe="/")
        if self.settings.addressing_style == "virtual":
            scheme, _, host = self._endpoint.partition("://")
            base = f"{scheme}://{self.settings.bucket}.{host}/{path}"
        else:
            base = f"{self._endpoint}/{self.settings.bucket}/{path}"
        return f"{base}?{query}" if query else base

    async def _frozen(self) -> Any:
        async with self._lock:
            if self._credentials is None:
                s = self.settings
                if s.access_key_id and s.secret_access_key:
                    from botocore.credentials import Credentials

                    self._credentials = Credentials(
                        s.access_key_id, s.secret_access_key, s.session_token
                    )
                else:
                    import botocore.session

                    found = await asyncio.to_thread(
                        lambda: botocore.session.Session().get_credentials()
                    )
                    if found is None:
                        raise ServiceUnavailable(
                            "file storage: no S3 credentials (set files.s3.access_key_id and "
                            "secret_access_key, or AWS credentials in the environment)"
                        )
                    self._credentials = found
        return self._credentials.get_frozen_credentials()

    async def _signed(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
        S3SigV4Auth(await self._frozen(), "s3", self.settings.region).add_auth(request)
        return {str(k): str(v) for k, v in request.headers.items()}

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(sock_connect=10, sock_read=self.settings.timeout)
            self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        return self._session

    async def _send(
        self, method: str, key: str, query: str = "", body: bytes = b"", ok: tuple[int, ...] = ()
    ) -> tuple[int, Mapping[str, str], bytes]:
        url = self._url(key, query)
        headers = await self._signed(method, url, body)
        try:
            sent = io.BytesIO(body) if body else None  # aiohttp sends a file object in pieces
            async with self._http().request(method, url, data=sent, headers=headers) as response:
                data = await response.read()
                status = response.status
                reply_headers = dict(response.headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ServiceUnavailable(
                f"file storage (S3 {method} {self.settings.bucket}) unreachable: {exc}",
                retry_after=1.0,
            ) from None
        if status >= 300 and status not in ok:
            code = _text(data, "Code") or str(status)
            message = _text(data, "Message") or data[:200].decode("utf-8", "replace")
            raise ServiceUnavailable(
                f"file storage (S3 {method} on bucket {self.settings.bucket}) answered "
                f"{status} {code}: {message}",
                retry_after=1.0,
            )
        return status, reply_headers, data

    # -- Blobs ---------------------------------------------------------------------------

    async def _take_tail(self, key: str, state: dict[str, Any]) -> bytes:
        if not state.get("tail"):
            return b""
        _, _, data = await self._send("GET", f"{key}.tail")
        return data

    async def _put_part(self, key: str, state: dict[str, Any], data: bytes) -> None:
        if not state.get("upload_id"):
            _, _, body = await self._send("POST", key, "uploads=")
            upload_id = _text(body, "UploadId")
            if not upload_id:
                raise ServiceUnavailable("file storage (S3): CreateMultipartUpload gave no id")
            state["upload_id"], state["parts"] = upload_id, []
        number = len(state["parts"]) + 1
        query = f"partNumber={number}&uploadId={quote(state['upload_id'], safe='')}"
        _, headers, _ = await self._send("PUT", key, query, data)
        etag = next((v for k, v in headers.items() if k.lower() == "etag"), None)
        if etag is None:
            raise ServiceUnavailable("file storage (S3): UploadPart gave no ETag")
        state["parts"].append(etag)

    async def append(
        self,
        key: str,
        state: dict[str, Any],
        offset: int,
        chunks: AsyncIterator[bytes],
        final: bool,
    ) -> dict[str, Any]:
        state = {"upload_id": None, "parts": [], "tail": 0, **state}
        buffer = bytearray(await self._take_tail(key, state))
        async for chunk in chunks:
            buffer += chunk
            while len(buffer) >= self.part_size:
                await self._put_part(key, state, bytes(buffer[: self.part_size]))
                del buffer[: self.part_size]
        if final:
            await self._finish(key, state, bytes(buffer))
        else:
            if buffer or state["tail"]:
                await self._send("PUT", f"{key}.tail", body=bytes(buffer))
            state["tail"] = len(buffer)
        return state

    async def _finish(self, key: str, state: dict[str, Any], rest: bytes) -> None:
        if not state.get("upload_id"):
            await self._send("PUT", key, body=rest)
        else:
            if rest:
                await self._put_part(key, state, rest)
            parts = "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
                for n, etag in enumerate(state["parts"], 1)
            )
            body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
            query = f"uploadId={quote(state['upload_id'], safe='')}"
            _, _, reply = await self._send("POST", key, query, body)
            if b"<Error>" in reply:  # S3 may answer 200 and an error in the body
                raise ServiceUnavailable(
                    f"file storage (S3): completing the upload failed: {_text(reply, 'Message')}"
                )
        if state.get("tail"):
            await self._send("DELETE", f"{key}.tail", ok=(404,))
        state["tail"] = 0

    async def abort(self, key: str, state: dict[str, Any]) -> None:
        if state.get("upload_id"):
            query = f"uploadId={quote(state['upload_id'], safe='')}"
            await self._send("DELETE", key, query, ok=(404,))
        if state.get("tail"):
            await self._send("DELETE", f"{key}.tail", ok=(404,))

    async def read(self, key: str) -> AsyncIterator[bytes]:
        url = self._url(key)
        headers = await self._signed("GET", url, b"")
        try:
            async with self._http().get(url, headers=headers) as response:
                if response.status != 200:
                    data = await response.read()
                    raise ServiceUnavailable(
                        f"file storage (S3 GET on bucket {self.settings.bucket}) answered "
                        f"{response.status} {_text(data, 'Code') or ''}".rstrip()
                    )
                async for chunk in response.content.iter_chunked(READ_CHUNK):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ServiceUnavailable(
                f"file storage (S3 GET {self.settings.bucket}) broke: {exc}", retry_after=1.0
            ) from None

    async def delete(self, key: str) -> None:
        await self._send("DELETE", key, ok=(404,))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
