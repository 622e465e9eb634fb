"""Retry budgets: a failing upstream gets fewer requests, not more.

Retries are allowed in a group only while the retries it made in the last
`retry_budget_window` seconds stay under `retry_budget_percent` of the calls it started in
that time, plus a floor of `retry_budget_min_retries` (so a quiet group can still retry
a transient failure). This is Finagle's and Envoy's retry budget, and what gRPC's retry
throttling does with tokens: when every call fails, each makes about
1 + percent/100 upstream requests instead of 1 + num_retries.

A fallback to a group that has lately answered more often than it failed is no retry: it
takes load off the failing upstream and puts none back. A fallback to a group that has
not answered yet, or fails as often as not, is: so a burst of calls cannot all fall back at
once onto groups that fail as well (their cooldowns start only once their failures are in).

A budget belongs to a configured group, or to a wildcard entry (`gemini-*`) for every
name it matches, so that distinct names cannot each get a floor of their own. Budgets are
per process, kept for at most `MAX_BUDGETS` groups (least recently used first out), and
counted in `BUCKETS` buckets per window: a budget costs a few hundred bytes whatever the
traffic.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from genroute.routing.state import Clock

__all__ = ["BUCKETS", "MAX_BUDGETS", "RetryBudget", "RetryBudgets"]

BUCKETS = 10
MAX_BUDGETS = 4096


@dataclass(slots=True)
class RetryBudget:
    """One group's calls and retries over the last window, in `BUCKETS` buckets."""

    stamps: list[int] = field(default_factory=lambda: [-1] * BUCKETS)
    calls: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    retries: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    answered: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    failed: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    def slot(self, bucket: int) -> int:
        """The index of `bucket`'s counts (emptied if they were an older bucket's)."""
        slot = bucket % BUCKETS
        if self.stamps[slot] != bucket:
            self.stamps[slot] = bucket
            self.calls[slot] = self.retries[slot] = self.answered[slot] = self.failed[slot] = 0
        return slot

    def totals(self, bucket: int, *counts: list[int]) -> list[int]:
        """The sums of `counts` over the window ending with `bucket`."""
        slots = [s for s in range(BUCKETS) if bucket - BUCKETS < self.stamps[s] <= bucket]
        return [sum(count[s] for s in slots) for count in counts]


class RetryBudgets:
    """The retry budgets of every group, on one clock."""

    def __init__(
        self,
        *,
        percent: float,
        min_retries: int,
        window: float,
        clock: Clock,
        enabled: bool = True,
        max_budgets: int = MAX_BUDGETS,
    ) -> None:
        self.ratio = percent / 100.0
        self.min_retries = min_retries
        self.enabled = enabled
        self._bucket_seconds = window / BUCKETS
        self._clock = clock
        self._budgets: OrderedDict[str, RetryBudget] = OrderedDict()
        self._max = max(1, max_budgets)

    def _budget(self, key: str) -> RetryBudget:
        budget = self._budgets.get(key)
        if budget is None:
            budget = self._budgets[key] = RetryBudget()
            if len(self._budgets) > self._max:
                self._budgets.popitem(last=False)
        else:
            self._budgets.move_to_end(key)
        return budget

    def _bucket(self) -> int:
        return int(self._clock() // self._bucket_seconds)

    def started(self, key: str) -> None:
        """A call started its first attempt in the group `key`."""
        if self.enabled:
            budget = self._budget(key)
            budget.calls[budget.slot(self._bucket())] += 1

    def try_retry(self, key: str) -> bool:
        """Whether the group `key` may retry now; if so, the retry is counted."""
        if not self.enabled:
            return True
        budget = self._budget(key)
        bucket = self._bucket()
        calls, retries = budget.totals(bucket, budget.calls, budget.retries)
        if retries >= self.ratio * calls + self.min_retries:
            return False
        budget.retries[budget.slot(bucket)] += 1
        return True

    def outcome(self, key: str, answered: bool) -> None:
        """An attempt in the group `key` answered, or failed for the upstream's reasons."""
        if self.enabled:
            budget = self._budget(key)
            counts = budget.answered if answered else budget.failed
            counts[budget.slot(self._bucket())] += 1

    def healthy(self, key: str) -> bool:
        """Whether the group `key` answered lately, more often than it failed."""
        if not self.enabled:
            return True
        budget = self._budgets.get(key)
        if budget is None:
            return False
        answered, failed = budget.totals(self._bucket(), budget.answered, budget.failed)
        return answered > failed

    def __len__(self) -> int:
        return len(self._budgets)
