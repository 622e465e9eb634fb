"""The Router: model groups, deployment choice, retries, fallbacks and cooldowns.

A model name is a group of deployments (`model_list` entries sharing a `model_name`).
Names may contain `*` wildcards (`gemini-*` → `gemini/gemini-*`), and
`router_settings.model_group_alias` maps the names clients send on their own to a group.
Each call goes through `genroute.routing.dispatch`: a routing strategy picks a deployment,
failures are retried, cool the deployment down and fall back to other groups; with
`router_settings.redis_url` that state is shared by every genroute process.
The proxy and the SDK share this class; hooks run once per call, not per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from genroute.config import Config, ModelEntry, config_from_data
from genroute.context import CallContext
from genroute.errors import GenrouteError
from genroute.hooks import CallHook, run_after, run_before
from genroute.http_pool import HttpPool
from genroute.providers.base import DeploymentSpec
from genroute.providers.demo.provider import DEMO_NOTICE
from genroute.providers.registry import build_provider, split_model
from genroute.routing.dispatch import Dispatcher, aclose_quietly, cancelled_error, deadline
from genroute.routing.groups import Deployment, ModelGroups, normalise_model_name
from genroute.routing.report import health_report
from genroute.routing.state import RouterState, build_state
from genroute.routing.strategies import simple_shuffle
from genroute.wire import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    CountTokensRequest,
    CountTokensResponse,
    EmbedContentRequest,
    EmbedContentResponse,
    GenerateContentRequest,
    GenerateContentResponse,
    Model,
)

__all__ = ["Deployment", "Router", "normalise_model_name"]

GENERATE_METHODS = ["generateContent", "streamGenerateContent", "countTokens"]
EMBED_METHODS = ["embedContent", "batchEmbedContents", "countTokens"]
log = logging.getLogger("genroute.router")
T = TypeVar("T")
Stream = tuple[GenerateContentResponse | None, AsyncIterator[GenerateContentResponse]]


def _tokens(response: GenerateContentResponse | None) -> int:
    usage = response.usage_metadata if response is not None else None
    return int(usage.total_token_count or 0) if usage is not None else 0


class Router:
    """Routes generateContent calls for a set of model groups to their deployments."""

    def __init__(
        self,
        model_list: Iterable[Mapping[str, Any] | ModelEntry] | None = None,
        *,
        config: Config | None = None,
        router_settings: Mapping[str, Any] | None = None,
        allow_ad_hoc_models: bool | None = None,
        http: HttpPool | None = None,
        hooks: Iterable[CallHook] = (),
        state: RouterState | None = None,
        callbacks: Iterable[Any] = (),
    ) -> None:
        if config is None:
            entries = [
                e.model_dump(by_alias=False) if isinstance(e, ModelEntry) else dict(e)
                for e in model_list or []
            ]
            config = config_from_data(
                {"model_list": entries, "router_settings": dict(router_settings or {})},
                source="Router(model_list=...)",
            )
        self.config = config
        self.hooks: list[CallHook] = list(hooks)
        # `callbacks=`: genroute.observability callbacks, run off the request path on queues.
        self._callbacks: Any = None
        if callbacks:
            from genroute.observability import Observability

            self._callbacks = Observability.for_callbacks(list(callbacks))
            self.hooks.append(self._callbacks.hook)
        self._http = http or HttpPool()
        self._rng = random.Random()
        # An SDK Router without a config may call any `provider/model` directly.
        ad_hoc = not config.model_list if allow_ad_hoc_models is None else allow_ad_hoc_models
        self._groups = ModelGroups(config, self._deploy, ad_hoc)
        self.state: RouterState = state or build_state(config)
        self._dispatch = Dispatcher(self._groups, self.state, config.router_settings, self._rng)

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> Router:
        """A Router for a loaded Config."""
        return cls(config=config, **kwargs)

    def _deploy(self, model_name: str, entry: ModelEntry, deployment_id: str) -> Deployment:
        provider_name, upstream = split_model(entry.params.model)
        params = entry.params
        default_timeout = (
            self.config.router_settings.timeout or self.config.litellm_settings.request_timeout
        )
        if params.timeout is None and default_timeout:
            params = params.model_copy(update={"timeout": default_timeout})
        if params.stream_timeout is None and self.config.router_settings.stream_timeout:
            params = params.model_copy(
                update={"stream_timeout": self.config.router_settings.stream_timeout}
            )
        spec = DeploymentSpec(provider_name, upstream, params, entry.model_info)
        provider = build_provider(spec, self._http)
        return Deployment(model_name, entry, spec, provider, deployment_id)

    # -- resolution -------------------------------------------------------------------------

    @property
    def allow_ad_hoc_models(self) -> bool:
        """Whether any `provider/model` not in the model_list may be called."""
        return self._groups.allow_ad_hoc_models

    @property
    def model_names(self) -> list[str]:
        """Every concrete group name, then wildcard patterns, then aliases."""
        return self._groups.names

    def group(self, model: str) -> list[Deployment]:
        """The deployments serving `model`; raises NotFound for an unknown name."""
        return self._groups.group(model)

    def pick(self, model: str) -> Deployment:
        """One deployment of the group by weight, ignoring state (for inspection and tests)."""
        return simple_shuffle(self.group(model), {}, False, self._rng)

    # -- the generateContent interface -------------------------------------------------------

    def _context(
        self, model: str, ctx: CallContext | None, operation: str, stream: bool
    ) -> CallContext:
        ctx = ctx or CallContext()
        ctx.operation, ctx.stream = operation, stream
        self.group(model)  # an unknown model fails here, before any hook runs
        ctx.model_group = self._groups.canonical(model)
        return ctx

    @staticmethod
    def _finish(ctx: CallContext, error: GenrouteError | None) -> None:
        ctx.finished_at = time.perf_counter()
        if error is not None:
            ctx.status_code, ctx.error_status, ctx.error_message = (
                error.code,
                error.status,
                error.message,
            )

    @staticmethod
    def _observe(ctx: CallContext, chunk: GenerateContentResponse) -> None:
        if chunk.usage_metadata is not None:
            ctx.usage = chunk.usage_metadata
        if chunk.model_version:
            ctx.response_model = chunk.model_version
        for candidate in chunk.candidates or ():
            if candidate.finish_reason:
                ctx.finish_reason = candidate.finish_reason
            if ctx.response_text is not None and candidate.content is not None:
                parts = candidate.content.parts or ()
                ctx.response_text.extend(p.text for p in parts if p.text and not p.thought)

    async def generate(
        self, model: str, request: GenerateContentRequest, ctx: CallContext | None = None
    ) -> GenerateContentResponse:
        """One whole response from a deployment of `model` (retried and fallen back)."""
        ctx = self._context(model, ctx, "generateContent", False)
        await run_before(self.hooks, ctx, request)
        error: GenrouteError | None = None
        try:

            async def attempt(d: Deployment) -> GenerateContentResponse:
                started = time.perf_counter()
                try:
                    async with deadline(d.spec.timeout, f"deployment {d.id}"):
                        return await d.provider.generate(request)
                finally:
                    ctx.upstream_seconds += time.perf_counter() - started

            response, lease = await self._dispatch.run(model, ctx, attempt, stream=False)
            await lease.finish(None, tokens=_tokens(response))
            self._observe(ctx, response)
            return response
        except GenrouteError as exc:
            error = exc
            raise
        finally:
            self._finish(ctx, error)
            if self.hooks:
                await run_after(self.hooks, ctx, error)

    async def stream(
        self, model: str, request: GenerateContentRequest, ctx: CallContext | None = None
    ) -> AsyncIterator[GenerateContentResponse]:
        """The response as chunks, relayed as the upstream sends them.

        Retries and fallbacks happen only until the first chunk; a failure after it ends
        the stream with the error (the edge sends it as a final error event).
        """
        ctx = self._context(model, ctx, "streamGenerateContent", True)
        await run_before(self.hooks, ctx, request)
        error: GenrouteError | None = None
        lease = None
        iterator: AsyncIterator[GenerateContentResponse] | None = None
        ttft: float | None = None

        async def attempt(d: Deployment) -> Stream:
            chunks = aiter(d.provider.stream(request))
            try:
                async with deadline(d.spec.stream_timeout, f"deployment {d.id} (first chunk)"):
                    return await anext(chunks), chunks
            except StopAsyncIteration:
                return None, chunks
            except BaseException:
                await aclose_quietly(chunks)
                raise

        try:
            (first, iterator), lease = await self._dispatch.run(model, ctx, attempt, stream=True)
            ctx.first_token_at = time.perf_counter()
            ttft = ctx.first_token_at - lease.attempt.started
            if first is not None:
                self._observe(ctx, first)
                yield first
            async for chunk in iterator:
                self._observe(ctx, chunk)
                yield chunk
        except GenrouteError as exc:
            error = exc
            raise
        except (GeneratorExit, asyncio.CancelledError):
            error = cancelled_error()
            raise
        finally:
            if iterator is not None:
                await aclose_quietly(iterator)
            if lease is not None:
                usage = ctx.usage
                tokens = int(usage.total_token_count or 0) if usage is not None else 0
                await lease.finish(error, tokens=tokens, ttft=ttft)
            self._finish(ctx, error)
            if self.hooks:
                await run_after(self.hooks, ctx, error)

    async def _simple(
        self,
        model: str,
        operation: str,
        call: Callable[[Deployment], Awaitable[T]],
        ctx: CallContext | None,
    ) -> T:
        ctx = self._context(model, ctx, operation, False)

        async def attempt(d: Deployment) -> T:
            async with deadline(d.spec.timeout, f"deployment {d.id}"):
                return await call(d)

        result, lease = await self._dispatch.run(model, ctx, attempt, stream=False, measure=False)
        await lease.finish(None)
        ctx.finished_at = time.perf_counter()
        return result

    async def count_tokens(
        self, model: str, request: CountTokensRequest, ctx: CallContext | None = None
    ) -> CountTokensResponse:
        """Token count of the request's contents for `model`."""
        return await self._simple(
            model, "countTokens", lambda d: d.provider.count_tokens(request), ctx
        )

    async def embed_content(
        self, model: str, request: EmbedContentRequest, ctx: CallContext | None = None
    ) -> EmbedContentResponse:
        """One embedding."""
        return await self._simple(
            model, "embedContent", lambda d: d.provider.embed_content(request), ctx
        )

    async def batch_embed_contents(
        self, model: str, request: BatchEmbedContentsRequest, ctx: CallContext | None = None
    ) -> BatchEmbedContentsResponse:
        """One embedding per inner request, in order."""
        return await self._simple(
            model, "batchEmbedContents", lambda d: d.provider.batch_embed_contents(request), ctx
        )

    # -- health ------------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        """Each deployment's recent health: cooling down or not, load, latency (no calls)."""
        deployments = self._groups.all_deployments()
        stats = await self.state.snapshot([d.id for d in deployments])
        return health_report(deployments, stats, self.state.backend)

    # -- models list -------------------------------------------------------------------------

    def describe(self, name: str) -> Model:
        """The Google `Model` resource for a served name."""
        name = normalise_model_name(name)
        entry = self._entry_for(name)
        info = entry.model_info
        is_demo = entry.params.model.startswith("demo/")
        methods = EMBED_METHODS if info.mode == "embedding" else GENERATE_METHODS
        description = info.description or (
            DEMO_NOTICE if is_demo else f"{entry.params.model} via genroute"
        )
        display = info.display_name or (f"{name} (genroute built-in demo)" if is_demo else name)
        if is_demo:
            methods = [*GENERATE_METHODS, "embedContent", "batchEmbedContents"]
        return Model(
            name=f"models/{name}",
            base_model_id=name,
            version=info.base_model or entry.params.model,
            display_name=display,
            description=description,
            input_token_limit=info.max_input_tokens or info.max_tokens,
            output_token_limit=info.max_output_tokens,
            supported_generation_methods=methods,
        )

    def _entry_for(self, name: str) -> ModelEntry:
        name = self._groups.canonical(name)
        for entry in self.config.model_list:
            if entry.model_name == name:
                return entry
        return self.group(name)[0].entry

    def list_models(self) -> list[Model]:
        """Every served model name as a Google `Model`."""
        return [self.describe(name) for name in self.model_names]

    # -- SDK conveniences (same call shapes as google-genai) ------------------------------------

    async def agenerate_content(
        self, model: str, contents: Any, config: Any = None, **kwargs: Any
    ) -> Any:
        """Async generateContent taking and returning `google.genai.types` objects."""
        from genroute import sdk

        return await sdk.agenerate_content(
            model=model, contents=contents, config=config, router=self, **kwargs
        )

    async def agenerate_content_stream(
        self, model: str, contents: Any, config: Any = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """Async stream of `google.genai.types.GenerateContentResponse` chunks."""
        from genroute import sdk

        return await sdk.agenerate_content_stream(
            model=model, contents=contents, config=config, router=self, **kwargs
        )

    def generate_content(self, model: str, contents: Any, config: Any = None, **kwargs: Any) -> Any:
        """Blocking generateContent."""
        from genroute import sdk

        return sdk.generate_content(
            model=model, contents=contents, config=config, router=self, **kwargs
        )

    def generate_content_stream(
        self, model: str, contents: Any, config: Any = None, **kwargs: Any
    ) -> Any:
        """Blocking stream, for a plain `for` loop."""
        from genroute import sdk

        return sdk.generate_content_stream(
            model=model, contents=contents, config=config, router=self, **kwargs
        )

    async def aclose(self) -> None:
        """Flush callbacks; close the pooled HTTP clients and the state's connections."""
        if self._callbacks is not None:
            await self._callbacks.aclose()
        await self._http.aclose()
        await self.state.aclose()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
