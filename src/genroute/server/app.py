"""The gateway's ASGI application: the Gemini API and Vertex AI model routes.

Routes (the path shapes are in `genroute.server.paths`: Gemini API versions, no version,
tuned models, Vertex AI with or without a project; any base-path prefix):
    POST {v}/models/{model}:generateContent | :streamGenerateContent | :countTokens
         | :embedContent | :batchEmbedContents
    GET  {v}/models        GET {v}/models/{model}
    the Files API ({v}/files, upload/{v}/files): genroute.server.files
    cached contents ({v}/cachedContents): genroute.server.caches
    batches ({v}/models/{model}:batchGenerateContent, {v}/batches): genroute.server.batches
    GET  /health/liveness (liveliness)  GET /health/readiness     open, status only
    GET  /health  GET /metrics                                   the master key, when set
    /ui, /ui/...   the admin web UI (genroute.ui), on the management API
Every error is Google's `{"error": {"code", "message", "status", "details"?}}`.

The edge authenticates the caller, reads and validates the body (within
`general_settings.request_body_timeout`), refuses model names no model has (control
characters, over 256 characters), builds the `Call` and hands it to the pipeline
(`genroute.pipeline`), whose layers do everything else. A client that disconnects cancels
its call, streamed or not. Header values sent back are made safe (`asgi.safe_headers`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from genroute.call import NO_DIRECTIVES, Call, Caller, Operation, new_request_id
from genroute.config import Config
from genroute.errors import GenrouteError, InvalidRequest, NotFound, PermissionDenied
from genroute.pipeline import Pipeline, build_pipeline
from genroute.routing import Router, normalise_model_name, routing_headers, with_routing_headers
from genroute.server import asgi, streaming
from genroute.server.asgi import JSON_TYPE, Receive, Scope, Send
from genroute.server.auth import MasterKeyAuth, presented_key, query_params
from genroute.server.batches import BatchesAPI, match_batches_path
from genroute.server.caches import CachesAPI, match_caches_path
from genroute.server.caching import cache_control, cache_headers, with_cache_header
from genroute.server.files import FilesAPI, match_files_path
from genroute.server.management import ManagementAPI
from genroute.server.paths import ModelPath, parse_model_path
from genroute.server.resource_admin import ResourceAdmin
from genroute.server.unsupported import unsupported
from genroute.server.vertex import lift_embed_config, predict_reply, predict_request
from genroute.ui import AdminUI
from genroute.wire import (
    BatchEmbedContentsRequest,
    CountTokensRequest,
    EmbedContentRequest,
    GenerateContentRequest,
    GenerateContentResponse,
    ListModelsResponse,
    WireModel,
    dump_json,
    format_validation_error,
    wire_bytes,
)

log = logging.getLogger("genroute.server")

__all__ = ["GatewayApp", "create_app", "parse_json"]

_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})
_HEALTH = {"/health/liveliness", "/health/liveness", "/health/readiness", "/health"}
MAX_PAGE_SIZE = 1000
_CLOSE_AFTER = frozenset({408, 413})
MAX_MODEL_NAME = 256  # the ledger's model_group column
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

W = TypeVar("W", bound=WireModel)
Handler = Callable[[Scope, Receive, Send, Call, list[tuple[bytes, bytes]]], Awaitable[None]]


def parse_json(
    body: bytes,
    model: type[W],
    reshape: Callable[[dict[str, Any]], Any] | None = None,
    *,
    relay: bool = True,
) -> W:
    """Validate a request body; InvalidRequest naming the field on any problem. With
    `relay`, a generateContent request keeps `body` to be sent on as it is."""
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Invalid JSON payload received: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("Invalid JSON payload received: the body must be a JSON object")
    if reshape is not None:
        data = reshape(data)
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid request: {format_validation_error(exc)}") from None
    if relay and reshape is None and isinstance(parsed, GenerateContentRequest):
        parsed.keep_body(body, data)  # sent on as it is to a Gemini upstream
    return parsed


def _deadline(scope: Scope, started: float) -> float | None:
    """The call's deadline from `X-Server-Timeout` (seconds), which the Google SDKs send
    when a client sets a timeout."""
    value = asgi.header(scope, b"x-server-timeout")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return started + seconds if 0 < seconds < 86_400 else None


class GatewayApp:
    """ASGI callable serving the Gemini API through one pipeline."""

    def __init__(self, pipeline: Pipeline, config: Config) -> None:
        self.pipeline = pipeline
        self.router: Router = pipeline.router
        self.observability = pipeline.observability
        self.governance = pipeline.governance
        self.config = config
        self.auth = MasterKeyAuth(config.general_settings.master_key)
        general = config.general_settings
        self.body_limit = general.max_request_bytes
        self.body_timeout = general.request_body_timeout
        self.write_timeout = general.response_write_timeout
        # Read by genroute.server.protocol (the header deadline and connection limit).
        self.header_timeout = general.request_header_timeout
        self.max_connections = general.max_connections
        self.management = (
            ManagementAPI(
                self.governance,
                self.body_timeout,
                router=self.router,
                recent=self.observability.recent if self.observability else None,
            )
            if self.governance
            else None
        )
        self.ui = AdminUI(self.management, general.master_key, session_ttl=general.ui_session_ttl)
        self.end_user_header = config.general_settings.end_user_header.lower().encode("latin-1")
        resources = pipeline.resources
        if self.management is not None and resources is not None:  # /files/list, ...
            self.management.add_routes(ResourceAdmin(resources, self.management.store).routes())
        self.files = FilesAPI(resources, self.body_timeout, self.body_limit) if resources else None
        self.caches = (
            CachesAPI(pipeline, resources, self.body_timeout, self.body_limit)
            if resources
            else None
        )
        self.batches = (
            BatchesAPI(pipeline, resources, self.body_timeout, self.body_limit)
            if resources
            else None
        )
        self._tracing = self.observability is not None and self.observability.tracing is not None
        self._post: dict[str, Handler] = {
            "generateContent": self._generate,
            "streamGenerateContent": self._stream,
            "countTokens": self._count_tokens,
            "embedContent": self._embed,
            "batchEmbedContents": self._batch_embed,
            "predict": self._predict,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.pipeline.start()
                except Exception as exc:
                    log.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pipeline.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = asgi.header(scope, b"x-request-id")
        rid = _clean_id(request_id) if request_id else new_request_id()
        headers = [(b"x-request-id", rid.encode("latin-1"))]
        try:
            await self._dispatch(scope, receive, send, rid, headers)
        except GenrouteError as exc:
            if exc.code >= 500:
                log.warning("request %s failed: %s %s", rid, exc.code, exc.message)
            if exc.code in _CLOSE_AFTER:  # the rest of the body is not worth waiting for
                headers.append((b"connection", b"close"))
            await asgi.send_error(send, exc, headers)
        except ConnectionAbortedError:
            return
        except Exception:
            log.exception("request %s: unexpected error", rid)
            await asgi.send_error(
                send, GenrouteError(f"internal error (request id {rid})", code=500), headers
            )

    async def _dispatch(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        rid: str,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path.startswith("/ui") and self.ui.handles(path):  # before /{prefix}/models
            await self.ui(scope, receive, send, headers)
            return
        if self.files is not None and (files := match_files_path(path)) is not None:
            caller = await self._resource_caller(scope) if files.needs_key(scope) else None
            await self.files.handle(files, scope, receive, send, caller, headers)
            return
        if self.caches is not None and (caches := match_caches_path(path)) is not None:
            caller = await self._resource_caller(scope)
            await self.caches.handle(caches, scope, receive, send, caller, rid, headers)
            return
        if self.batches is not None and (batches := match_batches_path(path)) is not None:
            caller = await self._resource_caller(scope)
            await self.batches.handle(batches, scope, receive, send, caller, headers)
            return
        parsed = parse_model_path(path)
        if parsed is None:
            if path in _HEALTH and method in ("GET", "HEAD"):
                await self._health(scope, send, headers)
                return
            if path == "/metrics" and method == "GET" and self.observability is not None:
                await self._metrics(scope, send, headers)
                return
            if self.management is not None and self.management.handles(path):
                await self.management.handle(scope, receive, send, headers)
                return
            raise unsupported(method, path) or NotFound(f"no route for {method} {path}")
        _check_model_name(parsed)
        model, action = parsed.name(self.router.knows), parsed.action
        query = query_params(scope)
        key = presented_key(scope, query)
        row = None
        if self.governance is None:
            self.auth.check(key)
        else:
            row = await self._known_key(
                scope, key, model if method == "POST" else None, action, rid
            )
        if action is None:
            if method != "GET":
                raise unsupported(method, path) or GenrouteError(
                    f"{method} is not allowed on {path}", code=405, status="UNIMPLEMENTED"
                )
            if model is None:
                await self._list_models(send, query, headers)
            else:
                data = dump_json(self.router.describe(model))
                await asgi.send_bytes(send, 200, data, [JSON_TYPE, *headers])
            return
        if method != "POST":
            raise GenrouteError(
                f"{action} needs POST, not {method}", code=405, status="UNIMPLEMENTED"
            )
        if model is None:
            raise NotFound(f"no route for {method} {path}")
        operation = Operation.BATCH_EMBED if action == "predict" else Operation(action)
        call = self._call(scope, operation, normalise_model_name(model), key, row, rid)
        await self._post[action](scope, receive, send, call, headers)

    async def _known_key(
        self, scope: Scope, key: str | None, model: str | None, action: str | None, rid: str
    ) -> dict[str, Any] | None:
        """The caller's key row (None: the master key). A missing or unknown key is only
        counted in metrics (junk traffic must not fill the database); a call of a known key
        that is blocked or expired is also a ledger row with its status and cost 0."""
        assert self.governance is not None
        try:
            row = await self.governance.known_key(key)
        except GenrouteError as exc:
            if self.observability is not None:
                self.observability.auth_refused(exc)
            raise
        try:
            self.governance.check_key(row)
        except GenrouteError as exc:
            if model is not None and action in self._post:
                operation = Operation.BATCH_EMBED if action == "predict" else Operation(action)
                call = self._call(scope, operation, normalise_model_name(model), key, row, rid)
                await self.governance.refused(call, exc)
                if self.observability is not None:
                    self.observability.refused(call, exc)
            raise
        return row

    async def _resource_caller(self, scope: Scope) -> Caller:
        """The authenticated caller of a resource route (the Files API)."""
        key = presented_key(scope, query_params(scope))
        if self.governance is None:
            self.auth.check(key)
            return Caller(key_hash=self.auth.key_hash(key))
        row = await self.governance.authenticate(key)
        return self.governance.caller(self.auth.key_hash(key), row)

    def _call(
        self,
        scope: Scope,
        operation: Operation,
        model: str,
        key: str | None,
        row: dict[str, Any] | None,
        rid: str,
    ) -> Call:
        end_user = None
        raw = asgi.header(scope, self.end_user_header)
        if raw:
            end_user = raw.decode("utf-8", "replace").strip()[:256] or None
        key_hash = self.auth.key_hash(key)
        if self.governance is not None:
            caller = self.governance.caller(key_hash, row, end_user)
        else:
            caller = Caller(key_hash=key_hash, end_user=end_user)
        trace: tuple[tuple[str, str], ...] = ()
        if self._tracing:
            trace = tuple(
                (k.decode("latin-1"), v.decode("latin-1"))
                for k, v in scope["headers"]
                if k in _TRACE_HEADERS
            )
        # The cache's request headers are read only when there is a cache to ask.
        directives = NO_DIRECTIVES if self.pipeline.cache is None else cache_control(scope)
        call = Call(operation, model, caller, rid, trace_headers=trace, cache_control=directives)
        deadline = _deadline(scope, call.started)
        return call if deadline is None else call.evolve(deadline=deadline)

    async def _require_master(self, scope: Scope, what: str) -> None:
        """Refuse a caller without the master key (when one is configured): 401/403 for a
        missing or unknown key, 403 for a virtual key."""
        key = presented_key(scope, query_params(scope))
        if self.governance is None:
            self.auth.check(key)
            return
        if not self.governance.has_master or self.governance.authenticated_master(key):
            return
        await self.governance.authenticate(key)
        raise PermissionDenied(f"{what} needs the master key (general_settings.master_key).")

    async def _metrics(self, scope: Scope, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
        assert self.observability is not None
        if self.observability.metrics_require_auth:
            await self._require_master(scope, "/metrics (observability.metrics.require_auth: true)")
        rendered = await self.observability.render_metrics()
        if rendered is None:
            raise NotFound("metrics are off (observability.metrics.enabled: false)")
        body, content_type = rendered
        await asgi.send_bytes(send, 200, body, [(b"content-type", content_type.encode()), *headers])

    async def _health(self, scope: Scope, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
        """Liveness and readiness are open and say only the status; the full report (models,
        deployments, upstream URLs) at /health is for the master key."""
        body: dict[str, Any] = {"status": "healthy"}
        code = 200
        path = scope["path"]
        governance = self.governance
        if path == "/health/readiness" and governance is not None:
            # Ready unless new calls would be refused (the spend spool is full); a database
            # or Redis outage is "degraded": calls are still served, so stay in rotation.
            state = governance.status()["status"]
            body["status"] = "healthy" if state == "ok" else state
            code = 200 if governance.ready() else 503
        if path == "/health":
            await self._require_master(scope, "/health (liveness and readiness are open)")
            body["models"] = self.router.model_names
            body.update(await self.router.health())
            if governance is not None:
                body["governance"] = governance.status()
        await asgi.send_json(send, code, body, headers)

    async def _list_models(
        self, send: Send, query: Mapping[str, str], headers: list[tuple[bytes, bytes]]
    ) -> None:
        models = self.router.list_models()
        try:
            size = int(query.get("pageSize") or query.get("page_size") or 50)
            start = int(query.get("pageToken") or query.get("page_token") or 0)
        except ValueError:
            raise InvalidRequest("pageSize and pageToken must be whole numbers") from None
        size = max(1, min(size, MAX_PAGE_SIZE))
        start = max(0, start)
        page = models[start : start + size]
        more = str(start + size) if start + size < len(models) else None
        reply = ListModelsResponse(models=page, next_page_token=more)
        await asgi.send_bytes(send, 200, dump_json(reply), [JSON_TYPE, *headers])

    async def _body(
        self,
        scope: Scope,
        receive: Receive,
        call: Call,
        model: type[W],
        reshape: Callable[[dict[str, Any]], Any] | None = None,
    ) -> W:
        """The validated body (`reshape`d first, for another API's shape of it); a refusal
        is recorded as the call's outcome."""
        try:
            raw = await asgi.read_body(scope, receive, self.body_limit, self.body_timeout)
            # With a response cache, the upstream is sent the model the cache keyed the
            # call by, not the client's JSON: a body that reads two ways (a key given
            # twice: orjson keeps the last) must not store one answer under the other.
            return parse_json(raw, model, reshape, relay=self.pipeline.cache is None)
        except (GenrouteError, ConnectionAbortedError) as exc:
            if self.observability is not None:
                self.observability.refused(call, exc)
            raise

    async def _generate(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        call: Call,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        request = await self._body(scope, receive, call, GenerateContentRequest)
        await self._reply(receive, send, self.pipeline.generate(call, request), call, headers)

    async def _stream(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        call: Call,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        request = await self._body(scope, receive, call, GenerateContentRequest)
        sse = query_params(scope).get("alt") == "sse"
        chunks = self.pipeline.stream(call, request)
        if self.pipeline.cache is not None:
            chunks = with_cache_header(chunks, call, headers)
        await streaming.relay(
            with_routing_headers(chunks, call.route, headers),
            receive,
            send,
            sse=sse,
            headers=headers,
            write_timeout=self.write_timeout,
        )

    async def _count_tokens(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        call: Call,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        request = await self._body(scope, receive, call, CountTokensRequest)
        if request.contents is None and request.generate_content_request is None:
            error = InvalidRequest("contents: required (or generateContentRequest)")
            if self.observability is not None:
                self.observability.refused(call, error)
            raise error
        await self._reply(receive, send, self.pipeline.count_tokens(call, request), call, headers)

    async def _embed(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        call: Call,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        request = await self._body(scope, receive, call, EmbedContentRequest, lift_embed_config)
        await self._reply(receive, send, self.pipeline.embed(call, request), call, headers)

    async def _predict(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        call: Call,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Vertex `:predict` for embeddings: a batch embed in Vertex's own shape."""
        request = await self._body(
            scope,
            receive,
            call,
            BatchEmbedContentsRequest,
            lambda body: predict_request(body, call.model).model_dump(by_alias=True),
        )
        try:
            response = await asgi.cancel_on_disconnect(
                self.pipeline.batch_embed(call, request), receive
            )
        finally:
            headers.extend(routing_headers(call.route))
        data = orjson.dumps(predict_reply(request, response))
        await asgi.send_bytes(send, 200, data, [JSON_TYPE, *headers])

    async def _batch_embed(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        call: Call,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        request = await self._body(scope, receive, call, BatchEmbedContentsRequest)
        if not request.requests:
            error = InvalidRequest("requests: at least one request is needed")
            if self.observability is not None:
                self.observability.refused(call, error)
            raise error
        await self._reply(receive, send, self.pipeline.batch_embed(call, request), call, headers)

    @staticmethod
    async def _reply(
        receive: Receive,
        send: Send,
        work: Coroutine[Any, Any, WireModel],
        call: Call,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        """Await the pipeline's answer and send it, with the routing headers either way; a
        client that leaves first cancels the call."""
        try:
            response = await asgi.cancel_on_disconnect(work, receive)
        finally:
            headers.extend(routing_headers(call.route))
            headers.extend(cache_headers(call))
        cost = call.meter.cost
        if cost is not None:
            headers.append((b"x-genroute-response-cost", f"{cost:.10g}".encode()))
        data = (
            wire_bytes(response)
            if isinstance(response, GenerateContentResponse)
            else dump_json(response)
        )
        await asgi.send_bytes(send, 200, data, [JSON_TYPE, *headers])


def _check_model_name(path: ModelPath) -> None:
    """InvalidRequest naming the model for a name no model can have: control characters
    (NUL, CR, LF, ...), or longer than MAX_MODEL_NAME."""
    if path.model is None:
        return
    name = path.model
    if path.publisher is not None:
        name = f"publishers/{path.publisher}/models/{name}"
    if _CONTROL.search(name):
        raise InvalidRequest(
            f"model: {name!r} is not a model name: it contains a control character"
        )
    if len(path.model) > MAX_MODEL_NAME:
        raise InvalidRequest(
            f"model: a name of {len(path.model)} characters is over the limit of {MAX_MODEL_NAME}"
        )


def _clean_id(raw: bytes) -> str:
    """A client's x-request-id, made safe to echo: printable ASCII, at most 128 characters."""
    text = raw.decode("latin-1")[:128]
    return "".join(c for c in text if " " < c <= "~") or new_request_id()


def create_app(config: Config, router: Router | None = None) -> GatewayApp:
    """The ASGI app for a config (the Router is built from it unless given), with the
    prices of its models read (no call waits for the price catalogue to load)."""
    pipeline = build_pipeline(config, router=router, server=True)
    pipeline.warm_prices()
    return GatewayApp(pipeline, config)
