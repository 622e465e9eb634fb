"""The Python SDK: google-genai call shapes in, `google.genai.types` responses out.

    response = await genroute.agenerate_content(
        model="gemini/gemini-2.5-flash", contents="Hello", max_tokens=100)
    print(response.text, response.usage_metadata)

`model` is `provider/model`, or a `model_name` of the Router passed as `router=`.
`contents` and `config` take what google-genai takes (str, dicts, `types.Content`,
`types.GenerateContentConfig`, ...). Conveniences such as `max_tokens`, `temperature`,
`api_key` and `api_base` may be given as keyword arguments.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from genroute.context import CallContext
from genroute.errors import InvalidRequest
from genroute.genai_convert import build_request, to_genai_response
from genroute.loop_thread import LoopThread
from genroute.router import Router

if TYPE_CHECKING:
    from google.genai import types

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


async def agenerate_content(
    *, model: str, contents: Any, config: Any = None, router: Router | None = None, **kwargs: Any
) -> types.GenerateContentResponse:
    """Generate a whole response asynchronously."""
    ctx = _context(kwargs)
    deployment, kwargs = _split_kwargs(kwargs)
    request = build_request(contents, config, kwargs)
    use, owned = _router_for(model, router, deployment)
    try:
        return to_genai_response(await use.generate(model, request, ctx))
    finally:
        if owned:
            await use.aclose()


async def _stream(
    use: Router, owned: bool, model: str, request: Any, ctx: CallContext
) -> AsyncIterator[types.GenerateContentResponse]:
    try:
        async for chunk in use.stream(model, request, ctx):
            yield to_genai_response(chunk)
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
]
