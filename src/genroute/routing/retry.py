"""How long to wait before retrying a deployment.

Whether a failure is retried, cools its deployment down or falls back to another group is
decided by its `genroute.errors.FailureReason` (see the table there); this module only
computes the backoff.
"""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


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
    step = base * 2.0 ** (retry - 1)
    delay: float = step / 2 + rng.uniform(0, step / 2)
    delay = max(delay, minimum, hinted or 0.0)
    return min(delay, cap)
