"""Hooks around every Router call: checks before, accounting after.

A hook may refuse a call in `before_call` by raising a `GenrouteError` (a budget or rate
limit, say). `after_call` runs once per call when it has finished (a stream: when it ended,
was cut off, or failed) and must not raise; slow work belongs on a queue of its own.
"""

from __future__ import annotations

import logging
from typing import Protocol

from genroute.context import CallContext
from genroute.errors import GenrouteError
from genroute.wire import WireModel

log = logging.getLogger("genroute.hooks")


class CallHook(Protocol):
    """What the Router calls around each generate/stream call."""

    async def before_call(self, ctx: CallContext, request: WireModel) -> None:
        """Refuse the call by raising; otherwise return."""

    async def after_call(self, ctx: CallContext, error: GenrouteError | None) -> None:
        """Account for a finished call (success when `error` is None)."""


async def run_before(hooks: list[CallHook], ctx: CallContext, request: WireModel) -> None:
    """Every hook's check, in order; the first refusal wins."""
    for hook in hooks:
        await hook.before_call(ctx, request)


async def run_after(hooks: list[CallHook], ctx: CallContext, error: GenrouteError | None) -> None:
    """Every hook's accounting; a failing hook is logged and never fails the call."""
    for hook in hooks:
        try:
            await hook.after_call(ctx, error)
        except Exception:
            log.exception(
                "hook %s failed in after_call for request %s", type(hook).__name__, ctx.request_id
            )
