"""Whether a dependency governance needs (the database, Redis) is up, and when to try it
again after it failed.

A `Dependency` starts up. A failure marks it down and sets when the next try may go out
(backoff from `retry_after` doubling to `max_retry`); until then callers use what they
have without waiting on it (`should_try` is False): a cached row, local limits. One
success marks it up again. Each change is logged once, not once per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["Dependency"]

log = logging.getLogger("genroute.governance")


class Dependency:
    """Up/down state of one dependency (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        retry_after: float = 0.25,
        max_retry: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        fallback: str = "",
    ) -> None:
        self.name = name
        self.retry_after = retry_after
        self.max_retry = max_retry
        self.clock = clock
        self.fallback = fallback  # what is used meanwhile, for the log line
        self.up = True
        self.down_since: float | None = None
        self.error: str | None = None
        self.failures = 0  # failed operations since start
        self.outages = 0  # times it went down since start
        self._delay = retry_after
        self._next_try = 0.0

    def should_try(self) -> bool:
        """Whether to call it now: it is up, or the next try after a failure is due."""
        return self.up or self.clock() >= self._next_try

    def failed(self, exc: BaseException) -> None:
        """An operation on it failed because it is unreachable, timed out or refused."""
        self.failures += 1
        self.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        now = self.clock()
        if self.up:
            self.up = False
            self.down_since = now
            self.outages += 1
            self._delay = self.retry_after
            log.warning(
                "%s is unavailable (%s)%s; trying again every %g-%gs",
                self.name, self.error, f"; using {self.fallback} meanwhile" if self.fallback else "",
                self.retry_after, self.max_retry,
            )  # fmt: skip
        else:
            self._delay = min(self._delay * 2, self.max_retry)
        self._next_try = now + self._delay

    def succeeded(self) -> None:
        """An operation on it worked."""
        if not self.up:
            down = self.clock() - (self.down_since or self.clock())
            log.warning("%s is available again (after %.1fs)", self.name, down)
        self.up = True
        self.down_since = None
        self.error = None
        self._delay = self.retry_after

    def status(self) -> dict[str, object]:
        """JSON-ready state for a readiness answer."""
        state: dict[str, object] = {"up": self.up}
        if not self.up:
            state["down_for_seconds"] = round(self.clock() - (self.down_since or 0.0), 3)
            state["error"] = self.error
        return state
