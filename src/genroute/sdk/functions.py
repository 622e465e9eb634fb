"""The module-level SDK functions: one call, one model, no Client to keep.

    response = await genroute.agenerate_content(
        model="gemini/gemini-2.5-flash", contents="Hello", max_tokens=100)
    print(response.text, response.usage_metadata, genroute.response_cost(response))

`model` is `provider/model`. `contents` and `config` take what google-genai takes (str,
dicts, `types.Content`, `types.GenerateContentConfig`, ...); conveniences such as
`max_tokens`, `temperature`, `user` and `metadata` may be given as keyword arguments, and
so may the deployment's `api_key`, `api_base`, `api_version`, `timeout`, `stream_timeout`
and `extra_headers`. Each call builds a one-deployment `Client` and closes it after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from genroute.cost import Pricer
from genroute.sdk.client import DEPLOYMENT_KWARGS, Client
from genroute.sdk.loop import LoopThread

if TYPE_CHECKING:
    from google.genai import types

__all__ = [
    "agenerate_content",
    "agenerate_content_stream",
    "generate_content",
    "generate_content_stream",
]

# Prices every one-off call, so an unknown model's missing price is logged once.
_ONE_OFF_PRICER = Pricer()


def _one_off(model: str, kwargs: dict[str, Any]) -> Client:
    """A Client serving just `model`, with the deployment keywords taken out of kwargs."""
    deployment = {k: kwargs.pop(k) for k in list(kwargs) if k in DEPLOYMENT_KWARGS}
    params = {"model": model, **{k: v for k, v in deployment.items() if v is not None}}
    return Client([{"model_name": model, "params": params}], pricer=_ONE_OFF_PRICER)


async def agenerate_content(
    *, model: str, contents: Any, config: Any = None, **kwargs: Any
) -> types.GenerateContentResponse:
    """Generate a whole response asynchronously."""
    client = _one_off(model, kwargs)
    try:
        return await client.agenerate_content(
            model=model, contents=contents, config=config, **kwargs
        )
    finally:
        await client.aclose()


async def _owned_stream(client: Client, chunks: AsyncIterator[Any]) -> AsyncIterator[Any]:
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
        await client.aclose()


async def agenerate_content_stream(
    *, model: str, contents: Any, config: Any = None, **kwargs: Any
) -> AsyncIterator[types.GenerateContentResponse]:
    """Await this to get an async iterator of chunks (`async for chunk in await ...`)."""
    client = _one_off(model, kwargs)
    try:
        chunks = await client.agenerate_content_stream(
            model=model, contents=contents, config=config, **kwargs
        )
    except BaseException:
        await client.aclose()
        raise
    return _owned_stream(client, chunks)


def generate_content(
    *, model: str, contents: Any, config: Any = None, **kwargs: Any
) -> types.GenerateContentResponse:
    """Blocking generateContent; safe to call from code that already runs an event loop."""
    return LoopThread.run_once(
        agenerate_content(model=model, contents=contents, config=config, **kwargs)
    )


def generate_content_stream(
    *, model: str, contents: Any, config: Any = None, **kwargs: Any
) -> Iterator[types.GenerateContentResponse]:
    """Blocking stream for a plain `for` loop; chunks arrive as the upstream sends them."""
    loop = LoopThread()
    try:
        chunks = loop.run(
            agenerate_content_stream(model=model, contents=contents, config=config, **kwargs)
        )
    except BaseException:
        loop.close()
        raise
    return _iterate(loop, chunks)


def _iterate(loop: LoopThread, chunks: AsyncIterator[Any]) -> Iterator[Any]:
    try:
        yield from loop.iterate(chunks)
    finally:
        loop.close()
