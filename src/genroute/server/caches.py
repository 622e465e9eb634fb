"""The cachedContents API at the HTTP edge, as google-genai's `client.caches` calls it.

    POST   {prefix}/{v}/cachedContents          {model, contents?, systemInstruction?,
                                                tools?, toolConfig?, ttl | expireTime,
                                                displayName?} → CachedContent
    GET    {prefix}/{v}/cachedContents          ?pageSize (≤ 100) &pageToken
    GET    {prefix}/{v}/cachedContents/{id}     CachedContent
    PATCH  {prefix}/{v}/cachedContents/{id}     {ttl | expireTime} → CachedContent
    DELETE {prefix}/{v}/cachedContents/{id}     {}

A new cached content is counted by its model through the pipeline (a governed
countTokens call of the caller's) and refused under Gemini's minimum size. The caller was
authenticated by the app; the cache service checks ownership.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from genroute.call import Call, Caller, Operation
from genroute.errors import GenrouteError, InvalidRequest, NotFound
from genroute.pipeline import Pipeline
from genroute.resources import CachedContentBody, Resources, cache_json
from genroute.server import asgi
from genroute.server.asgi import Receive, Scope, Send
from genroute.server.auth import query_params
from genroute.wire import CountTokensRequest, GenerateContentRequest, format_validation_error

__all__ = ["CacheRoute", "CachesAPI", "match_caches_path"]

_PATH = re.compile(
    r"^(?P<prefix>.*?)/(?P<v>v1|v1beta|v1alpha)/cachedContents(?:/(?P<id>[^/:]+))?/?$"
)


@dataclass(frozen=True, slots=True)
class CacheRoute:
    """What a cachedContents path names."""

    cache_id: str | None


def match_caches_path(path: str) -> CacheRoute | None:
    """The cachedContents route a path names, or None."""
    if "/cachedContents" not in path:  # the cheap check every model call makes
        return None
    found = _PATH.match(path)
    return CacheRoute(found["id"]) if found is not None else None


class CachesAPI:
    """Serves the cachedContents routes (see the module docstring)."""

    def __init__(
        self, pipeline: Pipeline, resources: Resources, body_timeout: float, limit: int
    ) -> None:
        self.pipeline = pipeline
        self.resources = resources
        self.caches = resources.caches
        self.body_timeout = body_timeout
        self.limit = limit

    async def _body(self, scope: Scope, receive: Receive) -> CachedContentBody:
        raw = await asgi.read_body(scope, receive, self.limit, self.body_timeout)
        try:
            data = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"Invalid JSON payload received: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidRequest("Invalid JSON payload received: the body must be a JSON object")
        try:
            return CachedContentBody.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequest(f"Invalid request: {format_validation_error(exc)}") from None

    async def handle(
        self,
        route: CacheRoute,
        scope: Scope,
        receive: Receive,
        send: Send,
        caller: Caller,
        rid: str,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Answer one cachedContents request from an authenticated caller."""
        await self.resources.ready()
        access = self.resources.access(caller)
        method: str = scope["method"]
        if route.cache_id is None:
            if method == "POST":
                body = await self._body(scope, receive)
                row = await self.caches.create(
                    access, caller.key_hash, body, self._counter(caller, rid)
                )
                await asgi.send_json(send, 200, cache_json(row), headers)
            elif method == "GET":
                await self._list(scope, send, access, headers)
            else:
                raise _not_allowed(method, scope["path"])
            return
        name = f"cachedContents/{route.cache_id}"
        if method == "GET":
            row = await self.caches.get(access, name)
        elif method == "PATCH":
            row = await self.caches.update(access, name, await self._body(scope, receive))
        elif method == "DELETE":
            await self.caches.delete(access, name)
            await asgi.send_json(send, 200, {}, headers)
            return
        else:
            raise _not_allowed(method, scope["path"])
        await asgi.send_json(send, 200, cache_json(row), headers)

    def _counter(self, caller: Caller, rid: str) -> Any:
        router = self.pipeline.router

        async def count(model: str, request: GenerateContentRequest) -> int:
            if not router.knows(model):
                raise NotFound(
                    f"models/{model} is not found: a cached content is for a model this "
                    "gateway serves"
                )
            call = Call(Operation.COUNT_TOKENS, model, caller, rid)
            wrapped = CountTokensRequest(generate_content_request=request)
            reply = await self.pipeline.count_tokens(call, wrapped)
            return int(reply.total_tokens or 0)

        return count

    async def _list(
        self, scope: Scope, send: Send, access: Any, headers: list[tuple[bytes, bytes]]
    ) -> None:
        query = query_params(scope)
        size_text = query.get("pageSize") or query.get("page_size")
        if size_text is not None and not size_text.isdigit():
            raise InvalidRequest(f"pageSize: {size_text[:20]!r} is not a whole number")
        token = query.get("pageToken") or query.get("page_token") or None
        rows, more = await self.caches.list(access, int(size_text) if size_text else None, token)
        reply: dict[str, Any] = {"cachedContents": [cache_json(row) for row in rows]}
        if more:
            reply["nextPageToken"] = more
        await asgi.send_json(send, 200, reply, headers)


def _not_allowed(method: str, path: str) -> GenrouteError:
    return GenrouteError(f"{method} is not allowed on {path}", code=405, status="UNIMPLEMENTED")
