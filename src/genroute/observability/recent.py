"""The last calls this process served, in full, for the admin UI's call detail.

The spend ledger keeps every call of every instance and how it was routed (its attempts,
fallbacks and trace id: `genroute.store.routing`), but never its content. `RecentCalls`
keeps the full record of the last `size` calls of this process, in memory (a bounded
deque: its memory does not grow with traffic): the management API's `GET /request/info`
adds their content, when `observability.logs.include_content` is on, and shows a call
whose ledger row is not written yet.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from genroute.call import Attempt
from genroute.observability.records import CallRecord

__all__ = ["DEFAULT_RECENT_CALLS", "RecentCalls", "attempt_summary"]

DEFAULT_RECENT_CALLS = 1000


def attempt_summary(attempt: Attempt) -> dict[str, Any]:
    """One routing attempt as plain data (its duration in ms, None while unfinished)."""
    ended = attempt.ended
    return {
        "model_group": attempt.model_group,
        "deployment": attempt.deployment_id,
        "provider": attempt.provider,
        "ok": attempt.ok,
        "error_code": attempt.error_code,
        "error_status": attempt.error_status,
        "error_message": attempt.error_message,
        "duration_ms": None if ended is None else round((ended - attempt.started) * 1000, 1),
    }


class RecentCalls:
    """The records of the last `size` calls, with their routing attempts."""

    def __init__(self, size: int = DEFAULT_RECENT_CALLS, *, content_logged: bool = False) -> None:
        self._calls: deque[tuple[CallRecord, list[Attempt]]] = deque(maxlen=max(1, size))
        self.content_logged = content_logged

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, record: CallRecord, attempts: list[Attempt]) -> None:
        """Keep a finished call (the oldest one kept is dropped when full). Nothing is
        copied here, on the call's path: `find` makes the plain data."""
        self._calls.append((record, attempts))

    def find(self, request_id: str) -> list[dict[str, Any]]:
        """The calls kept with this request id, newest first, as plain data (the record's
        fields and `attempt_log`)."""
        found = []
        for record, attempts in reversed(self._calls):
            if record.request_id == request_id:
                data = record.to_dict()
                data["attempt_log"] = [attempt_summary(a) for a in attempts]
                found.append(data)
        return found
