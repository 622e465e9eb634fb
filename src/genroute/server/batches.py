"""The Batch API at the HTTP edge, as google-genai's `client.batches` calls it.

    POST   {prefix}/{v}/models/{model}:batchGenerateContent
               {"batch": {displayName?, inputConfig: {requests: {requests: [{request,
               metadata?}]}} | {fileName: "files/…"}}}          → the batch operation
    GET    {prefix}/{v}/batches                 {"operations": [...], nextPageToken?}
    GET    {prefix}/{v}/batches/{id}            the batch (with its output once it ended)
    POST   {prefix}/{v}/batches/{id}:cancel     {}
    DELETE {prefix}/{v}/batches/{id}            {} (an ended batch)

genroute runs the batch itself (`genroute.resources.runner`). The caller was
authenticated by the app; the batch service checks ownership.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from genroute.call import Caller
from genroute.errors import GenrouteError, InvalidRequest, NotFound
from genroute.pipeline import Pipeline
from genroute.resources import Resources
from genroute.routing import normalise_model_name
from genroute.server import asgi
from genroute.server.asgi import Receive, Scope, Send
from genroute.server.auth import query_params

__all__ = ["BatchRoute", "BatchesAPI", "match_batches_path"]

_CREATE = re.compile(
    r"^(?P<prefix>.*?)/(?P<v>v1|v1beta|v1alpha)/models/(?P<model>.+):batchGenerateContent$"
)
_BATCHES = re.compile(
    r"^(?P<prefix>.*?)/(?P<v>v1|v1beta|v1alpha)/batches"
    r"(?:/(?P<id>[^/:]+)(?::(?P<action>[A-Za-z]+))?)?/?$"
)


@dataclass(frozen=True, slots=True)
class BatchRoute:
    """What a Batch API path names."""

    model: str | None  # set for batchGenerateContent
    batch_id: str | None
    action: str | None


def match_batches_path(path: str) -> BatchRoute | None:
    """The Batch API route a path names, or None."""
    if "/batches" not in path and not path.endswith(":batchGenerateContent"):
        return None  # the cheap check every model call makes
    if (found := _CREATE.match(path)) is not None:
        return BatchRoute(normalise_model_name(found["model"]), None, None)
    if (found := _BATCHES.match(path)) is not None:
        return BatchRoute(None, found["id"], found["action"])
    return None


class BatchesAPI:
    """Serves the Batch API routes (see the module docstring)."""

    def __init__(
        self, pipeline: Pipeline, resources: Resources, body_timeout: float, limit: int
    ) -> None:
        self.router = pipeline.router
        self.resources = resources
        self.batches = resources.batches
        self.body_timeout = body_timeout
        self.limit = limit

    async def handle(
        self,
        route: BatchRoute,
        scope: Scope,
        receive: Receive,
        send: Send,
        caller: Caller,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Answer one Batch API request from an authenticated caller."""
        await self.resources.ready()
        access = self.resources.access(caller)
        method: str = scope["method"]
        if route.model is not None:
            if method != "POST":
                raise _not_allowed(method, scope["path"])
            if not self.router.knows(route.model):
                raise NotFound(f"models/{route.model} is not found for batchGenerateContent")
            raw = await asgi.read_body(scope, receive, self.limit, self.body_timeout)
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError as exc:
                raise InvalidRequest(f"Invalid JSON payload received: {exc}") from None
            row = await self.batches.create(access, caller, route.model, body)
            await asgi.send_json(send, 200, await self.batches.to_json(row), headers)
            return
        if route.batch_id is None:
            if method != "GET":
                raise _not_allowed(method, scope["path"])
            await self._list(scope, send, access, headers)
            return
        name = f"batches/{route.batch_id}"
        if route.action == "cancel" and method == "POST":
            await self.batches.cancel(access, name)
            await asgi.send_json(send, 200, {}, headers)
        elif route.action is not None:
            raise GenrouteError(
                f"{method} {name}:{route.action} is not served: a batch is read (GET), "
                "cancelled (POST :cancel) and deleted (DELETE); make a new batch to change "
                "its requests",
                code=400,
                status="FAILED_PRECONDITION",
            )
        elif method == "GET":
            row = await self.batches.get(access, name)
            await asgi.send_json(send, 200, await self.batches.to_json(row), headers)
        elif method == "DELETE":
            await self.batches.delete(access, name)
            await asgi.send_json(send, 200, {}, headers)
        else:
            raise _not_allowed(method, scope["path"])

    async def _list(
        self, scope: Scope, send: Send, access: Any, headers: list[tuple[bytes, bytes]]
    ) -> None:
        query = query_params(scope)
        size_text = query.get("pageSize") or query.get("page_size")
        if size_text is not None and not size_text.isdigit():
            raise InvalidRequest(f"pageSize: {size_text[:20]!r} is not a whole number")
        token = query.get("pageToken") or query.get("page_token") or None
        rows, more = await self.batches.list(access, int(size_text) if size_text else None, token)
        reply: dict[str, Any] = {"operations": [await self.batches.to_json(r) for r in rows]}
        if more:
            reply["nextPageToken"] = more
        await asgi.send_json(send, 200, reply, headers)


def _not_allowed(method: str, path: str) -> GenrouteError:
    return GenrouteError(f"{method} is not allowed on {path}", code=405, status="UNIMPLEMENTED")
