"""`genroute.Client`: google-genai call shapes in front of the pipeline the proxy runs.

    client = genroute.Client(model_list=[{"model_name": "fast",
                                         "params": {"model": "gemini/gemini-2.5-flash"}}])
    response = await client.agenerate_content(model="fast", contents="Hello")
    print(response.text, genroute.response_cost(response))
    await client.aclose()

A Client owns its pipeline (observability when asked for, metering, the Router and its
pooled connections), the event-loop thread its blocking methods run on, and its callbacks.
Use one Client either from async code or through the blocking methods, not both: its
connections belong to the event loop that first used them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from genroute.call import Call, Caller, Operation
from genroute.config import Config, ModelEntry, ObservabilitySettings, config_from_data
from genroute.cost import Pricer
from genroute.errors import InvalidRequest
from genroute.observability import Observability
from genroute.pipeline import Pipeline, build_pipeline
from genroute.providers.transport import Transport
from genroute.routing import Router, normalise_model_name
from genroute.sdk.convert import (
    build_count_request,
    build_embed_request,
    build_request,
    to_genai_count,
    to_genai_embed,
    to_genai_response,
)
from genroute.sdk.loop import LoopThread
from genroute.wire import GenerateContentResponse

if TYPE_CHECKING:
    from google.genai import types

__all__ = ["COST_ATTRIBUTE", "DEPLOYMENT_KWARGS", "Client", "response_cost"]

COST_ATTRIBUTE = "_genroute_cost"
R = TypeVar("R")
# Keywords that configure a deployment: only the one-off functions take them per call.
DEPLOYMENT_KWARGS = frozenset(
    {"api_key", "api_base", "api_version", "timeout", "stream_timeout", "extra_headers"}
)


def response_cost(response: Any) -> float | None:
    """The cost in USD of a response (or the usage-carrying stream chunk) the SDK returned.

    None means no usage was reported; 0.0 with a logged warning means the model has no
    known price."""
    value = getattr(response, COST_ATTRIBUTE, None)
    return float(value) if value is not None else None


def _caller(kwargs: dict[str, Any]) -> Caller:
    """Who the call is for: `user=` names the end user, as in LiteLLM and OpenAI;
    `metadata=` is carried into logs and callbacks."""
    user = kwargs.pop("user", None)
    metadata = kwargs.pop("metadata", None)
    return Caller(end_user=str(user) if user else None, metadata=dict(metadata or {}))


class Client:
    """google-genai's generate/stream/count/embed calls, through genroute's pipeline."""

    def __init__(
        self,
        model_list: Iterable[Mapping[str, Any] | ModelEntry] | None = None,
        *,
        config: Config | None = None,
        router_settings: Mapping[str, Any] | None = None,
        callbacks: Sequence[Any] = (),
        observability: Mapping[str, Any] | ObservabilitySettings | Observability | None = None,
        allow_ad_hoc_models: bool | None = None,
        router: Router | None = None,
        transport: Transport | None = None,
        pricer: Pricer | None = None,
    ) -> None:
        if config is None:
            entries = [
                e.model_dump(by_alias=False) if isinstance(e, ModelEntry) else dict(e)
                for e in model_list or []
            ]
            config = config_from_data(
                {"model_list": entries, "router_settings": dict(router_settings or {})},
                source="genroute.Client(...)",
            )
        if router is None:
            router = Router(
                config=config, allow_ad_hoc_models=allow_ad_hoc_models, transport=transport
            )
        obs = observability
        if obs is not None and not isinstance(obs, Observability):
            obs = Observability.from_settings(obs, litellm_settings=config.litellm_settings)
        self.config = config
        self.pipeline: Pipeline = build_pipeline(
            config,
            router=router,
            server=False,
            observability=obs,
            callbacks=callbacks,
            pricer=pricer,
        )
        self._loop: LoopThread | None = None
        self._closed = False

    @property
    def router(self) -> Router:
        """The Router behind this client (groups, health, the models list)."""
        return self.pipeline.router

    # -- async ------------------------------------------------------------------------------

    def _call(self, operation: Operation, model: str, kwargs: dict[str, Any]) -> Call:
        given = sorted(DEPLOYMENT_KWARGS & kwargs.keys())
        if given:
            raise InvalidRequest(
                f"{', '.join(given)}: per-call deployment settings are not allowed on a "
                "genroute.Client; put them in its model_list"
            )
        return Call(operation, normalise_model_name(model), _caller(kwargs))

    def _with_cost(self, response: R, call: Call, wire: GenerateContentResponse) -> R:
        usage = wire.usage_metadata
        if usage is None:
            return response
        route = call.route
        cost = self.pipeline.pricer.cost(
            usage, route.provider, route.provider_model, route.deployment_id, route.group
        ).usd
        setattr(response, COST_ATTRIBUTE, cost)
        return response

    async def agenerate_content(
        self, *, model: str, contents: Any, config: Any = None, **kwargs: Any
    ) -> types.GenerateContentResponse:
        """Generate a whole response; takes and returns google-genai types."""
        call = self._call(Operation.GENERATE, model, kwargs)
        request = build_request(contents, config, kwargs)
        wire = await self.pipeline.generate(call, request)
        return self._with_cost(to_genai_response(wire), call, wire)

    async def agenerate_content_stream(
        self, *, model: str, contents: Any, config: Any = None, **kwargs: Any
    ) -> AsyncIterator[types.GenerateContentResponse]:
        """Await this to get an async iterator of chunks (`async for chunk in await ...`)."""
        call = self._call(Operation.STREAM, model, kwargs)
        request = build_request(contents, config, kwargs)
        return self._chunks(call, request)

    async def _chunks(self, call: Call, request: Any) -> AsyncIterator[Any]:
        async for chunk in self.pipeline.stream(call, request):
            yield self._with_cost(to_genai_response(chunk), call, chunk)

    async def acount_tokens(
        self, *, model: str, contents: Any, config: Any = None, **kwargs: Any
    ) -> types.CountTokensResponse:
        """The token count of `contents` (and `config`'s system instruction and tools)."""
        call = self._call(Operation.COUNT_TOKENS, model, kwargs)
        request = build_count_request(contents, config, kwargs)
        return to_genai_count(await self.pipeline.count_tokens(call, request))

    async def aembed_content(
        self, *, model: str, contents: Any, config: Any = None, **kwargs: Any
    ) -> types.EmbedContentResponse:
        """One embedding per content (a string, or a list of strings or contents)."""
        call = self._call(Operation.BATCH_EMBED, model, kwargs)
        request = build_embed_request(model, contents, config, kwargs)
        return to_genai_embed(await self.pipeline.batch_embed(call, request))

    # -- blocking ---------------------------------------------------------------------------

    def _thread(self) -> LoopThread:
        if self._closed:
            raise InvalidRequest("this genroute.Client is closed")
        if self._loop is None:
            self._loop = LoopThread()
        return self._loop

    def generate_content(
        self, *, model: str, contents: Any, config: Any = None, **kwargs: Any
    ) -> types.GenerateContentResponse:
        """Blocking generateContent; safe to call from code that already runs a loop."""
        work = self.agenerate_content(model=model, contents=contents, config=config, **kwargs)
        return self._thread().run(work)

    def generate_content_stream(
        self, *, model: str, contents: Any, config: Any = None, **kwargs: Any
    ) -> Iterator[types.GenerateContentResponse]:
        """Blocking stream for a plain `for` loop; chunks arrive as the upstream sends them."""
        loop = self._thread()
        chunks = loop.run(
            self.agenerate_content_stream(model=model, contents=contents, config=config, **kwargs)
        )
        return loop.iterate(chunks)

    def count_tokens(
        self, *, model: str, contents: Any, config: Any = None, **kwargs: Any
    ) -> types.CountTokensResponse:
        """Blocking countTokens."""
        work = self.acount_tokens(model=model, contents=contents, config=config, **kwargs)
        return self._thread().run(work)

    def embed_content(
        self, *, model: str, contents: Any, config: Any = None, **kwargs: Any
    ) -> types.EmbedContentResponse:
        """Blocking embeddings."""
        work = self.aembed_content(model=model, contents=contents, config=config, **kwargs)
        return self._thread().run(work)

    # -- lifecycle --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Flush callbacks and logs, close pooled connections; safe to call twice."""
        self._closed = True
        await self.pipeline.aclose()

    def close(self) -> None:
        """Blocking `aclose`, and stop the thread the blocking methods ran on."""
        if self._loop is None:
            if not self._closed:
                LoopThread.run_once(self.aclose())
            return
        loop, self._loop = self._loop, None
        try:
            loop.run(self.aclose())
        finally:
            loop.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
