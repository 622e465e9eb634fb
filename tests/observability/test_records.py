"""A call record's timestamp: UTC, ISO 8601 with milliseconds, right across seconds
(its whole second is formatted once a second and reused)."""

from __future__ import annotations

import time

import pytest

from genroute.observability.records import _iso


@pytest.mark.parametrize(
    "epoch",
    [0.0, 0.001, 59.999, 1767225600.0, 1767225600.5, 1767225600.999, 1767225601.0,
     1767225601.0005, 1767225599.25, 1767225600.123],
)  # fmt: skip
def test_iso_matches_strftime_whatever_came_before(epoch: float) -> None:
    millis = int(epoch * 1000)
    expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(millis // 1000))
    expected += f".{millis % 1000:03d}Z"
    for before in (epoch, epoch - 1, epoch + 1, 0.0):
        _iso(before)
        assert _iso(epoch) == expected


def test_iso_in_order_across_a_second() -> None:
    assert [_iso(1767225600.0 + i / 4) for i in range(6)] == [
        "2026-01-01T00:00:00.000Z",
        "2026-01-01T00:00:00.250Z",
        "2026-01-01T00:00:00.500Z",
        "2026-01-01T00:00:00.750Z",
        "2026-01-01T00:00:01.000Z",
        "2026-01-01T00:00:01.250Z",
    ]
