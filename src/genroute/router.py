"""The Router: model groups, deployment choice, and the one generate/stream interface.

A model name is a group of deployments (`model_list` entries sharing a `model_name`).
Names may contain `*` wildcards (`gemini-*` → `gemini/gemini-*`), and
`router_settings.model_group_alias` maps the names clients send on their own to a group.
The proxy and the SDK share this class.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from genroute.config import Config, DeploymentParams, ModelEntry, config_from_data
from genroute.context import CallContext
from genroute.errors import GenrouteError, InvalidRequest, NotFound
from genroute.hooks import CallHook, run_after, run_before
from genroute.http_pool import HttpPool
from genroute.providers.base import DeploymentSpec, Provider
from genroute.providers.demo.provider import DEMO_NOTICE
from genroute.providers.registry import build_provider, split_model
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

GENERATE_METHODS = ["generateContent", "streamGenerateContent", "countTokens"]
EMBED_METHODS = ["embedContent", "batchEmbedContents", "countTokens"]


@dataclass(slots=True)
class Deployment:
    """One model_list entry, resolved to its provider."""

    model_name: str
    entry: ModelEntry
    spec: DeploymentSpec
    provider: Provider

    @property
    def weight(self) -> float:
        """The simple-shuffle weight: `weight`, else `rpm`, else `tpm`, else 1."""
        p = self.spec.params
        for value in (p.weight, p.rpm, p.tpm):
            if value is not None:
                return float(value)
        return 1.0


def normalise_model_name(name: str) -> str:
    """Drop the `models/` prefix the SDKs add; keep any `/` inside the id."""
    name = name.strip()
    return name[len("models/") :] if name.startswith("models/") else name


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + "(.*)".join(re.escape(p) for p in pattern.split("*")) + "$")


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
        self._http = http or HttpPool()
        self._rng = random.Random()
        self._groups: dict[str, list[Deployment]] = {}
        self._patterns: list[tuple[re.Pattern[str], ModelEntry]] = []
        self._aliases = dict(config.router_settings.model_group_alias)
        # An SDK Router without a config may call any `provider/model` directly.
        self.allow_ad_hoc_models = (
            not config.model_list if allow_ad_hoc_models is None else allow_ad_hoc_models
        )
        for entry in config.model_list:
            if "*" in entry.model_name:
                self._patterns.append((_wildcard(entry.model_name), entry))
            else:
                self._groups.setdefault(entry.model_name, []).append(
                    self._deploy(entry.model_name, entry)
                )

    @classmethod
    def from_config(cls, config: Config, **kwargs: Any) -> Router:
        """A Router for a loaded Config."""
        return cls(config=config, **kwargs)

    def _deploy(self, model_name: str, entry: ModelEntry) -> Deployment:
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
        return Deployment(model_name, entry, spec, build_provider(spec, self._http))

    # -- resolution -------------------------------------------------------------------------

    @property
    def model_names(self) -> list[str]:
        """Every concrete group name, then wildcard patterns, then aliases."""
        patterns = [entry.model_name for _, entry in self._patterns]
        return [*self._groups, *patterns, *self._aliases]

    def group(self, model: str) -> list[Deployment]:
        """The deployments serving `model`; raises NotFound for an unknown name."""
        name = normalise_model_name(model)
        if not name:
            raise InvalidRequest("model: the model name is empty")
        found = self._groups.get(name)
        if found is not None:
            return found
        alias = self._aliases.get(name)
        if alias is not None:
            return self.group(alias)
        for pattern, entry in self._patterns:
            match = pattern.match(name)
            if match:
                upstream = entry.params.model
                for captured in match.groups():
                    upstream = upstream.replace("*", captured, 1)
                concrete = entry.model_copy(
                    update={"params": entry.params.model_copy(update={"model": upstream})}
                )
                deployments = [self._deploy(name, concrete)]
                self._groups[name] = deployments
                return deployments
        if self.allow_ad_hoc_models and "/" in name:
            entry = ModelEntry(model_name=name, params=DeploymentParams(model=name))
            deployments = [self._deploy(name, entry)]
            self._groups[name] = deployments
            return deployments
        raise NotFound(f"model {name!r} is not served here; GET models lists the models that are")

    def pick(self, model: str) -> Deployment:
        """Choose one deployment of the group (simple-shuffle, weighted)."""
        deployments = self.group(model)
        if len(deployments) == 1:
            return deployments[0]
        weights = [d.weight for d in deployments]
        if not any(weights):
            return self._rng.choice(deployments)
        return self._rng.choices(deployments, weights=weights, k=1)[0]

    # -- the generateContent interface -------------------------------------------------------

    def _begin(
        self, model: str, ctx: CallContext | None, operation: str, stream: bool
    ) -> tuple[CallContext, Deployment]:
        ctx = ctx or CallContext()
        ctx.operation, ctx.stream = operation, stream
        deployment = self.pick(model)
        ctx.model_group = deployment.model_name
        ctx.deployment_id = deployment.entry.model_info.id or deployment.spec.params.model
        ctx.provider = deployment.spec.provider
        ctx.provider_model = deployment.spec.upstream_model
        ctx.attempts = 1
        return ctx, deployment

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

    async def generate(
        self, model: str, request: GenerateContentRequest, ctx: CallContext | None = None
    ) -> GenerateContentResponse:
        """One whole response from a deployment of `model`."""
        ctx, deployment = self._begin(model, ctx, "generateContent", False)
        await run_before(self.hooks, ctx, request)
        error: GenrouteError | None = None
        try:
            response = await deployment.provider.generate(request)
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
        """The response as chunks, relayed as the upstream sends them."""
        ctx, deployment = self._begin(model, ctx, "streamGenerateContent", True)
        await run_before(self.hooks, ctx, request)
        error: GenrouteError | None = None
        try:
            async for chunk in deployment.provider.stream(request):
                if ctx.first_token_at is None:
                    ctx.first_token_at = time.perf_counter()
                self._observe(ctx, chunk)
                yield chunk
        except GenrouteError as exc:
            error = exc
            raise
        except (GeneratorExit, asyncio.CancelledError):
            error = GenrouteError("the client went away before the stream ended", code=499)
            raise
        finally:
            self._finish(ctx, error)
            if self.hooks:
                await run_after(self.hooks, ctx, error)

    async def count_tokens(self, model: str, request: CountTokensRequest) -> CountTokensResponse:
        """Token count of the request's contents for `model`."""
        return await self.pick(model).provider.count_tokens(request)

    async def embed_content(self, model: str, request: EmbedContentRequest) -> EmbedContentResponse:
        """One embedding."""
        return await self.pick(model).provider.embed_content(request)

    async def batch_embed_contents(
        self, model: str, request: BatchEmbedContentsRequest
    ) -> BatchEmbedContentsResponse:
        """One embedding per inner request, in order."""
        return await self.pick(model).provider.batch_embed_contents(request)

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
        if name in self._aliases:
            name = self._aliases[name]
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
        """Close the pooled HTTP clients."""
        await self._http.aclose()

    async def __aenter__(self) -> Router:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
