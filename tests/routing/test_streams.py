"""Streams fall back only before their first chunk; after it, a failure ends the stream."""

from __future__ import annotations

import pytest

from genroute.call import Call
from genroute.errors import GenrouteError
from genroute.routing import Router
from genroute.wire import GenerateContentResponse
from tests.calls import call
from tests.fakes.gemini_upstream import FakeGemini, build_stream_chunks
from tests.routing.conftest import REQUEST, entry, gemini, make_router


def router_with_backup(fake: FakeGemini, **params: object) -> Router:
    return make_router(
        [entry("g", gemini(fake, **params), "primary"), entry("backup", {"model": "demo/x"}, "b")],
        fallbacks=[{"g": ["backup"]}],
    )


async def collect(router: Router, ctx: Call) -> list[GenerateContentResponse]:
    return [chunk async for chunk in router.stream(ctx, REQUEST)]


def text(chunks: list[GenerateContentResponse]) -> str:
    return "".join(
        p.text or ""
        for c in chunks
        for cand in c.candidates or []
        for p in cand.content.parts or []
    )  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["error", "drop_before"])
async def test_failure_before_the_first_chunk_falls_back(
    fakes: list[FakeGemini], kind: str
) -> None:
    fake = fakes[0]
    if kind == "error":
        fake.script("error", code=503)
    else:
        fake.script("drop", after=0)
    router = router_with_backup(fake)
    chunks = await collect(router, ctx := call("g", stream=True))
    assert text(chunks).startswith("This is the genroute demo model")
    route = ctx.route
    assert route.fallbacks == ["backup"] and route.deployment_id == "b" and len(route.attempts) == 2


async def test_no_first_chunk_within_stream_timeout_falls_back(fakes: list[FakeGemini]) -> None:
    fake = fakes[0]
    fake.script("delay", seconds=0.5)
    router = router_with_backup(fake, stream_timeout=0.05)
    chunks = await collect(router, ctx := call("g", stream=True))
    assert chunks and ctx.route.fallbacks == ["backup"]
    assert ctx.route.attempts[0].error_status == "DEADLINE_EXCEEDED"
    assert ctx.route.attempts[1].ok


@pytest.mark.parametrize("kind", ["stream_error", "drop"])
async def test_failure_after_the_first_chunk_ends_the_stream(
    fakes: list[FakeGemini], kind: str
) -> None:
    fake = fakes[0]
    fake.script(kind, after=1, **({"code": 500} if kind == "stream_error" else {}))
    router = router_with_backup(fake)
    received: list[GenerateContentResponse] = []
    with pytest.raises(GenrouteError) as info:
        async for chunk in router.stream(ctx := call("g", stream=True), REQUEST):
            received.append(chunk)
    expected = build_stream_chunks(fake.requests[0].body, "gemini-2.5-flash")[:1]
    assert len(received) == 1 and text(received) == "".join(
        p.get("text", "") for p in expected[0]["candidates"][0]["content"]["parts"]
    )
    # never spliced with another answer
    assert ctx.route.fallbacks == [] and len(ctx.route.attempts) == 1
    assert info.value.code >= 500 and ctx.route.attempts[0].error_code == info.value.code


async def test_stream_usage_counts_tokens_and_releases(fakes: list[FakeGemini]) -> None:
    router = make_router([entry("g", gemini(fakes[0], tpm=100000), "a")])
    await collect(router, call("g", stream=True))
    stats = (await router.state.snapshot(["a"]))["a"]
    assert stats.in_flight == 0 and stats.tpm_used > 0 and stats.ttft is not None


async def test_abandoned_stream_releases_without_a_failure(fakes: list[FakeGemini]) -> None:
    fakes[0].script("slow_stream", interval=0.05, max_chunks=50)
    router = make_router(
        [entry("g", gemini(fakes[0]), "a"), entry("g", gemini(fakes[1]), "b")], allowed_fails=0
    )
    stream = router.stream(ctx := call("g", stream=True), REQUEST)
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    health = await router.health()
    assert health["unhealthy_count"] == 0
    assert all(e["in_flight"] == 0 for e in health["healthy_endpoints"])
    assert ctx.route.attempts[0].error_code == 499
