"""The Router: model groups, deployment choice, retries, fallbacks and cooldowns.

A model name is a group of deployments (`model_list` entries sharing a `model_name`).
Names may contain `*` wildcards (`gemini-*` → `gemini/gemini-*`), and
`router_settings.model_group_alias` maps the names clients send on their own to a group.
Each call goes through `genroute.routing.dispatch`: a routing strategy picks a deployment,
failures are retried, cool the deployment down and fall back to other groups; with
`router_settings.redis_url` that state is shared by every genroute process.

The Router serves `genroute.call.ModelAPI` on wire-model requests and responses: it is the
innermost layer of the pipeline before the providers, and knows nothing of keys, budgets,
logs or google-genai types. Where a call went it writes on `call.route`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from genroute.call import Call
from genroute.config import Config, ModelEntry, config_from_data
from genroute.errors import (
    GenrouteError,
    InvalidRequest,
    UpstreamMalformed,
    UpstreamTimeout,
    cancelled,
)
from genroute.providers.base import DeploymentSpec
from genroute.providers.demo.provider import DEMO_NOTICE
from genroute.providers.http11 import Http11Transport
from genroute.providers.models import ModelFacts, model_facts
from genroute.providers.registry import build_provider, split_model
from genroute.providers.transport import Transport
from genroute.routing.bounded import BoundedTransport
from genroute.routing.dispatch import Dispatcher, Sleep, aclose_quietly, deadline
from genroute.routing.groups import Deployment, ModelGroups, normalise_model_name
from genroute.routing.report import health_report
from genroute.routing.state import Clock, LocalState, RouterState
from genroute.routing.strategies import simple_shuffle
from genroute.routing.watchdog import Watchdog
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

__all__ = ["HEALTH_WILDCARD_LIMIT", "Deployment", "Router", "build_state", "normalise_model_name"]

HEALTH_WILDCARD_LIMIT = 50  # wildcard names /health lists (the most recently used)
GENERATE_METHODS = ["generateContent", "streamGenerateContent", "countTokens"]
EMBED_METHODS = ["embedContent", "batchEmbedContents", "countTokens"]
T = TypeVar("T")
Stream = tuple[GenerateContentResponse | None, AsyncIterator[GenerateContentResponse]]


def _gap_timeout(deployment_id: str, gap: float, remaining: float | None) -> UpstreamTimeout:
    """What `deadline` raises when a stream's next chunk came too late (the same text)."""
    what = f"deployment {deployment_id} (next chunk)"
    if remaining is not None and remaining <= gap:
        return UpstreamTimeout(f"{what}: the call's deadline passed before the upstream answered")
    return UpstreamTimeout(f"{what} did not answer within {gap:g}s")


def _tokens(response: GenerateContentResponse | None) -> int:
    return response.facts().total_tokens if response is not None else 0


def build_state(config: Config, clock: Clock | None = None) -> RouterState:
    """Redis-backed state when router_settings names a Redis, else in-memory state."""
    settings = config.router_settings
    url = settings.redis_connection_url()
    if not url:
        return LocalState() if clock is None else LocalState(clock)
    from genroute.routing.redis_state import RedisState  # redis is imported only if used

    return RedisState(
        url,
        prefix=settings.redis_key_prefix,
        socket_timeout=settings.redis_socket_timeout,
        reconnect_interval=settings.redis_reconnect_interval,
    )


class Router:
    """Routes model-API calls for a set of model groups to their deployments."""

    def __init__(
        self,
        model_list: Iterable[Mapping[str, Any] | ModelEntry] | None = None,
        *,
        config: Config | None = None,
        router_settings: Mapping[str, Any] | None = None,
        allow_ad_hoc_models: bool | None = None,
        transport: Transport | None = None,
        state: RouterState | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
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
        limit = int(config.router_settings.max_response_size_mb * 1024 * 1024)
        self._transport: Transport = BoundedTransport(transport or Http11Transport(), limit)
        self._rng = random.Random()
        # An SDK Router without a config may call any `provider/model` directly.
        ad_hoc = not config.model_list if allow_ad_hoc_models is None else allow_ad_hoc_models
        self._groups = ModelGroups(config, self._deploy, ad_hoc)
        self.state: RouterState = state or build_state(config, clock)
        self.state.retain(self._groups.resident)
        self._dispatch = Dispatcher(
            self._groups,
            self.state,
            config.router_settings,
            self._rng,
            clock=clock or time.monotonic,
            **_sleep(sleep),
        )

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> Router:
        """A Router for a loaded Config."""
        return cls(config=config, **kwargs)

    def _deploy(self, model_name: str, entry: ModelEntry, deployment_id: str) -> Deployment:
        provider_name, upstream = split_model(entry.params.model)
        params = entry.params
        settings = self.config.router_settings
        defaults: dict[str, Any] = {}
        timeout = settings.timeout or self.config.litellm_settings.request_timeout
        if params.timeout is None and timeout:
            defaults["timeout"] = timeout
        if params.stream_timeout is None and settings.stream_timeout:
            defaults["stream_timeout"] = settings.stream_timeout
        if params.drop_params is None:
            defaults["drop_params"] = bool(self.config.litellm_settings.drop_params)
        if defaults:
            params = params.model_copy(update=defaults)
        spec = DeploymentSpec(provider_name, upstream, params, entry.model_info)
        provider = build_provider(spec, self._transport)
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

    def knows(self, model: str) -> bool:
        """Whether `model` is served: a group, an alias, a wildcard match, or (for an SDK
        Router without a model list) any `provider/model`."""
        return self._groups.knows(model) or (self.allow_ad_hoc_models and "/" in model)

    def resolve(self, model: str) -> str:
        """The group a client's model name is served by (aliases followed); NotFound for
        a name no group serves."""
        self._groups.group(model)
        return self._groups.canonical(model)

    def price_facts(self, group: str) -> tuple[str, str, str]:
        """(provider, upstream model, deployment id) of a group's first deployment: what a
        call to the group is priced as before it is routed."""
        first = self.group(group)[0]
        return first.spec.provider, first.spec.upstream_model, first.id

    def pick(self, model: str) -> Deployment:
        """One deployment of the group by weight, ignoring state (for inspection and tests)."""
        return simple_shuffle(self.group(model), {}, False, self._rng)

    # -- the model API ------------------------------------------------------------------------

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        """One whole response from a deployment of the call's model (retried, fallen back)."""
        self.group(call.model)  # an unknown model fails here, before any attempt

        async def attempt(d: Deployment) -> GenerateContentResponse:
            sent = request if call.prepare is None else await call.prepare.generate(d, request)
            return await self._timed(call, d, d.provider.generate(call, sent))

        response, lease = await self._dispatch.run(call, attempt, stream=False)
        await lease.finish(None, tokens=_tokens(response))
        return response

    async def stream(
        self, call: Call, request: GenerateContentRequest
    ) -> AsyncIterator[GenerateContentResponse]:
        """The response as chunks, relayed as the upstream sends them.

        Retries and fallbacks happen only until the first chunk; a failure after it ends
        the stream with the error (the edge sends it as a final error event).
        """
        self.group(call.model)
        error: GenrouteError | None = None
        lease = None
        iterator: AsyncIterator[GenerateContentResponse] | None = None
        ttft: float | None = None
        tokens = 0

        async def attempt(d: Deployment) -> Stream:
            sent = request if call.prepare is None else await call.prepare.generate(d, request)
            chunks = aiter(d.provider.stream(call, sent))
            started = time.perf_counter()
            try:
                async with deadline(
                    d.spec.stream_timeout, f"deployment {d.id} (first chunk)", call
                ):
                    return await anext(chunks), chunks
            except StopAsyncIteration:  # an HTML page, say, where SSE events were due
                raise UpstreamMalformed(
                    f"deployment {d.id}: the upstream's stream ended without a single chunk",
                    provider=d.spec.provider,
                ) from None
            except BaseException:
                await aclose_quietly(chunks)
                raise
            finally:
                call.route.upstream_seconds += time.perf_counter() - started

        route = call.route
        try:
            (first, iterator), lease = await self._dispatch.run(call, attempt, stream=True)
            ttft = time.perf_counter() - lease.attempt.started
            if first is not None:
                tokens = _tokens(first) or tokens
                yield first
            gap = lease.deployment.spec.stream_timeout  # the longest wait for a next chunk
            watchdog = Watchdog()  # one timer for every wait, not one per chunk
            try:
                while True:
                    waited = time.perf_counter()
                    remaining = call.remaining(waited)
                    watchdog.arm(gap if remaining is None else min(gap, remaining))
                    try:
                        chunk = await anext(iterator)
                    except StopAsyncIteration:
                        break
                    except asyncio.CancelledError:
                        if watchdog.expired():
                            raise _gap_timeout(lease.deployment.id, gap, remaining) from None
                        raise
                    finally:
                        watchdog.disarm()
                        route.upstream_seconds += time.perf_counter() - waited
                    tokens = _tokens(chunk) or tokens
                    yield chunk
            finally:
                watchdog.close()
        except GenrouteError as exc:
            error = exc
            raise
        except BaseException:
            error = cancelled()
            raise
        finally:
            if iterator is not None:
                await aclose_quietly(iterator)
            if lease is not None:
                await lease.finish(error, tokens=tokens, ttft=ttft)

    async def count_tokens(self, call: Call, request: CountTokensRequest) -> CountTokensResponse:
        """Token count of the request's contents for the call's model."""

        async def count(d: Deployment) -> CountTokensResponse:
            sent = request if call.prepare is None else await call.prepare.count_tokens(d, request)
            return await d.provider.count_tokens(call, sent)

        return await self._simple(call, count)

    async def embed(self, call: Call, request: EmbedContentRequest) -> EmbedContentResponse:
        """One embedding."""
        return await self._simple(call, lambda d: d.provider.embed(call, request))

    async def batch_embed(
        self, call: Call, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        """One embedding per inner request, in order."""
        return await self._simple(call, lambda d: d.provider.batch_embed(call, request))

    async def _simple(self, call: Call, op: Callable[[Deployment], Awaitable[T]]) -> T:
        self.group(call.model)

        async def attempt(d: Deployment) -> T:
            return await self._timed(call, d, op(d))

        result, lease = await self._dispatch.run(call, attempt, stream=False, measure=False)
        await lease.finish(None)
        return result

    @staticmethod
    async def _timed(call: Call, d: Deployment, work: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            async with deadline(d.spec.timeout, f"deployment {d.id}", call):
                return await work
        finally:
            call.route.upstream_seconds += time.perf_counter() - started

    # -- health ------------------------------------------------------------------------------

    async def health(self, wildcard_limit: int = HEALTH_WILDCARD_LIMIT) -> dict[str, Any]:
        """Each deployment's recent health: cooling down or not, load, latency (no calls).
        Every configured deployment is listed, and those of the `wildcard_limit` most
        recently used wildcard names."""
        deployments, omitted = self._groups.listed_deployments(wildcard_limit)
        stats = await self.state.snapshot(list(dict.fromkeys(d.id for d in deployments)))
        return health_report(deployments, stats, self.state.backend, omitted)

    # -- models list -------------------------------------------------------------------------

    def describe(self, name: str) -> Model:
        """The Google `Model` resource for a served name: an alias describes its target,
        a wildcard entry (`gemini-*`) its pattern, without resolving it. Methods, token
        limits and `thinking` come from the model facts (`genroute.providers.models`),
        `model_info` winning; a limit nothing gives is left out."""
        name = normalise_model_name(name)
        entry = self._entry_for(name)
        info = entry.model_info
        is_demo = entry.params.model.startswith("demo/")
        facts = _facts(entry)
        methods = EMBED_METHODS if facts.mode == "embedding" else GENERATE_METHODS
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
            input_token_limit=facts.input_token_limit(),
            output_token_limit=facts.output_limit,
            supported_generation_methods=methods,
            thinking=facts.reasons if facts.mode == "chat" else None,
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

    async def aclose(self) -> None:
        """Close the pooled HTTP connections and the state's connections."""
        await self._transport.aclose()
        await self.state.aclose()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _facts(entry: ModelEntry) -> ModelFacts:
    """The model facts of a model_list entry (a wildcard entry's pattern included)."""
    try:
        provider, upstream = split_model(entry.params.model)
    except InvalidRequest:  # a wildcard entry no call has resolved yet may name anything
        provider, upstream = "", entry.params.model
    return model_facts(provider, upstream, entry.model_info)


def _sleep(sleep: Sleep | None) -> dict[str, Sleep]:
    return {} if sleep is None else {"sleep": sleep}
