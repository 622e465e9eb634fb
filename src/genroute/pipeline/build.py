"""Composing the pipeline from a config: which layers, in which order, sharing what.

`build_pipeline` builds the Router (the providers behind it), the pricer, and the
governance and observability the config turns on, then wraps them outermost first:

    Observed      when any log, metric, trace or callback is on
    Governed      when a master key or a database is configured (proxy), never in the SDK
    Metered       always: usage and cost of every call
    Cached        with litellm_settings.cache: answers kept for next time (genroute.cache)
    Resolved      in the proxy: uploaded files and cached contents named in requests
    Router        model groups, strategies, retries, fallbacks, cooldowns

`Pipeline` serves the same five methods as the outermost layer, and owns the start-up
(database migrations, the ledger writer) and the shutdown (flushing every queue, closing
connections) of everything it built.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from genroute.cache import Cached, ResponseCache, build_cache
from genroute.call import Call, ModelAPI
from genroute.config import Config
from genroute.cost import Pricer, has_custom_prices, pricer_for, warm_catalogue
from genroute.governance import Governance, Governed, build_governance, database_url
from genroute.observability import Observability, Observed
from genroute.observability.metrics import router_cooldowns
from genroute.pipeline.metering import Metered
from genroute.resources import Resolved, Resources, build_resources
from genroute.routing import Router
from genroute.store import default_url
from genroute.store.engine import is_sqlite
from genroute.wire import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    CountTokensRequest,
    CountTokensResponse,
    EmbedContentRequest,
    EmbedContentResponse,
    GenerateContentRequest,
    GenerateContentResponse,
)

__all__ = ["Pipeline", "build_pipeline"]


class Pipeline:
    """The composed layers, and what they need started and closed."""

    generate: Callable[[Call, GenerateContentRequest], Coroutine[Any, Any, GenerateContentResponse]]
    stream: Callable[[Call, GenerateContentRequest], AsyncIterator[GenerateContentResponse]]
    count_tokens: Callable[[Call, CountTokensRequest], Coroutine[Any, Any, CountTokensResponse]]
    embed: Callable[[Call, EmbedContentRequest], Coroutine[Any, Any, EmbedContentResponse]]
    batch_embed: Callable[
        [Call, BatchEmbedContentsRequest], Coroutine[Any, Any, BatchEmbedContentsResponse]
    ]

    def __init__(
        self,
        api: ModelAPI,
        *,
        router: Router,
        pricer: Pricer,
        governance: Governance | None = None,
        observability: Observability | None = None,
        cache: ResponseCache | None = None,
        resources: Resources | None = None,
    ) -> None:
        self.api = api
        self.resources = resources
        self.router = router
        self.pricer = pricer
        self.governance = governance
        self.observability = observability
        self.cache = cache
        # The outermost layer's own methods: no extra frame per call.
        self.generate = api.generate
        self.stream = api.stream
        self.count_tokens = api.count_tokens
        self.embed = api.embed
        self.batch_embed = api.batch_embed
        self._started = False
        self._closed = False

    def warm_prices(self) -> None:
        """Reads the prices of every configured model now (`genroute.cost.warm_catalogue`),
        so that the server's first calls do not wait for genai-prices' catalogue to load."""
        models: dict[tuple[str | None, str], None] = {}
        for name in self.router.model_names:
            if "*" in name:
                continue
            for deployment in self.router.group(name):
                if not has_custom_prices(deployment.spec.model_info):
                    models[(deployment.spec.provider, deployment.spec.upstream_model)] = None
        warm_catalogue(models)

    async def start(self) -> None:
        """Migrate the database and start background writers (idempotent)."""
        if self._started:
            return
        self._started = True
        if self.governance is not None:
            await self.governance.start()
        if self.cache is not None:
            await self.cache.start()
        if self.resources is not None:
            self.resources.start()

    async def aclose(self) -> None:
        """Write every queued ledger row, flush logs, callbacks and traces, close
        connections; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self.resources is not None:  # first: its batches run through the layers below
            await self.resources.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        if self.governance is not None:
            await self.governance.aclose()
        if self.observability is not None:
            await self.observability.aclose()
        await self.router.aclose()


def _resources(config: Config, gov: Governance | None) -> Resources:
    """Uploaded files over the governance store's database (else the default SQLite file),
    kept next to the config file (else next to that database, else here)."""
    source = Path(config.source)
    base = source.parent if source.is_file() else None
    url = database_url(config) or default_url(base)
    if base is None and is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            base = Path(database).expanduser().parent
    if gov is None:
        return build_resources(config, url, base or Path.cwd())
    return build_resources(
        config, url, base or Path.cwd(), engine=gov.store.engine, is_master=gov.is_master
    )


def build_pipeline(
    config: Config,
    *,
    router: Router | None = None,
    server: bool = True,
    governance: Governance | bool | None = None,
    observability: Observability | None = None,
    callbacks: Sequence[Any] = (),
    pricer: Pricer | None = None,
) -> Pipeline:
    """The pipeline for a config.

    `server`: the proxy's pipeline (governance and observability from the config) or the
    SDK's (neither, unless given). `governance`: None builds it from the config when
    `server` is true, False turns it off, or give one. `observability`: built from the
    config (proxy) unless given; `callbacks` are added to it."""
    if router is None:
        router = Router.from_config(config, allow_ad_hoc_models=False if server else None)
    pricer = pricer or pricer_for(config.model_list)
    gov: Governance | None
    if isinstance(governance, Governance):
        gov = governance
    elif governance is None and server:
        gov = build_governance(config)
    else:
        gov = None
    obs = observability
    if obs is None:
        obs = Observability.from_config(config, server=True) if server else Observability()
    if callbacks:
        obs.add_callbacks(callbacks)
    if obs.metrics is not None:
        obs.metrics.set_cooldown_source(router_cooldowns(router))
        if gov is not None:
            obs.metrics.add_values(gov.metrics)
    resources = _resources(config, gov) if server else None
    api: ModelAPI = router
    if resources is not None:
        charge = gov.charge if gov is not None else None  # a cache's storage, in the ledger
        api = Resolved(
            api, resources.files, resources.caches, resources.access, resources.traffic, charge
        )
    cache = build_cache(config, router, pricer, gov.cache_controls if gov is not None else None)
    if cache is not None:
        api = Cached(api, cache)
        if obs.metrics is not None:
            obs.metrics.add_values(cache.metrics)
    api = Metered(api, pricer)
    if gov is not None:
        api = Governed(api, gov, router, pricer)
    if obs.enabled:
        api = Observed(api, obs)
    if cache is not None:
        cache.embedder = api  # the semantic cache embeds prompts through the whole pipeline
    if resources is not None:
        resources.runner.api = api  # batches run through the whole pipeline
    return Pipeline(
        api,
        router=router,
        pricer=pricer,
        governance=gov,
        observability=obs if obs.enabled else None,
        cache=cache,
        resources=resources,
    )
