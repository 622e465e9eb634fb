"""Retries, backoff and fallbacks through fake upstreams that fail in scripted ways."""

from __future__ import annotations

import random
from typing import Any

import pytest

from genroute.call import Call, Operation
from genroute.errors import (
    FailureReason,
    GenrouteError,
    InvalidRequest,
    UpstreamError,
    UpstreamMalformed,
    UpstreamTimeout,
    UpstreamUnavailable,
    cancelled,
)
from genroute.routing import Router
from genroute.routing.retry import backoff_delay
from genroute.wire import CountTokensRequest, GenerateContentRequest, GenerateContentResponse
from tests.calls import call
from tests.fakes.gemini_upstream import FakeGemini
from tests.routing.conftest import REQUEST, entry, gemini, make_router

CONTEXT_MESSAGE = "The input token count (1200000) exceeds the maximum number of tokens allowed."


class CountingLayer:
    """A pipeline layer around the Router that notes each call it sees, once."""

    def __init__(self, inner: Router) -> None:
        self.inner = inner
        self.before: list[str] = []
        self.after: list[BaseException | None] = []

    async def generate(
        self, call: Call, request: GenerateContentRequest
    ) -> GenerateContentResponse:
        self.before.append(call.request_id)
        error: BaseException | None = None
        try:
            return await self.inner.generate(call, request)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.after.append(error)


@pytest.mark.parametrize(
    "script",
    [
        {"kind": "error", "code": 500},
        {"kind": "error", "code": 503},
        {"kind": "error", "code": 429, "retry_delay": "0.05s", "headers": {"Retry-After": "0"}},
        {"kind": "drop"},
    ],
    ids=["500", "503", "429", "drop"],
)
async def test_retries_the_same_deployment(fakes: list[FakeGemini], script: dict[str, Any]) -> None:
    fake = fakes[0]
    fake.script(script.pop("kind"), **script)
    router = make_router([entry("g", gemini(fake), "only")], num_retries=2)
    response = await router.generate(ctx := call("g"), REQUEST)
    assert response.candidates and len(ctx.route.attempts) == 2 and len(fake.requests) == 2
    assert [a.error_code is not None for a in ctx.route.attempts] == [True, False]
    assert all(a.ended is not None and a.ended >= a.started for a in ctx.route.attempts)
    await router.aclose()


async def test_timeout_moves_to_another_deployment(fakes: list[FakeGemini]) -> None:
    slow, fast = fakes[0], fakes[1]
    slow.script("delay", seconds=0.5, times=None)
    router = make_router(
        [
            entry("g", gemini(slow, timeout=0.05, order=1), "slow"),
            entry("g", gemini(fast, order=2), "fast"),
        ],
        num_retries=1,
    )
    await router.generate(ctx := call("g"), REQUEST)
    assert [a.deployment_id for a in ctx.route.attempts] == ["slow", "fast"]
    assert ctx.route.attempts[0].error_status == "DEADLINE_EXCEEDED"
    await router.aclose()


async def test_client_errors_are_never_retried(fakes: list[FakeGemini]) -> None:
    fake = fakes[0]
    fake.script("error", code=400, message="Invalid value at 'contents'", times=None)
    router = make_router(
        [entry("g", gemini(fake), "a"), entry("backup", {"model": "demo/x"})],
        num_retries=3,
        fallbacks=[{"g": ["backup"]}],
    )
    with pytest.raises(UpstreamError) as info:
        await router.generate(ctx := call("g"), REQUEST)
    assert info.value.code == 400 and len(ctx.route.attempts) == 1 and len(fake.requests) == 1
    assert ctx.route.fallbacks == []
    await router.aclose()


async def test_per_deployment_num_retries_overrides(fakes: list[FakeGemini]) -> None:
    fake = fakes[0]
    fake.script("error", code=500, times=None)
    router = make_router([entry("g", gemini(fake, num_retries=0), "a")], num_retries=5)
    with pytest.raises(UpstreamError):
        await router.generate(call("g"), REQUEST)
    assert len(fake.requests) == 1
    await router.aclose()


async def test_retry_after_beyond_the_cap_is_not_waited_for(fakes: list[FakeGemini]) -> None:
    fake = fakes[0]
    fake.script("error", code=429, retry_delay="30s", times=None)
    router = make_router([entry("g", gemini(fake), "a")], num_retries=3, max_retry_backoff=1)
    with pytest.raises(UpstreamError) as info:
        await router.generate(ctx := call("g"), REQUEST)
    assert info.value.code == 429 and info.value.retry_after == 30 and len(ctx.route.attempts) == 1
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


def test_failure_reasons_follow_the_error_not_its_message() -> None:
    assert UpstreamError("x", code=429).reason is FailureReason.RATE_LIMIT
    assert UpstreamTimeout("x").reason is FailureReason.TIMEOUT
    assert UpstreamUnavailable("x").reason is FailureReason.UNREACHABLE
    assert UpstreamMalformed("x").reason is FailureReason.MALFORMED
    assert UpstreamError("x", code=503).reason is FailureReason.OVERLOADED
    assert UpstreamError("bad", code=400).reason is FailureReason.BAD_REQUEST
    # The message never decides: only the provider's error mapper may say "context window".
    assert UpstreamError(CONTEXT_MESSAGE, code=400).reason is FailureReason.BAD_REQUEST
    assert (
        UpstreamError(CONTEXT_MESSAGE, code=400, reason=FailureReason.CONTEXT_WINDOW).reason
        is FailureReason.CONTEXT_WINDOW
    )
    assert UpstreamError("key", code=403).reason is FailureReason.AUTH
    assert InvalidRequest("contents: missing").reason is FailureReason.BAD_REQUEST
    assert cancelled().reason is FailureReason.CANCELLED
    assert GenrouteError("bug").reason is FailureReason.INTERNAL
    table = {
        reason: (reason.retryable, reason.cools_down, reason.falls_back) for reason in FailureReason
    }
    assert table[FailureReason.RATE_LIMIT] == (True, True, True)
    assert table[FailureReason.AUTH] == (False, True, True)
    assert table[FailureReason.CONTEXT_WINDOW] == (False, False, True)
    assert table[FailureReason.NO_DEPLOYMENT] == (False, False, True)
    assert table[FailureReason.BAD_REQUEST] == (False, False, False)
    assert table[FailureReason.CANCELLED] == (False, False, False)


async def test_fallback_chain_crosses_providers(fakes: list[FakeGemini]) -> None:
    first, second = fakes[0], fakes[1]
    first.script("error", code=500, times=None)
    second.script("error", code=429, retry_delay="0s", times=None)
    router = make_router(
        [
            entry("g1", gemini(first), "g1-gemini"),
            entry("g2", gemini(second), "g2-gemini"),
            entry("g3", {"model": "demo/echo"}, "g3-demo"),
        ],
        num_retries=1,
        fallbacks=[{"g1": ["g2", "g3"]}],
    )
    layer = CountingLayer(router)
    response = await layer.generate(ctx := call("g1"), REQUEST)
    assert response.model_version == "demo/echo"
    assert ctx.route.fallbacks == ["g2", "g3"] and ctx.route.group == "g3"
    assert ctx.route.deployment_id == "g3-demo" and ctx.route.provider == "demo"
    assert [a.deployment_id for a in ctx.route.attempts] == [
        "g1-gemini",
        "g1-gemini",
        "g2-gemini",
        "g2-gemini",
        "g3-demo",
    ]
    assert len(ctx.route.attempts) == 5 and len(layer.before) == 1 and layer.after == [None]
    await router.aclose()


async def test_default_fallbacks_and_wildcard_key(fakes: list[FakeGemini]) -> None:
    fakes[0].script("error", code=503, times=None)
    router = make_router(
        [entry("g", gemini(fakes[0])), entry("backup", {"model": "demo/x"})],
        default_fallbacks=["backup"],
    )
    await router.generate(ctx := call("g"), REQUEST)
    assert ctx.route.fallbacks == ["backup"]
    router = make_router(
        [entry("g", gemini(fakes[0])), entry("backup", {"model": "demo/x"})],
        fallbacks=[{"*": "backup"}],
    )
    await router.generate(ctx := call("g"), REQUEST)
    assert ctx.route.fallbacks == ["backup"]
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
    response = await router.generate(ctx := call("small"), REQUEST)
    assert response.model_version == "demo/big" and ctx.route.fallbacks == ["big"]
    router = make_router(entries, fallbacks=[{"small": ["other"]}])
    with pytest.raises(UpstreamError, match="input token count"):
        await router.generate(call("small"), REQUEST)
    await router.aclose()


async def test_content_policy_fallbacks(fakes: list[FakeGemini]) -> None:
    fakes[0].script("error", code=400, message="The prompt was blocked for safety reasons.")
    router = make_router(
        [entry("strict", gemini(fakes[0])), entry("lenient", {"model": "demo/x"})],
        content_policy_fallbacks=[{"strict": ["lenient"]}],
    )
    await router.generate(ctx := call("strict"), REQUEST)
    assert ctx.route.fallbacks == ["lenient"]
    await router.aclose()


async def test_max_fallbacks_limits_the_chain(fakes: list[FakeGemini]) -> None:
    for fake in fakes:
        fake.script("error", code=500, times=None)
    router = make_router(
        [entry(f"g{i}", gemini(f)) for i, f in enumerate(fakes)],
        fallbacks=[{"g0": ["g1", "g2"]}],
        max_fallbacks=1,
    )
    with pytest.raises(UpstreamError):
        await router.generate(ctx := call("g0"), REQUEST)
    assert ctx.route.fallbacks == ["g1"] and len(fakes[2].requests) == 0
    await router.aclose()


async def test_count_tokens_and_embeddings_fall_back_too(fakes: list[FakeGemini]) -> None:
    fakes[0].script("error", code=500, times=None)
    router = make_router(
        [entry("g", gemini(fakes[0])), entry("backup", {"model": "demo/x"})],
        fallbacks=[{"g": ["backup"]}],
    )
    request = CountTokensRequest.model_validate({"contents": REQUEST.model_dump()["contents"]})
    count = await router.count_tokens(ctx := call("g", operation=Operation.COUNT_TOKENS), request)
    assert count.total_tokens == 2 and ctx.route.fallbacks == ["backup"]
    await router.aclose()
