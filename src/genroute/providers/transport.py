"""The HTTP seam every provider sends through, and the two transports behind it.

    Transport           protocol: `send(HttpRequest) -> HttpResponse`, `aclose()`
    ├── Http11Transport     the network: pooled HTTP/1.1 connections (providers/http11.py)
    └── MockTransport       in memory: a handler answers each request (tests)
    JsonTransport       what providers use: a JSON POST, or an SSE stream of payloads,
                        over any Transport; observed per request, errors mapped

A transport raises `TimeoutError` when a timeout elapses and `ConnectionError` (an
`OSError`) when the connection cannot be made or breaks; `JsonTransport` turns those into
`UpstreamTimeout` / `UpstreamUnavailable`, and a reply other than 200 into the provider's
own `map_error(status, body, headers)`. The caller closes each response (`aclose()`, or
`async with`); closing one that was not read to its end drops its connection.

Providers read a stream inside `reading(...)`: an error they raise while decoding a payload
(a mid-stream error event, a malformed event) is thrown into the stream, so that the
upstream observer records that error rather than the stream being closed under it.
"""

from __future__ import annotations

import inspect
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from contextlib import (
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
    suppress,
)
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

from multidict import CIMultiDict, CIMultiDictProxy

from genroute._version import __version__
from genroute.errors import GenrouteError, InvalidRequest, UpstreamTimeout, UpstreamUnavailable
from genroute.sse import SSEDecoder

if TYPE_CHECKING:
    from genroute.call import Call
    from genroute.providers.base import DeploymentSpec

__all__ = [
    "USER_AGENT",
    "Body",
    "ErrorMapper",
    "Handler",
    "HttpRequest",
    "HttpResponse",
    "JsonTransport",
    "MockTransport",
    "Timeout",
    "Transport",
    "path_segment",
    "reading",
]

USER_AGENT = f"genroute/{__version__}"

#: A response body: all of it, or its chunks as they arrive (sync or async).
Body = bytes | Iterable[bytes] | AsyncIterable[bytes]
#: A provider's error mapper: (HTTP status, body, headers) → the error to raise.
ErrorMapper = Callable[[int, bytes, Mapping[str, str]], GenrouteError]


@dataclass(frozen=True, slots=True)
class Timeout:
    """Seconds allowed: for the whole exchange, to connect, and between two reads."""

    total: float | None = None
    connect: float | None = None
    read: float | None = None


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One upstream HTTP request."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    timeout: Timeout = Timeout()


class HttpResponse:
    """An upstream reply: status and headers at once, the body read whole or as chunks.

    `content` is the body (bytes) or its chunks (an iterable or async iterable of bytes);
    `on_close` releases what the transport holds (the connection), once. A transport that
    can read a whole body faster than chunk by chunk passes that as `read_all`.
    """

    __slots__ = ("_closed", "_content", "_on_close", "_read_all", "headers", "status")

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str] | None = None,
        content: Body = b"",
        *,
        on_close: Callable[[], object] | None = None,
        read_all: Callable[[], Awaitable[bytes]] | None = None,
    ) -> None:
        self.status = status
        self.headers: Mapping[str, str] = (
            headers
            if isinstance(headers, CIMultiDictProxy | CIMultiDict)
            else CIMultiDictProxy(CIMultiDict(headers or {}))
        )
        self._content = content
        self._on_close = on_close
        self._read_all = read_all
        self._closed = False

    async def read(self) -> bytes:
        """The whole body."""
        if isinstance(self._content, bytes):
            return self._content
        if self._read_all is not None:
            return await self._read_all()
        return b"".join([chunk async for chunk in self.iter_chunks()])

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """The body in the pieces it arrives in (split anywhere, even inside an event). An
        async body is iterated as it is (no generator of ours around each chunk)."""
        content = self._content
        if isinstance(content, AsyncIterable):
            return aiter(content)
        return _iterate(content)

    async def aclose(self) -> None:
        """Release the response; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            result = self._on_close()
            if inspect.isawaitable(result):
                await result

    async def __aenter__(self) -> HttpResponse:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _iterate(content: bytes | Iterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(content, bytes):
        if content:
            yield content
    else:
        for chunk in content:
            yield chunk


class Transport(Protocol):
    """Sends HTTP requests upstream; raises TimeoutError or ConnectionError on failure."""

    async def send(self, request: HttpRequest) -> HttpResponse:
        """The response once its status and headers are in; the caller closes it."""
        ...

    async def aclose(self) -> None:
        """Release every connection; safe to call twice."""
        ...


def path_segment(name: str) -> str:
    """`name` (a model or deployment name) as one URL path segment: `/`, `?`, `#`, `%` and
    the rest escaped, so that no name can change the upstream path or query. `.` and `..`
    are refused: URL libraries resolve them even when escaped."""
    if name in (".", ".."):
        raise InvalidRequest(f"model {name!r}: not a model name")
    return quote(name, safe="")


# The network: genroute.providers.http11.Http11Transport.


# -- in memory ------------------------------------------------------------------------------

#: Answers one request in place of the network; may be async, may raise TimeoutError or
#: ConnectionError as a real transport would.
Handler = Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]


class MockTransport:
    """A transport that asks `handler` instead of the network; keeps every request sent."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[HttpRequest] = []
        self.closed = False

    async def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        response = self.handler(request)
        if inspect.isawaitable(response):
            response = await response
        return response

    async def aclose(self) -> None:
        self.closed = True


# -- what providers use ---------------------------------------------------------------------

_NO_HEADERS: AbstractContextManager[Mapping[str, str]] = nullcontext({})


def _describe(exc: OSError) -> str:
    if type(exc) is ConnectionError and str(exc):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class JsonTransport:
    """POSTs JSON bodies to one upstream over a Transport.

    When `call.upstream` is set, each request runs inside `call.upstream(url)` (a stream's
    for as long as it lasts) and carries the headers it yields (`traceparent`).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        provider: str,
        timeout: float,
        stream_timeout: float,
        map_error: ErrorMapper,
    ) -> None:
        self._transport = transport
        self._provider = provider
        self._map_error = map_error
        self._timeout_s = timeout
        self._stream_timeout_s = stream_timeout
        self._timeout = Timeout(total=timeout, connect=min(timeout, 30))
        self._stream_timeout = Timeout(connect=min(stream_timeout, 30), read=stream_timeout)

    @classmethod
    def for_deployment(
        cls, transport: Transport, spec: DeploymentSpec, *, provider: str, map_error: ErrorMapper
    ) -> JsonTransport:
        """A JsonTransport with the deployment's `timeout` and `stream_timeout`."""
        return cls(
            transport,
            provider=provider,
            timeout=spec.timeout,
            stream_timeout=spec.stream_timeout,
            map_error=map_error,
        )

    @contextmanager
    def _failures(self, timed_out: str, broke: str) -> Iterator[None]:
        """Timeouts and connection errors as genroute errors; mapped errors pass as they are."""
        try:
            yield
        except GenrouteError:
            raise
        except TimeoutError:
            raise UpstreamTimeout(
                f"{self._provider} {timed_out}", provider=self._provider
            ) from None
        except OSError as exc:
            raise UpstreamUnavailable(
                f"{self._provider} {broke}: {_describe(exc)}", provider=self._provider
            ) from None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], call: Call) -> bytes:
        """The body of a 200 reply; any other status raises the mapped error."""
        with call.upstream(url) if call.upstream is not None else _NO_HEADERS as extra:
            sent = {**headers, **extra} if extra else headers
            request = HttpRequest("POST", url, sent, body, self._timeout)
            with self._failures(
                f"upstream did not answer within {self._timeout_s:g}s", "upstream unreachable"
            ):
                async with await self._transport.send(request) as response:
                    data = await response.read()
            if response.status != 200:
                raise self._map_error(response.status, data, response.headers)
            return data

    async def stream(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        call: Call,
        *,
        done: bytes | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """The `data` payload of each SSE event, as the upstream sends them; with `done`
        (OpenAI's `[DONE]`), reading stops after the payload that says the stream is over."""
        with call.upstream(url) if call.upstream is not None else _NO_HEADERS as extra:
            sent = {**headers, **extra} if extra else headers
            request = HttpRequest("POST", url, sent, body, self._stream_timeout)
            with self._failures(
                f"upstream stream stalled for {self._stream_timeout_s:g}s",
                "upstream stream broke",
            ):
                async with await self._transport.send(request) as response:
                    if response.status != 200:
                        data = await response.read()
                        raise self._map_error(response.status, data, response.headers)
                    decoder = SSEDecoder()
                    async for chunk in response.iter_chunks():
                        for payload in decoder.feed(chunk):
                            yield payload
                            if done is not None and payload.strip() == done:
                                return
                    for payload in decoder.flush():
                        yield payload


@asynccontextmanager
async def reading(
    payloads: AsyncGenerator[bytes, None],
) -> AsyncIterator[AsyncGenerator[bytes, None]]:
    """Read a `JsonTransport.stream`: closed at the end whatever happens, and an error raised
    while reading it is first thrown into it, so the upstream observer sees that error."""
    try:
        yield payloads
    except Exception as exc:
        with suppress(Exception):  # the same error, back out of the stream
            await payloads.athrow(exc)
        raise
    finally:
        await payloads.aclose()
