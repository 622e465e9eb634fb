"""Upstream replies of bounded size: what a misbehaving upstream sends cannot exhaust memory.

The Router sends every provider's requests through a `BoundedTransport` around the real
one. A reply whose body is over `router_settings.max_response_size_mb`, or a stream one of
whose events is, ends as `UpstreamMalformed` (502, reason MALFORMED: retried, cooled down
and fallen back like any other upstream failure) as soon as that is known: from its
Content-Length before any of it is read, else once the limit is passed while reading; the
connection is then dropped, not read to its end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from genroute.errors import UpstreamMalformed
from genroute.providers.transport import HttpRequest, HttpResponse, Transport

__all__ = ["BoundedTransport", "bounded_response", "too_large"]

_EVENT_ENDS = (b"\n\n", b"\r\n\r\n", b"\r\r")


def too_large(size: str, limit: int) -> UpstreamMalformed:
    """The error for a reply (or a stream event) of `size` over `limit` bytes."""
    return UpstreamMalformed(
        f"the upstream's reply is {size}, over the limit of {limit} bytes "
        "(router_settings.max_response_size_mb)"
    )


def _content_length(response: HttpResponse) -> int | None:
    value = response.headers.get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _pending(chunk: bytes, pending: int) -> int:
    """Bytes of the event still open after `chunk`, `pending` of them before it."""
    end = max(chunk.rfind(sep) + len(sep) if sep in chunk else -1 for sep in _EVENT_ENDS)
    return pending + len(chunk) if end < 0 else len(chunk) - end


def bounded_response(response: HttpResponse, limit: int, length: int | None = None) -> HttpResponse:
    """`response`, read whole at most `limit` bytes, and streamed events of at most `limit`
    bytes each (`length`: its Content-Length, when the caller has read it)."""
    if length is None:
        length = _content_length(response)

    async def read_all() -> bytes:
        if length is not None and length <= limit:
            return await response.read()
        data = bytearray()
        async for chunk in response.iter_chunks():
            data += chunk
            if len(data) > limit:
                raise too_large(f"over {len(data)} bytes", limit)
        return bytes(data)

    async def chunks() -> AsyncIterator[bytes]:
        pending = 0
        async for chunk in response.iter_chunks():
            if chunk.endswith(_EVENT_ENDS):  # the usual chunk: whole events, nothing open
                pending = 0
            else:
                pending = _pending(chunk, pending)
                if pending > limit:
                    raise too_large(f"a stream event of over {pending} bytes", limit)
            yield chunk

    return HttpResponse(
        response.status, response.headers, chunks(), on_close=response.aclose, read_all=read_all
    )


class BoundedTransport:
    """A Transport whose replies are at most `limit` bytes (stream events, each)."""

    def __init__(self, inner: Transport, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    async def send(self, request: HttpRequest) -> HttpResponse:
        response = await self.inner.send(request)
        length = _content_length(response)
        if length is not None and length > self.limit:
            await response.aclose()
            raise too_large(f"{length} bytes", self.limit)
        return bounded_response(response, self.limit, length)

    async def aclose(self) -> None:
        await self.inner.aclose()
