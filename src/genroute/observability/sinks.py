"""Built-in callbacks: a JSON-lines file and a webhook that POSTs batches of records.

Both take records in batches from their callback queue (see `callbacks.Sink`), so a
burst of requests becomes one write or one POST.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import IO, TYPE_CHECKING

from genroute.observability.records import CallRecord

if TYPE_CHECKING:  # aiohttp is imported by the first webhook batch
    import aiohttp

__all__ = ["JsonlFile", "Webhook"]

log = logging.getLogger("genroute.observability")


class JsonlFile:
    """Appends each record as one JSON line to a file."""

    def __init__(self, path: str, *, batch_size: int = 200, flush_interval: float = 0.5) -> None:
        self.path = os.path.abspath(os.path.expanduser(path))
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._file: IO[bytes] | None = None

    def _write(self, data: bytes) -> None:
        if self._file is None:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115
        self._file.write(data)

    async def handle_batch(self, records: list[CallRecord]) -> None:
        """Write the batch in one go, off the event loop."""
        data = b"".join(r.to_json() + b"\n" for r in records)
        await asyncio.to_thread(self._write, data)

    async def aclose(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None


class Webhook:
    """POSTs each batch as a JSON array of records to `url`."""

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        batch_size: int = 100,
        flush_interval: float = 2.0,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.headers = {"content-type": "application/json", **(headers or {})}
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def handle_batch(self, records: list[CallRecord]) -> None:
        """One POST; a non-2xx reply raises (and is counted as a callback error)."""
        if self._session is None or self._session.closed:
            import aiohttp  # here: a gateway without a webhook never loads it (~0.2 s)

            timeout = aiohttp.ClientTimeout(total=self.timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
        body = b"[" + b",".join(r.to_json() for r in records) + b"]"
        async with self._session.post(self.url, data=body, headers=self.headers) as resp:
            if resp.status >= 300:
                text = (await resp.read())[:200].decode("utf-8", "replace")
                raise RuntimeError(f"webhook {self.url} answered {resp.status}: {text}")

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
