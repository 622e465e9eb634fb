"""The HTTP exchanges of a Bedrock deployment, over the shared `Transport`.

Each request is signed (auth.py) just before it goes out, over the exact URL, headers and
body sent; the upstream observer (`call.upstream`) wraps it as for every provider and adds
its `traceparent`, which is not signed (SigV4 leaves it out too). Like `JsonTransport`:
timeouts become UpstreamTimeout, broken connections UpstreamUnavailable, and a status
other than 200 the mapped AWS error (errors.py). Unlike it, replies keep their headers (the
request id is the response id), and a stream is AWS's binary event stream
(eventstream.py), read as it arrives: `events` yields each event's type and payload, and
raises the mapped error for an `exception` or `error` message inside the stream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import (
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
    nullcontext,
    suppress,
)
from typing import TYPE_CHECKING, TypeVar

from genroute.errors import GenrouteError, UpstreamTimeout, UpstreamUnavailable
from genroute.providers.bedrock.errors import PROVIDER, map_error, stream_error
from genroute.providers.bedrock.eventstream import EventStreamReader
from genroute.providers.transport import HttpRequest, Timeout, Transport

if TYPE_CHECKING:
    from genroute.call import Call
    from genroute.providers.base import DeploymentSpec
    from genroute.providers.bedrock.auth import AwsAuth

__all__ = ["BedrockHttp", "Event", "reading"]

#: One event of a stream: its `:event-type` and JSON payload.
Event = tuple[str, bytes]
T = TypeVar("T")
_NO_HEADERS: AbstractContextManager[Mapping[str, str]] = nullcontext({})


class BedrockHttp:
    """Signed POSTs of one deployment; see the module docstring."""

    def __init__(self, transport: Transport, spec: DeploymentSpec, auth: AwsAuth) -> None:
        self._transport = transport
        self._auth = auth
        self._timeout_s = spec.timeout
        self._stream_timeout_s = spec.stream_timeout
        self._timeout = Timeout(total=spec.timeout, connect=min(spec.timeout, 30))
        stream = spec.stream_timeout
        self._stream_timeout = Timeout(connect=min(stream, 30), read=stream)

    @contextmanager
    def _failures(self, timed_out: str, broke: str) -> Iterator[None]:
        try:
            yield
        except GenrouteError:
            raise
        except TimeoutError:
            raise UpstreamTimeout(f"{PROVIDER} {timed_out}", provider=PROVIDER) from None
        except OSError as exc:
            detail = str(exc) if type(exc) is ConnectionError and str(exc) else repr(exc)
            raise UpstreamUnavailable(f"{PROVIDER} {broke}: {detail}", provider=PROVIDER) from None

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], call: Call
    ) -> tuple[bytes, Mapping[str, str]]:
        """The body and headers of a 200 reply; any other status raises the mapped error."""
        signed = await self._auth.sign(url, body, headers)
        with call.upstream(url) if call.upstream is not None else _NO_HEADERS as extra:
            request = HttpRequest("POST", url, {**signed, **extra}, body, self._timeout)
            with self._failures(
                f"upstream did not answer within {self._timeout_s:g}s", "upstream unreachable"
            ):
                async with await self._transport.send(request) as response:
                    data = await response.read()
            if response.status != 200:
                raise map_error(response.status, data, response.headers)
            return data, response.headers

    async def events(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        call: Call,
        started: list[str | None] | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Each event of a 200 event stream as it arrives; `started` receives the request
        id once the reply's headers are in."""
        signed = await self._auth.sign(url, body, headers)
        with call.upstream(url) if call.upstream is not None else _NO_HEADERS as extra:
            request = HttpRequest("POST", url, {**signed, **extra}, body, self._stream_timeout)
            with self._failures(
                f"upstream stream stalled for {self._stream_timeout_s:g}s",
                "upstream stream broke",
            ):
                async with await self._transport.send(request) as response:
                    if response.status != 200:
                        data = await response.read()
                        raise map_error(response.status, data, response.headers)
                    request_id = response.headers.get("x-amzn-RequestId")
                    if started is not None:
                        started.append(request_id)
                    reader = EventStreamReader(PROVIDER)
                    async for chunk in response.iter_chunks():
                        for message in reader.feed(chunk):
                            kind = message.message_type
                            if kind in ("exception", "error"):
                                raise stream_error(
                                    kind, message.headers, message.payload, request_id
                                )
                            if kind == "event":
                                yield message.event_type, message.payload
                    reader.finish()


@asynccontextmanager
async def reading(events: AsyncGenerator[T, None]) -> AsyncIterator[AsyncGenerator[T, None]]:
    """Read `BedrockHttp.events`: closed at the end whatever happens, and an error raised
    while reading it is first thrown into it, so the upstream observer sees that error."""
    try:
        yield events
    except Exception as exc:
        with suppress(Exception):  # the same error, back out of the stream
            await events.athrow(exc)
        raise
    finally:
        await events.aclose()
