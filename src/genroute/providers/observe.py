"""The seam observability uses around each upstream HTTP request of `JsonTransport`.

`genroute.observability` sets `upstream_observer` for the duration of a call; the two
decorators on `JsonTransport.post` / `.stream` then run each request inside the observer
(timing, one trace span per attempt) and add the headers it yields (`traceparent`). When
the variable is unset they cost one ContextVar lookup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, aclosing
from contextvars import ContextVar
from functools import wraps
from typing import Any

UpstreamObserver = Callable[[str], AbstractContextManager[Mapping[str, str]]]

#: Set per call by genroute.observability: wraps each upstream request (timing, a trace span)
#: and may add headers to it (`traceparent`). None, and free, when observability is off.
upstream_observer: ContextVar[UpstreamObserver | None] = ContextVar(
    "genroute_upstream_observer", default=None
)


def observed_post(
    post: Callable[[Any, str, bytes, Mapping[str, str]], Awaitable[bytes]],
) -> Callable[[Any, str, bytes, Mapping[str, str]], Awaitable[bytes]]:
    @wraps(post)
    async def wrapper(self: Any, url: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        observer = upstream_observer.get()
        if observer is None:
            return await post(self, url, body, headers)
        with observer(url) as extra:
            return await post(self, url, body, {**headers, **extra} if extra else headers)

    return wrapper


def observed_stream(
    stream: Callable[[Any, str, bytes, Mapping[str, str]], AsyncIterator[bytes]],
) -> Callable[[Any, str, bytes, Mapping[str, str]], AsyncIterator[bytes]]:
    @wraps(stream)
    def wrapper(
        self: Any, url: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[bytes]:
        observer = upstream_observer.get()
        if observer is None:
            return stream(self, url, body, headers)
        return _observe_stream(observer, stream, self, url, body, headers)

    return wrapper


async def _observe_stream(
    observer: UpstreamObserver,
    stream: Callable[[Any, str, bytes, Mapping[str, str]], AsyncIterator[bytes]],
    transport: Any,
    url: str,
    body: bytes,
    headers: Mapping[str, str],
) -> AsyncIterator[bytes]:
    with observer(url) as extra:
        merged = {**headers, **extra} if extra else headers
        async with aclosing(stream(transport, url, body, merged)) as payloads:  # type: ignore[type-var]
            async for payload in payloads:
                yield payload
