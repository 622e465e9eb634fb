"""Relaying a stream to the client as it arrives: SSE (`alt=sse`) or a progressive JSON array.

The first chunk is awaited before the response starts, so an error before any byte is
sent is a normal HTTP error. After that, an error becomes a final `data: {"error": ...}`
event (or the array's last element). A client that goes away cancels the upstream call, and
so does one that stops reading: a chunk it has not taken within `write_timeout` seconds
(`general_settings.response_write_timeout`) ends the stream and the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import orjson

from genroute.errors import GenrouteError
from genroute.routing.watchdog import Watchdog
from genroute.server.asgi import (
    JSON_TYPE,
    NO_CACHE,
    SSE_TYPE,
    DisconnectWatch,
    Message,
    Receive,
    Send,
    safe_headers,
)
from genroute.sse import encode_event
from genroute.wire import GenerateContentResponse, wire_bytes

__all__ = ["relay"]

log = logging.getLogger("genroute.server")


async def relay(
    chunks: AsyncIterator[GenerateContentResponse],
    receive: Receive,
    send: Send,
    *,
    sse: bool,
    headers: list[tuple[bytes, bytes]],
    write_timeout: float | None = None,
) -> None:
    """Send `chunks` to the client, stopping the upstream if the client disconnects or
    stops reading (ConnectionAbortedError)."""
    send, watchdog = _timed(send, write_timeout)
    try:
        await _relay(chunks, receive, send, sse=sse, headers=headers)
    finally:
        if watchdog is not None:
            watchdog.close()


async def _relay(
    chunks: AsyncIterator[GenerateContentResponse],
    receive: Receive,
    send: Send,
    *,
    sse: bool,
    headers: list[tuple[bytes, bytes]],
) -> None:
    iterator = aiter(chunks)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        first = None
    except BaseException:
        await _close(iterator)
        raise
    start_headers = [SSE_TYPE if sse else JSON_TYPE, NO_CACHE, *safe_headers(headers)]
    try:
        await send({"type": "http.response.start", "status": 200, "headers": start_headers})
    except BaseException:
        await _close(iterator)
        raise
    # The chunks are pumped in this task; a client that leaves cancels it (DisconnectWatch).
    watch = DisconnectWatch(receive)
    try:
        await _pump(first, iterator, send, sse)
    except asyncio.CancelledError:
        if not watch.stop():
            raise
    except ConnectionAbortedError:
        raise
    except Exception as exc:
        log.warning("stream relay failed: %r", exc)
    finally:
        watch.stop()
        await _close(iterator)  # the upstream stream ends here, however the relay ended


def _timed(send: Send, seconds: float | None) -> tuple[Send, Watchdog | None]:
    """`send`, raising ConnectionAbortedError when a message waits over `seconds` for the
    client to read (uvicorn's send waits while the client's buffer is full); one
    `Watchdog` times every send (close it when the relay ends)."""
    if seconds is None:
        return send, None
    watchdog = Watchdog()

    async def timed(message: Message) -> None:
        watchdog.arm(seconds)
        try:
            await send(message)
        except asyncio.CancelledError:
            if watchdog.expired():
                raise ConnectionAbortedError(
                    f"the client read nothing for {seconds:g} s "
                    "(general_settings.response_write_timeout)"
                ) from None
            raise
        finally:
            watchdog.disarm()

    return timed, watchdog


async def _pump(
    first: GenerateContentResponse | None,
    iterator: AsyncIterator[GenerateContentResponse],
    send: Send,
    sse: bool,
) -> None:
    frame = encode_event if sse else None
    one_line = sse  # an SSE event's data is one line
    sent_any = False

    async def emit(payload: bytes) -> None:
        nonlocal sent_any
        body = frame(payload) if frame is not None else (b",\r\n" if sent_any else b"[") + payload
        sent_any = True
        await send({"type": "http.response.body", "body": body, "more_body": True})

    try:
        if first is not None:
            await emit(wire_bytes(first, one_line=one_line))
        async for chunk in iterator:
            await emit(wire_bytes(chunk, one_line=one_line))
    except ConnectionAbortedError:
        raise  # the client stopped reading: nothing more can be sent
    except GenrouteError as exc:
        log.warning("stream failed after it began: %s %s", exc.code, exc.message)
        await emit(orjson.dumps(exc.to_body()))
    except Exception as exc:
        log.exception("stream failed after it began")
        await emit(orjson.dumps(GenrouteError(f"internal error: {type(exc).__name__}").to_body()))
    tail = b"" if frame is not None else (b"]" if sent_any else b"[]")
    await send({"type": "http.response.body", "body": tail, "more_body": False})


async def _close(iterator: AsyncIterator[GenerateContentResponse]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()
