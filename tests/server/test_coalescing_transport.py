"""The server's transport wrapper: what the app writes in one step of the event loop goes
to the socket as one write when the step ends, in order; nothing is lost on close."""

from __future__ import annotations

import asyncio
from typing import Any

from genroute.server.protocol import CoalescingTransport


class Recorder:
    """A transport that records its writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False
        self.aborted = False
        self.eof = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def wrapped() -> tuple[CoalescingTransport, Recorder]:
    inner = Recorder()
    return CoalescingTransport(inner, asyncio.get_running_loop()), inner  # type: ignore[arg-type]


async def test_writes_of_one_step_go_out_as_one_when_it_ends() -> None:
    transport, inner = wrapped()
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.writelines([b"data: 1\r\n\r\n", b"data: 2\r\n\r\n"])
    assert inner.writes == [] and transport.get_write_buffer_size() == 7 + 19 + 2 * 11
    await asyncio.sleep(0)  # the step ends
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n"]
    transport.write(b"data: 3\r\n\r\n")
    await asyncio.sleep(0)
    assert inner.writes[1:] == [b"data: 3\r\n\r\n"]  # one write alone is passed as it is
    assert transport.get_write_buffer_size() == 7
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the inner's
    transport.pause_reading()
    assert not inner.reading and not transport.is_closing()
    transport.resume_reading()
    assert inner.reading and transport.eof is False  # an attribute it does not define


async def test_closing_writes_what_is_pending_first() -> None:
    transport, inner = wrapped()
    transport.write(b"last words")
    transport.close()
    assert inner.writes == [b"last words"] and inner.closing
    await asyncio.sleep(0)  # the scheduled flush finds nothing more to write
    assert inner.writes == [b"last words"]
    transport, inner = wrapped()
    transport.write(b"before eof")
    transport.write_eof()
    assert inner.writes == [b"before eof"] and inner.eof


async def test_nothing_is_written_to_a_connection_that_went_away_or_was_aborted() -> None:
    transport, inner = wrapped()
    transport.write(b"for a client that left")
    inner.closing = True  # the connection was lost before the step ended
    await asyncio.sleep(0)
    assert inner.writes == []
    transport, inner = wrapped()
    transport.write(b"dropped")
    transport.abort()
    await asyncio.sleep(0)
    assert inner.writes == [] and inner.aborted
