"""Retries, backoff and fallbacks through fake upstreams that fail in scripted ways."""

from __future__ import annotations

import random
from typing import Any

import pytest

from genroute.context import CallContext
from genroute.errors import GenrouteError, UpstreamError, UpstreamTimeout
from genroute.routing.retry import FailureKind, backoff_delay, classify
from genroute.wire import WireModel
from tests.fakes.gemini_upstream import FakeGemini
from tests.routing.conftest import REQUEST, entry, gemini, make_router

CONTEXT_MESSAGE = "The input token count (1200000) exceeds the maximum number of tokens allowed."


class CountingHook:
    def __init__(self) -> None:
        self.before: list[str] = []
        self.after: list[GenrouteError | None] = []

    async def before_call(self, ctx: CallContext, request: WireModel) -> None:
        self.before.append(ctx.request_id)

    async def after_call(self, ctx: CallContext, error: GenrouteError | None) -> None:
        self.after.append(error)


@pytest.mark.parametrize(
    "script",
    [
        {"kind": "error", "code": 500},
        {"kind": "error", "code": 503},
        {"kind": "error", "code": 429, "retry_delay": "0.2s", "headers": {"Retry-After": "0"}},
        {"kind": "drop"},
    ],
    ids=["500", "503", "429", "drop"],
)
async def test_retries_the_same_deployment(fakes: list[FakeGemini], script: dict[str, Any]) -> None:
    fake = fakes[0]
    fake.script(script.pop("kind"), **script)
    router = make_router([entry("g", gemini(fake), "only")], num_retries=2)
    ctx = CallContext()
    response = await router.generate("g", REQUEST, ctx)
    assert response.candidates and ctx.attempts == 2 and len(fake.requests) == 2
    assert [a.error_code is not None for a in ctx.attempt_log] == [True, False]
    assert all(a.ended is not None and a.ended >= a.started for a in ctx.attempt_log)
    await router.aclose()


async def test_timeout_moves_to_another_deployment(fakes: list[FakeGemini]) -> None:
    slow, fast = fakes[0], fakes[1]
    slow.script("delay", seconds=3, times=None)
    router = make_router(
        [
            entry("g", gemini(slow, timeout=0.3, order=1), "slow"),
            entry("g", gemini(fast, order=2), "fast"),
        ],
        num_retries=1,
    )
    ctx = CallContext()
    await router.generate("g", REQUEST, ctx)
    assert [a.deployment_id for a in ctx.attempt_log] == ["slow", "fast"]
    assert ctx.attempt_log[0].error_status == "DEADLINE_EXCEEDED"
    await router.aclose()


async def test_client_errors_are_never_retried(fakes: list[FakeGemini]) -> None:
    fake = fakes[0]
    fake.script("error", code=400, message="Invalid value at 'contents'", times=None)
    router = make_router(
        [entry("g", gemini(fake), "a"), entry("backup", {"model": "demo/x"})],
        num_retries=3,
        fallbacks=[{"g": ["backup"]}],
    )
    ctx = CallContext()
    with pytest.raises(UpstreamError) as info:
        await router.generate("g", REQUEST, ctx)
    assert info.value.code == 400 and ctx.attempts == 1 and len(fake.requests) == 1
    assert ctx.fallbacks == []
    await router.aclose()


async def test_per_deployment_num_retries_overrides(fakes: list[FakeGemini]) -> None:
    fake = fakes[0]
    fake.script("error", code=500, times=None)
    router = make_router([entry("g", gemini(fake, num_retries=0), "a")], num_retries=5)
    with pytest.raises(UpstreamError):
        await router.generate("g", REQUEST)
    assert len(fake.requests) == 1
    await router.aclose()


async def test_retry_after_beyond_the_cap_is_not_waited_for(fakes: list[FakeGemini]) -> None:
    fake = fakes[0]
    fake.script("error", code=429, retry_delay="30s", times=None)
    router = make_router([entry("g", gemini(fake), "a")], num_retries=3, max_retry_backoff=1)
    ctx = CallContext()
    with pytest.raises(UpstreamError) as info:
        await router.generate("g", REQUEST, ctx)
    assert info.value.code == 429 and info.value.retry_after == 30 and ctx.attempts == 1
    await router.aclose()


def test_backoff_is_exponential_jittered_and_capped() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, base=1, cap=100, minimum=0, hinted=None, rng=rng) for n in (1, 2, 3)]
    assert delays[0] is not None and 0.5 <= delays[0] <= 1
    assert delays[1] is not None and 1 <= delays[1] <= 2
    assert delays[2] is not None and 2 <= delays[2] <= 4
    assert backoff_delay(10, base=1, cap=5, minimum=0, hinted=None, rng=rng) == 5
    assert backoff_delay(1, base=0.1, cap=5, minimum=0, hinted=3, rng=rng) == 3
    assert backoff_delay(1, base=0.1, cap=5, minimum=0.5, hinted=None, rng=rng) == 0.5
    assert backoff_delay(1, base=0.1, cap=5, minimum=0, hinted=6, rng=rng) is None


def test_failure_kinds() -> None:
    assert classify(UpstreamError("x", code=429)) is FailureKind.RATE_LIMIT
    assert classify(UpstreamTimeout("x")) is FailureKind.TRANSIENT
    assert classify(UpstreamError("bad", code=400)) is FailureKind.CLIENT
    assert classify(UpstreamError(CONTEXT_MESSAGE, code=400)) is FailureKind.CONTEXT_WINDOW
    assert classify(UpstreamError("content_policy_violation", code=400)) is (
        FailureKind.CONTENT_POLICY
    )
    assert classify(UpstreamError("key", code=403)) is FailureKind.DEPLOYMENT
    assert classify(GenrouteError("bye", code=499)) is FailureKind.CLIENT


async def test_fallback_chain_crosses_providers(fakes: list[FakeGemini]) -> None:
    first, second = fakes[0], fakes[1]
    first.script("error", code=500, times=None)
    second.script("error", code=429, retry_delay="0s", times=None)
    hook = CountingHook()
    router = make_router(
        [
            entry("g1", gemini(first), "g1-gemini"),
            entry("g2", gemini(second), "g2-gemini"),
            entry("g3", {"model": "demo/echo"}, "g3-demo"),
        ],
        num_retries=1,
        fallbacks=[{"g1": ["g2", "g3"]}],
    )
    router.hooks.append(hook)
    ctx = CallContext()
    response = await router.generate("g1", REQUEST, ctx)
    assert response.model_version == "demo/echo"
    assert ctx.fallbacks == ["g2", "g3"] and ctx.model_group == "g3"
    assert ctx.deployment_id == "g3-demo" and ctx.provider == "demo"
    assert [a.deployment_id for a in ctx.attempt_log] == [
        "g1-gemini",
        "g1-gemini",
        "g2-gemini",
        "g2-gemini",
        "g3-demo",
    ]
    assert ctx.attempts == 5 and len(hook.before) == 1 and hook.after == [None]
    await router.aclose()


async def test_default_fallbacks_and_wildcard_key(fakes: list[FakeGemini]) -> None:
    fakes[0].script("error", code=503, times=None)
    router = make_router(
        [entry("g", gemini(fakes[0])), entry("backup", {"model": "demo/x"})],
        default_fallbacks=["backup"],
    )
    ctx = CallContext()
    await router.generate("g", REQUEST, ctx)
    assert ctx.fallbacks == ["backup"]
    router = make_router(
        [entry("g", gemini(fakes[0])), entry("backup", {"model": "demo/x"})],
        fallbacks=[{"*": "backup"}],
    )
    ctx = CallContext()
    await router.generate("g", REQUEST, ctx)
    assert ctx.fallbacks == ["backup"]
    await router.aclose()


async def test_context_window_fallbacks_only_for_context_errors(fakes: list[FakeGemini]) -> None:
    fakes[0].script("error", code=400, message=CONTEXT_MESSAGE, times=None)
    entries = [
        entry("small", gemini(fakes[0])),
        entry("big", {"model": "demo/big"}),
        entry("other", {"model": "demo/other"}),
    ]
    router = make_router(
        entries, context_window_fallbacks=[{"small": ["big"]}], fallbacks=[{"small": ["other"]}]
    )
    ctx = CallContext()
    response = await router.generate("small", REQUEST, ctx)
    assert response.model_version == "demo/big" and ctx.fallbacks == ["big"]
    router = make_router(entries, fallbacks=[{"small": ["other"]}])
    with pytest.raises(UpstreamError, match="input token count"):
        await router.generate("small", REQUEST)
    await router.aclose()


async def test_content_policy_fallbacks(fakes: list[FakeGemini]) -> None:
    fakes[0].script("error", code=400, message="Output blocked by content policy (content_filter).")
    router = make_router(
        [entry("strict", gemini(fakes[0])), entry("lenient", {"model": "demo/x"})],
        content_policy_fallbacks=[{"strict": ["lenient"]}],
    )
    ctx = CallContext()
    await router.generate("strict", REQUEST, ctx)
    assert ctx.fallbacks == ["lenient"]
    await router.aclose()


async def test_max_fallbacks_limits_the_chain(fakes: list[FakeGemini]) -> None:
    for fake in fakes:
        fake.script("error", code=500, times=None)
    router = make_router(
        [entry(f"g{i}", gemini(f)) for i, f in enumerate(fakes)],
        fallbacks=[{"g0": ["g1", "g2"]}],
        max_fallbacks=1,
    )
    ctx = CallContext()
    with pytest.raises(UpstreamError):
        await router.generate("g0", REQUEST, ctx)
    assert ctx.fallbacks == ["g1"] and len(fakes[2].requests) == 0
    await router.aclose()


async def test_count_tokens_and_embeddings_fall_back_too(fakes: list[FakeGemini]) -> None:
    from genroute.wire import CountTokensRequest

    fakes[0].script("error", code=500, times=None)
    router = make_router(
        [entry("g", gemini(fakes[0])), entry("backup", {"model": "demo/x"})],
        fallbacks=[{"g": ["backup"]}],
    )
    count = await router.count_tokens(
        "g", CountTokensRequest.model_validate({"contents": REQUEST.model_dump()["contents"]})
    )
    assert count.total_tokens == 2
    await router.aclose()
