"""Errors map to Google's JSON, with RetryInfo for rate limits."""

from __future__ import annotations

from genroute.errors import (
    GenrouteError,
    InvalidRequest,
    RateLimited,
    UpstreamError,
    parse_retry_after,
    parse_retry_delay,
    retry_delay_text,
    status_for,
)


def test_body_shape() -> None:
    body = InvalidRequest("contents: required").to_body()
    assert body == {
        "error": {"code": 400, "message": "contents: required", "status": "INVALID_ARGUMENT"}
    }


def test_rate_limit_carries_retry_info_and_header() -> None:
    err = RateLimited("slow down", retry_after=7)
    body = err.to_body()["error"]
    assert body["status"] == "RESOURCE_EXHAUSTED"
    assert body["details"] == [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}
    ]
    assert err.headers() == {"retry-after": "7"}


def test_existing_retry_info_is_not_duplicated() -> None:
    detail = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "47s"}
    err = UpstreamError("quota", code=429, details=[detail], retry_after=47)
    assert err.to_body()["error"]["details"] == [detail]
    assert err.status == "RESOURCE_EXHAUSTED"


def test_code_gives_status() -> None:
    assert GenrouteError("x", code=503).status == "UNAVAILABLE"
    assert status_for(504) == "DEADLINE_EXCEEDED"
    assert status_for(418) == "FAILED_PRECONDITION"
    assert status_for(599) == "INTERNAL"


def test_retry_parsing() -> None:
    assert parse_retry_after("12") == 12
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after(None) is None
    assert (
        parse_retry_delay(
            [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]
        )
        == 1.5
    )
    assert parse_retry_delay([{"@type": "other"}]) is None
    assert retry_delay_text(0.25) == "0.25s"
