"""What genroute knows about one call, from the HTTP edge (or SDK) through the Router.

The edge fills in who is calling (key, team, end user); the Router fills in where the call
went (group, deployment, attempts, fallbacks) and when (start, first token). Hooks read it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from genroute.wire import UsageMetadata


def new_request_id() -> str:
    """A random 32-hex-digit id (not a secret: `random`, no system call per request)."""
    return f"{random.getrandbits(128):032x}"


@dataclass(slots=True)
class Attempt:
    """One try of a call on one deployment (perf_counter times); the Router appends these."""

    model_group: str
    deployment_id: str
    provider: str
    started: float
    ended: float | None = None
    error_code: int | None = None
    error_status: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        """True when this attempt served the call (or is still serving a stream)."""
        return self.error_code is None


@dataclass(slots=True)
class CallContext:
    """One call's identity, routing and timing; shared by hooks, logs and the spend ledger."""

    request_id: str = field(default_factory=new_request_id)
    operation: str = "generateContent"
    stream: bool = False
    # Who is calling (set by the edge or the SDK).
    key_hash: str | None = None
    key_alias: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    end_user: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Where the call went (set by the Router).
    model_group: str | None = None
    deployment_id: str | None = None
    provider: str | None = None
    provider_model: str | None = None
    attempts: int = 0
    fallbacks: list[str] = field(default_factory=list)  # groups tried after the first
    attempt_log: list[Attempt] = field(default_factory=list)
    # Set to [] by content logging (genroute.observability): the Router appends response text.
    response_text: list[str] | None = None
    # When (perf_counter seconds) and what came back.
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    finished_at: float | None = None
    upstream_seconds: float = 0.0
    usage: UsageMetadata | None = None
    finish_reason: str | None = None
    response_model: str | None = None
    cost: float | None = None
    cost_estimated: bool = False
    status_code: int = 200
    error_status: str | None = None
    error_message: str | None = None

    @property
    def latency(self) -> float | None:
        """Seconds from start to finish, once finished."""
        return None if self.finished_at is None else self.finished_at - self.started

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from start to the first streamed chunk."""
        return None if self.first_token_at is None else self.first_token_at - self.started
