"""BoundedTransport: replies whole at most `limit` bytes, stream events each at most
`limit` bytes, however the chunks cut them."""

from __future__ import annotations

import pytest

from genroute.errors import UpstreamMalformed
from genroute.providers.transport import HttpRequest, HttpResponse, MockTransport
from genroute.routing.bounded import BoundedTransport

LIMIT = 100


async def chunks_of(*chunks: bytes, length: int | None = None) -> list[bytes]:
    headers = {"content-length": str(length)} if length is not None else {}
    transport = BoundedTransport(
        MockTransport(lambda r: HttpResponse(200, headers, list(chunks))), LIMIT
    )
    async with await transport.send(HttpRequest("POST", "http://u/x")) as response:
        return [chunk async for chunk in response.iter_chunks()]


async def test_many_small_events_pass_whatever_their_total() -> None:
    events = [b"data: %d\n\n" % i for i in range(100)]  # ~1 KB in all, each event 9 bytes
    assert await chunks_of(*events) == events
    cut = b"".join(events)
    pieces = [cut[i : i + 7] for i in range(0, len(cut), 7)]  # events cut anywhere
    assert await chunks_of(*pieces) == pieces


@pytest.mark.parametrize("end", [b"\n\n", b"\r\n\r\n", b"\r\r"])
async def test_each_event_end_closes_an_event(end: bytes) -> None:
    events = [b"data: " + b"x" * 60 + end for _ in range(5)]
    assert await chunks_of(*events) == events


async def test_one_event_over_the_limit_ends_the_stream_even_in_small_chunks() -> None:
    with pytest.raises(UpstreamMalformed, match="a stream event of over"):
        await chunks_of(b"data: ok\n\n", *[b"data: " + b"y" * 9] * 12)
    with pytest.raises(UpstreamMalformed, match="a stream event of over"):
        await chunks_of(b"data: " + b"z" * 200, b"\n\n")  # known before its end arrives


async def test_a_whole_reply_over_the_limit_is_refused() -> None:
    transport = BoundedTransport(
        MockTransport(lambda r: HttpResponse(200, {}, [b"a" * 60, b"b" * 60])), LIMIT
    )
    async with await transport.send(HttpRequest("POST", "http://u/x")) as response:
        with pytest.raises(UpstreamMalformed, match="over 120 bytes"):
            await response.read()
