"""One pooled HTTP client per upstream origin, shared by every deployment that uses it.

Sessions are created lazily inside the running event loop and closed together.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp

from genroute._version import __version__

USER_AGENT = f"genroute/{__version__}"


class HttpPool:
    """Keeps an `aiohttp.ClientSession` per scheme://host:port."""

    def __init__(self, *, limit_per_host: int = 0, keepalive_timeout: float = 60.0) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._limit_per_host = limit_per_host
        self._keepalive_timeout = keepalive_timeout
        self._lock = asyncio.Lock()

    def session(self, url: str) -> aiohttp.ClientSession:
        """The session for the origin of `url`, created on first use."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        session = self._sessions.get(origin)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,
                limit_per_host=self._limit_per_host,
                keepalive_timeout=self._keepalive_timeout,
                ttl_dns_cache=300,
                enable_cleanup_closed=False,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                headers={"user-agent": USER_AGENT},
                skip_auto_headers=("Accept-Encoding",),
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._sessions[origin] = session
        return session

    async def aclose(self) -> None:
        """Close every session; safe to call twice."""
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()
