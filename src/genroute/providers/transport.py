"""The HTTP seam every provider uses: one POST for a JSON reply, one for an SSE stream.

Connection failures, timeouts and non-200 replies become `genroute.errors` exceptions;
the provider's own `map_error` turns its error bodies into Google-shaped ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import contextmanager

import aiohttp

from genroute.errors import GenrouteError, UpstreamTimeout, UpstreamUnavailable
from genroute.http_pool import HttpPool
from genroute.providers.base import DeploymentSpec
from genroute.providers.observe import observed_post, observed_stream
from genroute.sse import SSEDecoder

ErrorMapper = Callable[[int, bytes, Mapping[str, str]], GenrouteError]


class JsonTransport:
    """POSTs JSON bodies to one upstream through the shared pool."""

    def __init__(
        self,
        http: HttpPool,
        *,
        provider: str,
        timeout: float,
        stream_timeout: float,
        map_error: ErrorMapper,
    ) -> None:
        self._http = http
        self._provider = provider
        self._map_error = map_error
        self._timeout_s = timeout
        self._stream_timeout_s = stream_timeout
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 30))
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=min(stream_timeout, 30), sock_read=stream_timeout
        )

    @classmethod
    def for_deployment(
        cls, http: HttpPool, spec: DeploymentSpec, *, provider: str, map_error: ErrorMapper
    ) -> JsonTransport:
        """A transport with the deployment's `timeout` and `stream_timeout`."""
        return cls(
            http,
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
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(
                f"{self._provider} {broke}: {type(exc).__name__}: {exc}", provider=self._provider
            ) from None

    @observed_post
    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        """The body of a 200 reply; any other status raises the mapped error."""
        session = self._http.session(url)
        with self._failures(
            f"upstream did not answer within {self._timeout_s:g}s", "upstream unreachable"
        ):
            async with session.post(url, data=body, headers=headers, timeout=self._timeout) as resp:
                data = await resp.read()
                if resp.status != 200:
                    raise self._map_error(resp.status, data, resp.headers)
                return data

    @observed_stream
    async def stream(
        self, url: str, body: bytes, headers: Mapping[str, str]
    ) -> AsyncIterator[bytes]:
        """The `data` payload of each SSE event, as the upstream sends them."""
        session = self._http.session(url)
        with self._failures(
            f"upstream stream stalled for {self._stream_timeout_s:g}s", "upstream stream broke"
        ):
            async with session.post(
                url, data=body, headers=headers, timeout=self._stream_timeout
            ) as resp:
                if resp.status != 200:
                    raise self._map_error(resp.status, await resp.read(), resp.headers)
                decoder = SSEDecoder()
                async for chunk in resp.content.iter_any():
                    for payload in decoder.feed(chunk):
                        yield payload
                for payload in decoder.flush():
                    yield payload
