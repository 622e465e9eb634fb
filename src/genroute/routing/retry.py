"""What to do after a failed attempt: retry, cool the deployment down, fall back, or stop.

kind             retried   cools down   falls back through
CLIENT           no        no           (nothing: the request itself is wrong)
CONTEXT_WINDOW   no        no           context_window_fallbacks
CONTENT_POLICY   no        no           content_policy_fallbacks
RATE_LIMIT       yes       yes          fallbacks / default_fallbacks
TRANSIENT        yes       yes          fallbacks / default_fallbacks   (5xx, 408, timeout,
                                                                         connection errors)
DEPLOYMENT       no        yes          fallbacks / default_fallbacks   (upstream 401/403/404:
                                                                         our key or model)
NO_DEPLOYMENT    no        no           fallbacks / default_fallbacks   (all cooling or capped)
"""

from __future__ import annotations

import enum
import random
import re

from genroute.errors import GenrouteError, RateLimited, UpstreamError


class FailureKind(enum.Enum):
    """How a failed attempt is handled; see the module docstring."""

    CLIENT = "client"
    CONTEXT_WINDOW = "context_window"
    CONTENT_POLICY = "content_policy"
    RATE_LIMIT = "rate_limit"
    TRANSIENT = "transient"
    DEPLOYMENT = "deployment"
    NO_DEPLOYMENT = "no_deployment"

    @property
    def retryable(self) -> bool:
        """Worth another attempt in the same group."""
        return self in (FailureKind.RATE_LIMIT, FailureKind.TRANSIENT)

    @property
    def cools_down(self) -> bool:
        """Counts towards the deployment's cooldown."""
        return self in (FailureKind.RATE_LIMIT, FailureKind.TRANSIENT, FailureKind.DEPLOYMENT)

    @property
    def falls_back(self) -> bool:
        """Worth trying another group."""
        return self is not FailureKind.CLIENT


class GroupUnavailable(GenrouteError):
    """Every deployment of a group is cooling down after failures (503 UNAVAILABLE)."""

    code = 503
    status = "UNAVAILABLE"


class GroupRateLimited(RateLimited):
    """Every deployment of a group is at its rpm/tpm cap or cooling after rate limits (429)."""


_CONTEXT_WINDOW = re.compile(
    r"context[ _-]?(length|window)|maximum context|too many tokens|input token count"
    r"|exceeds the maximum number of tokens|prompt is too long|reduce the length",
    re.IGNORECASE,
)
_CONTENT_POLICY = re.compile(
    r"content[ _-]?(policy|filter|management)|responsible ai|safety system|flagged",
    re.IGNORECASE,
)


def classify(error: GenrouteError) -> FailureKind:
    """The kind of a failure, from its code, class and message."""
    if isinstance(error, GroupUnavailable | GroupRateLimited):
        return FailureKind.NO_DEPLOYMENT
    code = error.code
    if code == 429:
        return FailureKind.RATE_LIMIT
    if code >= 500 or code == 408:
        return FailureKind.TRANSIENT
    if code == 499:
        return FailureKind.CLIENT
    if _CONTEXT_WINDOW.search(error.message):
        return FailureKind.CONTEXT_WINDOW
    if _CONTENT_POLICY.search(error.message):
        return FailureKind.CONTENT_POLICY
    if isinstance(error, UpstreamError) and code in (401, 403, 404):
        return FailureKind.DEPLOYMENT
    return FailureKind.CLIENT


def backoff_delay(
    retry: int,
    *,
    base: float,
    cap: float,
    minimum: float,
    hinted: float | None,
    rng: random.Random,
) -> float | None:
    """Seconds to wait before retry number `retry` (1, 2, ...) on the same deployment.

    Exponential (`base`·2^(retry-1)) with equal jitter, at least `minimum` and the
    upstream's Retry-After/RetryInfo, at most `cap`. None when the upstream asks for more
    than `cap`: then retrying this deployment now is pointless.
    """
    if hinted is not None and hinted > cap:
        return None
    step = base * 2 ** (retry - 1)
    delay = step / 2 + rng.uniform(0, step / 2)
    delay = max(delay, minimum, hinted or 0.0)
    return min(delay, cap)
