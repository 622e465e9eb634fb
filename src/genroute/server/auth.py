"""Finding the caller's key and checking it against the master key in constant time.

The key may come as `x-goog-api-key` (what the Google SDKs send), `?key=`,
`Authorization: Bearer` or `x-litellm-api-key`. On the management API `?key=` names the key
being looked up (as in LiteLLM), so there the caller's key comes from the headers only.
Keys are compared as SHA-256 digests with `hmac.compare_digest` and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import parse_qsl

from genroute.errors import PermissionDenied, Unauthenticated
from genroute.server.asgi import Scope, header

__all__ = ["MasterKeyAuth", "digest", "presented_key", "query_params"]


def digest(key: str) -> bytes:
    """The SHA-256 of a key, the only form in which genroute keeps one."""
    return hashlib.sha256(key.encode("utf-8")).digest()


_NO_QUERY: Mapping[str, str] = MappingProxyType({})


def query_params(scope: Scope) -> Mapping[str, str]:
    """The query string as a read-only mapping (last value wins), parsed once a request
    (kept in the scope)."""
    raw = scope.get("query_string")
    if not raw:
        return _NO_QUERY
    query: Mapping[str, str] | None = scope.get("genroute.query")
    if query is None:
        query = scope["genroute.query"] = MappingProxyType(dict(parse_qsl(raw.decode("latin-1"))))
    return query


def presented_key(scope: Scope, query: Mapping[str, str] | None) -> str | None:
    """The key the client sent: `x-goog-api-key`, else `?key=` (when `query` is given),
    else `Authorization: Bearer`, else `x-litellm-api-key`."""
    value = header(scope, b"x-goog-api-key")
    if value:
        return value.decode("latin-1").strip()
    if query is not None and query.get("key"):
        return query["key"].strip()
    auth = header(scope, b"authorization")
    if auth and auth[:7].lower() == b"bearer ":
        return auth[7:].decode("latin-1").strip()
    value = header(scope, b"x-litellm-api-key")
    if value:
        return value.decode("latin-1").strip()
    return None


class MasterKeyAuth:
    """Refuses every request that does not carry the configured master key."""

    def __init__(self, master_key: str | None) -> None:
        self._digest = digest(master_key) if master_key else None

    @property
    def enabled(self) -> bool:
        """Whether a key is required at all."""
        return self._digest is not None

    @staticmethod
    def key_hash(key: str | None) -> str | None:
        """The hex SHA-256 of a presented key, the only form logs and ledgers may hold."""
        return digest(key).hex() if key else None

    def check(self, key: str | None) -> None:
        """Raise PermissionDenied for no key and Unauthenticated for a wrong one."""
        if self._digest is None:
            return
        if not key:
            raise PermissionDenied(
                "Method doesn't allow unregistered callers: send your genroute key as the "
                "x-goog-api-key header, ?key= or Authorization: Bearer",
                details=[_error_info("API_KEY_MISSING")],
            )
        if not hmac.compare_digest(digest(key), self._digest):
            raise Unauthenticated(
                "API key not valid. Please pass a valid API key.",
                details=[_error_info("API_KEY_INVALID")],
            )


def _error_info(reason: str) -> dict[str, object]:
    return {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": reason,
        "domain": "genroute",
    }
