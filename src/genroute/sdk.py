"""The Python SDK: google-genai call shapes in, `google.genai.types` responses out.

    response = await genroute.agenerate_content(
        model="gemini/gemini-2.5-flash", contents="Hello", max_tokens=100)
    print(response.text, response.usage_metadata)

`model` is `provider/model`, or a `model_name` of the Router passed as `router=`.
`contents` and `config` take what google-genai takes (str, dicts, `types.Content`,
`types.GenerateContentConfig`, ...). Conveniences such as `max_tokens`, `temperature`,
`api_key` and `api_base` may be given as keyword arguments.

Every response the SDK returns carries its cost in USD: `genroute.response_cost(response)`
(for a stream, on the chunk that carries the usage, normally the last). None means no
usage was reported; 0.0 with a logged warning means the model has no known price.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from genroute.context import CallContext
from genroute.cost import Pricer, pricer_for
from genroute.errors import InvalidRequest
from genroute.genai_convert import build_request, to_genai_response
from genroute.loop_thread import LoopThread
from genroute.router import Router

if TYPE_CHECKING:
    from google.genai import types

COST_ATTRIBUTE = "_genroute_cost"
# Prices one-off calls (whose Router lives for one call), so unknown models log once.
_ONE_OFF_PRICER = Pricer()

# keyword → DeploymentParams field, for one-off calls without a Router.
_DEPLOYMENT_KWARGS = {
    "api_key",
    "api_base",
    "api_version",
    "timeout",
    "stream_timeout",
    "extra_headers",
}


def _context(kwargs: dict[str, Any]) -> CallContext:
    """The call's context; `user=` names the end user, as in LiteLLM and OpenAI."""
    user = kwargs.pop("user", None)
    metadata = kwargs.pop("metadata", None)
    return CallContext(end_user=str(user) if user else None, metadata=dict(metadata or {}))


def _split_kwargs(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    deployment = {
        k: kwargs.pop(k) for k in list(kwargs) if k in _DEPLOYMENT_KWARGS and kwargs[k] is not None
    }
    for k in _DEPLOYMENT_KWARGS & set(kwargs):
        kwargs.pop(k)
    return deployment, kwargs


def _one_off_router(model: str, deployment: dict[str, Any]) -> Router:
    return Router(
        [{"model_name": model, "params": {"model": model, **deployment}}],
        allow_ad_hoc_models=False,
    )


def _router_for(
    model: str, router: Router | None, deployment: dict[str, Any]
) -> tuple[Router, bool]:
    """The Router to use and whether this call owns (and must close) it."""
    if router is None:
        return _one_off_router(model, deployment), True
    if deployment:
        raise InvalidRequest(
            f"{', '.join(sorted(deployment))}: per-call deployment settings are not allowed with a "
            "Router; put them in its model_list"
        )
    return router, False


def response_cost(response: Any) -> float | None:
    """The cost in USD of a response (or the usage-carrying stream chunk) the SDK returned."""
    value = getattr(response, COST_ATTRIBUTE, None)
    return float(value) if value is not None else None


def _pricer(router: Router, owned: bool) -> Pricer:
    if owned:
        return _ONE_OFF_PRICER
    pricer = getattr(router, "_sdk_pricer", None)
    if pricer is None:
        pricer = pricer_for(router.config.model_list)
        router._sdk_pricer = pricer  # type: ignore[attr-defined]
    return pricer


def _with_cost(
    response: types.GenerateContentResponse, ctx: CallContext, pricer: Pricer, wire: Any
) -> types.GenerateContentResponse:
    usage = wire.usage_metadata
    if usage is None:
        return response
    if ctx.cost is not None and ctx.finished_at is not None:
        cost = ctx.cost
    else:
        cost = pricer.cost(
            usage, ctx.provider, ctx.provider_model, ctx.deployment_id, ctx.model_group
        ).usd
        if ctx.cost is None and not ctx.stream:
            ctx.cost = cost
    setattr(response, COST_ATTRIBUTE, cost)
    return response


async def agenerate_content(
    *, model: str, contents: Any, config: Any = None, router: Router | None = None, **kwargs: Any
) -> types.GenerateContentResponse:
    """Generate a whole response asynchronously."""
    ctx = _context(kwargs)
    deployment, kwargs = _split_kwargs(kwargs)
    request = build_request(contents, config, kwargs)
    use, owned = _router_for(model, router, deployment)
    try:
        wire = await use.generate(model, request, ctx)
        return _with_cost(to_genai_response(wire), ctx, _pricer(use, owned), wire)
    finally:
        if owned:
            await use.aclose()


async def _stream(
    use: Router, owned: bool, model: str, request: Any, ctx: CallContext
) -> AsyncIterator[types.GenerateContentResponse]:
    try:
        pricer = _pricer(use, owned)
        async for chunk in use.stream(model, request, ctx):
            yield _with_cost(to_genai_response(chunk), ctx, pricer, chunk)
    finally:
        if owned:
            await use.aclose()


async def agenerate_content_stream(
    *, model: str, contents: Any, config: Any = None, router: Router | None = None, **kwargs: Any
) -> AsyncIterator[types.GenerateContentResponse]:
    """Await this to get an async iterator of chunks (`async for chunk in await ...`)."""
    ctx = _context(kwargs)
    deployment, kwargs = _split_kwargs(kwargs)
    request = build_request(contents, config, kwargs)
    use, owned = _router_for(model, router, deployment)
    return _stream(use, owned, model, request, ctx)


def _loop_for(router: Router | None) -> tuple[LoopThread, bool]:
    if router is None:
        return LoopThread(), True
    loop = getattr(router, "_sdk_loop", None)
    if loop is None:
        loop = LoopThread()
        router._sdk_loop = loop  # type: ignore[attr-defined]
    return loop, False


def generate_content(
    *, model: str, contents: Any, config: Any = None, router: Router | None = None, **kwargs: Any
) -> types.GenerateContentResponse:
    """Blocking generateContent; safe to call from code that already runs an event loop."""
    loop, owned = _loop_for(router)
    try:
        return loop.run(
            agenerate_content(
                model=model, contents=contents, config=config, router=router, **kwargs
            )
        )
    finally:
        if owned:
            loop.close()


def generate_content_stream(
    *, model: str, contents: Any, config: Any = None, router: Router | None = None, **kwargs: Any
) -> Iterator[types.GenerateContentResponse]:
    """Blocking stream for a plain `for` loop; chunks arrive as the upstream sends them."""
    loop, owned = _loop_for(router)
    try:
        agen = loop.run(
            agenerate_content_stream(
                model=model, contents=contents, config=config, router=router, **kwargs
            )
        )
    except BaseException:
        if owned:
            loop.close()
        raise
    return _iterate(loop, owned, agen)


def _iterate(
    loop: LoopThread, owned: bool, agen: AsyncIterator[types.GenerateContentResponse]
) -> Iterator[types.GenerateContentResponse]:
    try:
        yield from loop.iterate(agen)
    finally:
        if owned:
            loop.close()


__all__ = [
    "agenerate_content",
    "agenerate_content_stream",
    "generate_content",
    "generate_content_stream",
    "response_cost",
]
