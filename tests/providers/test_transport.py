"""The HTTP seam: HttpResponse, MockTransport, JsonTransport over it (observer, errors,
timeouts, SSE framing) and Http11Transport under JsonTransport against aiohttp's server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer

from genroute.errors import (
    FailureReason,
    GenrouteError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from genroute.providers.http11 import Http11Transport
from genroute.providers.transport import (
    USER_AGENT,
    HttpRequest,
    HttpResponse,
    JsonTransport,
    MockTransport,
    Timeout,
    path_segment,
    reading,
)
from tests.fakes.mock_http import TRACEPARENT, Observer, call, pieces, sse_body

URL = "https://upstream.example/v1/x"


def mapped(status: int, body: bytes, headers: Mapping[str, str]) -> GenrouteError:
    return UpstreamError(
        f"mapped {status}: {body.decode()} ({headers.get('x-why')})", code=status, provider="p"
    )


def json_transport(transport: MockTransport) -> JsonTransport:
    return JsonTransport(transport, provider="p", timeout=12, stream_timeout=7, map_error=mapped)


async def collect(stream: AsyncIterator[bytes]) -> list[bytes]:
    return [payload async for payload in stream]


# -- HttpResponse and MockTransport ---------------------------------------------------------


async def _async_chunks() -> AsyncIterator[bytes]:
    for chunk in (b"a", b"", b"bc"):
        yield chunk


@pytest.mark.parametrize("content", [b"abc", [b"a", b"bc"], _async_chunks])
async def test_a_response_body_reads_whole_or_as_chunks(content: object) -> None:
    body = content() if callable(content) else content
    response = HttpResponse(200, {"X-Thing": "1"}, body)
    assert await response.read() == b"abc"
    assert response.headers["x-thing"] == response.headers["X-THING"] == "1"


async def test_closing_runs_the_release_once_sync_or_async() -> None:
    released: list[str] = []

    async def later() -> None:
        released.append("async")

    for on_close in (lambda: released.append("sync"), later):
        response = HttpResponse(200, on_close=on_close)
        async with response:
            pass
        await response.aclose()
    assert released == ["sync", "async"]


async def test_mock_transport_takes_sync_and_async_handlers_and_keeps_requests() -> None:
    async def answer(request: HttpRequest) -> HttpResponse:
        return HttpResponse(201, content=request.body)

    for handler in (lambda r: HttpResponse(201, content=r.body), answer):
        transport = MockTransport(handler)
        response = await transport.send(HttpRequest("POST", URL, {}, b"hi"))
        assert (response.status, await response.read()) == (201, b"hi")
        assert [r.url for r in transport.requests] == [URL]
        await transport.aclose()
        assert transport.closed


# -- JsonTransport.post ---------------------------------------------------------------------


async def test_post_returns_the_body_with_a_total_and_connect_timeout() -> None:
    transport = MockTransport(lambda r: HttpResponse(200, content=b'{"ok":1}'))
    data = await json_transport(transport).post(URL, b"{}", {"a": "b"}, call())
    assert data == b'{"ok":1}'
    sent = transport.requests[0]
    assert (sent.method, sent.url, dict(sent.headers), sent.body) == (
        "POST",
        URL,
        {"a": "b"},
        b"{}",
    )
    assert sent.timeout == Timeout(total=12, connect=12)


async def test_a_reply_other_than_200_is_the_providers_mapped_error() -> None:
    closed: list[bool] = []
    transport = MockTransport(
        lambda r: HttpResponse(
            429, {"X-Why": "busy"}, b"slow down", on_close=lambda: closed.append(True)
        )
    )
    with pytest.raises(UpstreamError, match=r"mapped 429: slow down \(busy\)"):
        await json_transport(transport).post(URL, b"{}", {}, call())
    assert closed == [True]


async def test_the_observer_wraps_each_post_and_its_headers_go_upstream() -> None:
    observer = Observer()
    transport = MockTransport(lambda r: HttpResponse(200, content=b"{}"))
    http = json_transport(transport)
    await http.post(URL, b"{}", {"a": "b"}, call(observer=observer))
    await http.post(URL, b"{}", {"a": "b"}, call(observer=observer))
    assert observer.entered == [URL, URL] and observer.exited == [(URL, None), (URL, None)]
    assert [dict(r.headers) for r in transport.requests] == [
        {"a": "b", "traceparent": TRACEPARENT}
    ] * 2


async def test_the_observer_sees_the_mapped_error() -> None:
    observer = Observer()
    transport = MockTransport(lambda r: HttpResponse(503, content=b"down"))
    with pytest.raises(UpstreamError) as info:
        await json_transport(transport).post(URL, b"{}", {}, call(observer=observer))
    assert observer.exited == [(URL, info.value)]


async def test_without_an_observer_the_headers_are_sent_as_given() -> None:
    transport = MockTransport(lambda r: HttpResponse(200, content=b"{}"))
    headers = {"a": "b"}
    await json_transport(transport).post(URL, b"{}", headers, call())
    assert transport.requests[0].headers is headers


def _raise(exc: BaseException) -> HttpResponse:
    raise exc


@pytest.mark.parametrize(
    ("exc", "error", "reason", "text"),
    [
        (TimeoutError(), UpstreamTimeout, FailureReason.TIMEOUT, "p upstream did not answer within 12s"),
        (ConnectionRefusedError(111, "refused"), UpstreamUnavailable, FailureReason.UNREACHABLE,
         "p upstream unreachable: ConnectionRefusedError: [Errno 111] refused"),
        (ConnectionError("ServerDisconnectedError: gone"), UpstreamUnavailable,
         FailureReason.UNREACHABLE, "p upstream unreachable: ServerDisconnectedError: gone"),
    ],
)  # fmt: skip
async def test_timeouts_and_connection_errors_become_genroute_errors(
    exc: BaseException, error: type[GenrouteError], reason: FailureReason, text: str
) -> None:
    observer = Observer()
    transport = MockTransport(lambda r: _raise(exc))
    with pytest.raises(error) as info:
        await json_transport(transport).post(URL, b"{}", {}, call(observer=observer))
    assert (info.value.message, info.value.reason, info.value.provider) == (text, reason, "p")
    assert observer.exited == [(URL, info.value)]


async def test_a_genrouteerror_from_the_transport_passes_as_it_is() -> None:
    limited = RateLimited("no")
    with pytest.raises(RateLimited) as info:
        await json_transport(MockTransport(lambda r: _raise(limited))).post(URL, b"", {}, call())
    assert info.value is limited


# -- JsonTransport.stream -------------------------------------------------------------------

EVENTS = [b'{"n": 1}', b'{"text": "caf\xc3\xa9 \xf0\x9f\x8d\xb5"}', b"[DONE]"]
BODY = b": comment\r\nevent: x\r\n" + sse_body(EVENTS).replace(b"\n", b"\r\n")


@pytest.mark.parametrize("size", [1, 2, 3, 5, 64, None])
async def test_sse_split_anywhere_gives_the_same_payloads(size: int | None) -> None:
    transport = MockTransport(lambda r: HttpResponse(200, content=pieces(BODY, size)))
    assert await collect(json_transport(transport).stream(URL, b"{}", {}, call())) == EVENTS
    assert transport.requests[0].timeout == Timeout(connect=7, read=7)


async def test_a_last_event_without_its_blank_line_still_arrives() -> None:
    transport = MockTransport(
        lambda r: HttpResponse(200, content=b'data: {"a":1}\n\ndata: {"b":2}')
    )
    payloads = await collect(json_transport(transport).stream(URL, b"", {}, call()))
    assert payloads == [b'{"a":1}', b'{"b":2}']


async def test_the_observer_spans_the_whole_stream() -> None:
    observer = Observer()
    transport = MockTransport(lambda r: HttpResponse(200, content=pieces(sse_body(EVENTS), 4)))
    stream = json_transport(transport).stream(URL, b"{}", {}, call(observer=observer))
    first = await anext(stream)
    assert first == EVENTS[0] and observer.open == 1
    assert transport.requests[0].headers["traceparent"] == TRACEPARENT
    assert [first, *[p async for p in stream]] == EVENTS
    assert observer.exited == [(URL, None)]


async def test_done_ends_the_stream_there_and_closes_the_response() -> None:
    closed: list[bool] = []
    body = sse_body([b"1", b"[DONE]", b"never read"])
    transport = MockTransport(
        lambda r: HttpResponse(200, content=[body], on_close=lambda: closed.append(True))
    )
    observer = Observer()
    stream = json_transport(transport).stream(URL, b"", {}, call(observer=observer), done=b"[DONE]")
    assert await collect(stream) == [b"1", b"[DONE]"]
    assert closed == [True] and observer.exited == [(URL, None)]


async def test_leaving_a_stream_early_closes_it_and_the_observer() -> None:
    closed: list[bool] = []
    transport = MockTransport(
        lambda r: HttpResponse(
            200, content=[sse_body(EVENTS)], on_close=lambda: closed.append(True)
        )
    )
    observer = Observer()
    stream = json_transport(transport).stream(URL, b"", {}, call(observer=observer))
    assert await anext(stream) == EVENTS[0]
    await stream.aclose()
    assert closed == [True] and observer.open == 0


async def test_an_error_raised_while_reading_reaches_the_observer() -> None:
    observer = Observer()
    transport = MockTransport(lambda r: HttpResponse(200, content=sse_body(EVENTS)))
    stream = json_transport(transport).stream(URL, b"", {}, call(observer=observer))
    bad = InvalidRequest("the reader did not like it")
    with pytest.raises(InvalidRequest) as info:
        async with reading(stream) as payloads:
            async for _ in payloads:
                raise bad
    assert info.value is bad
    assert observer.exited == [(URL, bad)]


async def test_a_stream_answered_with_an_error_status_is_mapped_inside_the_observer() -> None:
    observer = Observer()
    transport = MockTransport(lambda r: HttpResponse(400, {"x-why": "bad"}, [b"no ", b"way"]))
    with pytest.raises(UpstreamError, match=r"mapped 400: no way \(bad\)") as info:
        await collect(json_transport(transport).stream(URL, b"", {}, call(observer=observer)))
    assert observer.exited == [(URL, info.value)]


async def _stalls() -> AsyncIterator[bytes]:
    yield b'data: {"a": 1}\n\n'
    raise TimeoutError


async def _breaks() -> AsyncIterator[bytes]:
    yield b'data: {"a": 1}\n\n'
    raise ConnectionResetError(104, "reset by peer")


@pytest.mark.parametrize(
    ("body", "error", "text"),
    [
        (_stalls, UpstreamTimeout, "p upstream stream stalled for 7s"),
        (_breaks, UpstreamUnavailable, "p upstream stream broke: ConnectionResetError: [Errno 104] reset by peer"),
    ],
)  # fmt: skip
async def test_a_stream_that_stalls_or_breaks_midway(
    body: object, error: type[GenrouteError], text: str
) -> None:
    transport = MockTransport(lambda r: HttpResponse(200, content=body()))  # type: ignore[operator]
    payloads: list[bytes] = []
    with pytest.raises(error) as info:
        async for payload in json_transport(transport).stream(URL, b"", {}, call()):
            payloads.append(payload)
    assert payloads == [b'{"a": 1}'] and info.value.message == text


@pytest.mark.parametrize("exc", [TimeoutError(), ConnectionRefusedError(111, "refused")])
async def test_a_stream_that_never_starts(exc: BaseException) -> None:
    transport = MockTransport(lambda r: _raise(exc))
    with pytest.raises((UpstreamTimeout, UpstreamUnavailable)):
        await collect(json_transport(transport).stream(URL, b"", {}, call()))


# -- model names in URLs --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "segment"),
    [
        ("gemini-2.5-flash", "gemini-2.5-flash"),
        ("a/../../b", "a%2F..%2F..%2Fb"),
        ("x?key=1#frag", "x%3Fkey%3D1%23frag"),
        ("%2F..", "%252F.."),
        ("my model", "my%20model"),
    ],
)
def test_a_name_is_one_path_segment(name: str, segment: str) -> None:
    assert path_segment(name) == segment


@pytest.mark.parametrize("name", [".", ".."])
def test_dot_segments_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequest):
        path_segment(name)


# -- Http11Transport under JsonTransport against aiohttp's server -------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[BaseTestServer]:
    release = asyncio.Event()

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response({"ua": request.headers.get("user-agent"), "body": body.decode()})

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for i in range(3):
            await response.write(f"data: {i}\n\n".encode())
        if request.query.get("hang"):
            await release.wait()
        return response

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_post("/events", events)
    app.router.add_post("/hang", hang)
    async with TestServer(app) as test_server:
        yield test_server
        release.set()


async def test_http11_transport_sends_with_our_user_agent_and_pools_per_origin(
    server: BaseTestServer,
) -> None:
    transport = Http11Transport()
    http = JsonTransport(transport, provider="p", timeout=5, stream_timeout=5, map_error=mapped)
    url = str(server.make_url("/echo"))
    assert await http.post(url, b"hello", {}, call()) == (
        b'{"ua": "' + USER_AGENT.encode() + b'", "body": "hello"}'
    )
    await http.post(url, b"again", {}, call())
    assert len(transport._open) == 1  # one pooled connection served both
    await transport.aclose()
    assert not transport._open
    await transport.aclose()


async def test_http11_transport_streams_and_maps_failures(server: BaseTestServer) -> None:
    transport = Http11Transport()
    http = JsonTransport(transport, provider="p", timeout=5, stream_timeout=5, map_error=mapped)
    try:
        events = await collect(http.stream(str(server.make_url("/events")), b"", {}, call()))
        assert events == [b"0", b"1", b"2"]
        quick = JsonTransport(
            transport, provider="p", timeout=0.02, stream_timeout=0.02, map_error=mapped
        )
        with pytest.raises(UpstreamTimeout):
            await quick.post(str(server.make_url("/hang")), b"", {}, call())
        stalled: list[bytes] = []
        with pytest.raises(UpstreamTimeout, match="stalled"):
            async for payload in quick.stream(
                str(server.make_url("/events?hang=1")), b"", {}, call()
            ):
                stalled.append(payload)
        assert stalled == [b"0", b"1", b"2"]
        with pytest.raises(UpstreamError, match="mapped 404"):
            await http.post(str(server.make_url("/nowhere")), b"", {}, call())
    finally:
        await transport.aclose()


def free_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_http11_transport_turns_refused_connections_into_connection_errors() -> None:
    transport = Http11Transport()
    try:
        with pytest.raises(ConnectionError):
            await transport.send(HttpRequest("POST", f"http://127.0.0.1:{free_port()}/x"))
    finally:
        await transport.aclose()
