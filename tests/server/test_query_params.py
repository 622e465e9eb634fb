"""The query string, parsed once a request: last value wins, read-only, and the key in
it found only where it may be taken from there."""

from __future__ import annotations

from typing import Any

import pytest

from genroute.server.auth import presented_key, query_params


def _scope(query: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http", "query_string": query, "headers": headers or []}


def test_last_value_wins_and_the_parse_is_kept_for_the_request() -> None:
    scope = _scope(b"alt=json&key=sk-a&alt=sse&empty=")
    query = query_params(scope)
    assert dict(query) == {"alt": "sse", "key": "sk-a"}
    assert query_params(scope) is query  # parsed once a request
    assert query_params(_scope(b"alt=json")) == {"alt": "json"}  # another request, its own
    with pytest.raises(TypeError):
        query["alt"] = "json"  # type: ignore[index]


def test_no_query() -> None:
    for scope in (_scope(b""), {"type": "http", "headers": []}):
        assert dict(query_params(scope)) == {}


def test_the_key_from_the_query_only_when_asked_and_after_the_header() -> None:
    scope = _scope(b"key=%20sk-query%20")
    assert presented_key(scope, query_params(scope)) == "sk-query"
    assert presented_key(scope, None) is None
    headed = _scope(b"key=sk-query", [(b"x-goog-api-key", b"sk-header")])
    assert presented_key(headed, query_params(headed)) == "sk-header"
