"""Governance in process, on real SQLite and PostgreSQL: keys, budgets, limits, the ledger.

The pipeline of the proxy (governed → metered → Router) over the demo model, priced in
model_info; calls go through `authenticate` as the HTTP edge does, then the pipeline. The
limiter and key expiry run on clocks the tests move.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from genroute.call import Call, Operation
from genroute.config import config_from_data
from genroute.errors import GenrouteError, PermissionDenied, RateLimited, Unauthenticated
from genroute.governance import Governance, MemoryLimiter
from genroute.observability import Observability
from genroute.pipeline import Pipeline, build_pipeline
from genroute.store import Store, hash_key
from genroute.store.models import SpendLog
from genroute.store.repo import utcnow
from genroute.wire import (
    BatchEmbedContentsRequest,
    CountTokensRequest,
    EmbedContentRequest,
    GenerateContentRequest,
)

MASTER = "sk-master-test"
PRICES = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
# The demo answers "hello there" with 10 words: an output limit of 10 makes a call's budget
# hold (its most possible cost) about its real cost.
INFO = {**PRICES, "max_output_tokens": 10}
MODELS: list[dict[str, Any]] = [
    {"model_name": "demo", "params": {"model": "demo/echo"}, "model_info": INFO},
    {"model_name": "other", "params": {"model": "demo/other"}, "model_info": INFO},
]
# "hello there": 2 prompt tokens; the demo answers with 10 words.
CALL_COST = 2 * 0.001 + 10 * 0.002
REQUEST = GenerateContentRequest.model_validate(
    {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
)


class Clock:
    """A wall clock the test moves: the middle of a minute unless told otherwise."""

    def __init__(self) -> None:
        self.now = (time.time() // 60) * 60 + 30

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    store: Store
    gov: Governance
    pipeline: Pipeline
    clock: Clock

    async def start(
        self,
        key: str | None = None,
        end_user: str | None = None,
        model: str = "demo",
        operation: Operation = Operation.GENERATE,
    ) -> Call:
        """A Call as the edge builds it: the key authenticated, its caller identified."""
        row = await self.gov.authenticate(key)
        caller = self.gov.caller(hash_key(key) if key else None, row, end_user)
        return Call(operation, model, caller)

    async def call(
        self, key: str | None = None, end_user: str | None = None, model: str = "demo"
    ) -> float:
        call = await self.start(key, end_user, model)
        await self.pipeline.generate(call, REQUEST)
        assert call.meter.cost is not None
        return call.meter.cost

    async def key(self, **fields: Any) -> str:
        return str((await self.store.create_key(fields))["key"])


def governed_pipeline(gov: Governance, models: list[dict[str, Any]] = MODELS) -> Pipeline:
    config = config_from_data({"model_list": models})
    return build_pipeline(config, governance=gov, observability=Observability())


@pytest.fixture
async def env(store: Store) -> AsyncIterator[Env]:
    clock = Clock()
    gov = Governance(store, master_key=MASTER, limiter=MemoryLimiter(clock))
    pipeline = governed_pipeline(gov)
    await pipeline.start()
    yield Env(store, gov, pipeline, clock)
    await pipeline.aclose()


async def _outcomes(calls: list[Any]) -> tuple[int, list[BaseException]]:
    results = await asyncio.gather(*calls, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    return len(results) - len(errors), errors


async def test_200_concurrent_calls_all_in_the_ledger(env: Env) -> None:
    keys = [await env.key(key_alias=f"k{i}") for i in range(3)]
    users = [f"user-{i}" for i in range(5)]
    ok, errors = await _outcomes([env.call(keys[i % 3], users[i % 5]) for i in range(200)])
    assert ok == 200 and not errors
    await env.gov.ledger.flush()
    async with env.store.session() as session:
        rows = await session.scalar(select(func.count(SpendLog.id)))
        ledger = await session.scalar(select(func.sum(SpendLog.cost)))
    by_key = sum([(await env.store.get("key", hash_key(k)) or {})["spend"] for k in keys])
    by_user = sum([(await env.store.get("end_user", u) or {})["spend"] for u in users])
    assert rows == 200
    assert ledger == pytest.approx(200 * CALL_COST, rel=1e-9)
    assert by_key == pytest.approx(ledger, rel=1e-9)
    assert by_user == pytest.approx(ledger, rel=1e-9)


async def test_auth_at_the_edge(env: Env) -> None:
    with pytest.raises(PermissionDenied, match="unregistered callers"):
        await env.gov.authenticate(None)
    with pytest.raises(Unauthenticated, match="not valid"):
        await env.gov.authenticate("sk-nope")
    assert await env.gov.authenticate(MASTER) is None
    key = await env.key(key_alias="edge")
    row = await env.gov.authenticate(key)
    assert row is not None and row["key_alias"] == "edge"
    blocked = await env.key(blocked=True)
    with pytest.raises(PermissionDenied, match="blocked"):
        await env.gov.authenticate(blocked)
    expired = await env.key(duration="1h")
    assert await env.gov.authenticate(expired) is not None
    env.gov.now = lambda: utcnow() + timedelta(hours=1, seconds=1)
    with pytest.raises(Unauthenticated, match="expired"):
        await env.gov.authenticate(expired)


async def test_model_list_is_enforced(env: Env) -> None:
    key = await env.key(models=["demo"])
    await env.call(key)
    with pytest.raises(PermissionDenied, match="may not use model 'other'") as err:
        await env.call(key, model="other")
    assert err.value.code == 403
    await env.store.create("team", {"team_id": "t", "models": ["other"]})
    team_key = await env.key(team_id="t")
    with pytest.raises(PermissionDenied, match="team 't' may not use model 'demo'"):
        await env.call(team_key)


async def test_key_budget_holds_under_concurrency(env: Env) -> None:
    budget = 10 * CALL_COST + CALL_COST / 2
    key = await env.key(max_budget=budget)
    ok = 0
    for _ in range(6):  # waves of 5 concurrent calls
        done, errors = await _outcomes([env.call(key) for _ in range(5)])
        ok += done
        assert all(isinstance(e, RateLimited) and "Budget " in e.message for e in errors)
    spend = env.gov.cache.spend(
        "key", hash_key(key), await env.store.get("key", hash_key(key)) or {}
    )
    # Admitted while spend + holds < budget: at most one call's hold overshoots.
    assert 11 <= ok <= 15
    assert budget <= spend <= budget + 5 * CALL_COST
    await env.gov.ledger.flush()
    stored = await env.store.get("key", hash_key(key))
    assert stored is not None and stored["spend"] == pytest.approx(ok * CALL_COST)


async def test_end_user_created_on_first_sight_and_budgeted(env: Env) -> None:
    await env.call(MASTER, "newcomer")
    assert await env.store.get("end_user", "newcomer") is not None
    await env.store.create("end_user", {"end_user_id": "capped", "max_budget": CALL_COST * 2})
    await env.call(MASTER, "capped")
    await env.call(MASTER, "capped")
    with pytest.raises(RateLimited, match="end user 'capped'"):
        await env.call(MASTER, "capped")
    await env.call(MASTER, "someone-else")


async def test_rpm_limit_under_concurrency(env: Env) -> None:
    key = await env.key(rpm_limit=10)
    ok, errors = await _outcomes([env.call(key) for _ in range(30)])
    assert ok == 10 and len(errors) == 20
    err = errors[0]
    assert isinstance(err, RateLimited) and err.code == 429
    assert err.retry_after == 30  # the clock is half-way through its minute
    env.clock.now += 30
    await env.call(key)  # a new minute
    body = err.to_body()["error"]
    assert body["status"] == "RESOURCE_EXHAUSTED"
    assert any(d["@type"].endswith("RetryInfo") for d in body["details"])


async def test_tpm_and_team_limits(env: Env) -> None:
    key = await env.key(tpm_limit=20)  # each call uses 12 tokens
    await env.call(key)
    await env.call(key)
    with pytest.raises(RateLimited, match="tpm_limit is 20"):
        await env.call(key)
    await env.store.create("team", {"team_id": "small", "rpm_limit": 3})
    a, b = await env.key(team_id="small"), await env.key(team_id="small")
    ok, errors = await _outcomes([env.call(k) for k in (a, b, a, b, a, b)])
    assert ok == 3 and all("team 'small'" in str(e) for e in errors)


async def test_parallel_limit(env: Env) -> None:
    key = await env.key(max_parallel_requests=2)
    call = await env.start(key, operation=Operation.STREAM)

    def open_stream() -> AsyncIterator[Any]:
        return env.pipeline.stream(Call(Operation.STREAM, "demo", call.caller), REQUEST)

    first, second, third = open_stream(), open_stream(), open_stream()
    await anext(first)  # type: ignore[arg-type]
    await anext(second)  # type: ignore[arg-type]
    with pytest.raises(RateLimited, match="max_parallel_requests is 2"):
        await anext(third)  # type: ignore[arg-type]
    async for _ in first:
        pass
    fourth = open_stream()
    chunks = [c async for c in fourth]
    assert chunks
    await second.aclose()  # type: ignore[attr-defined]


async def test_changes_take_effect_without_restart(env: Env) -> None:
    key = await env.key()
    await env.call(key)
    await env.store.update("key", hash_key(key), {"blocked": True})
    await env.gov.cache.invalidate("key", hash_key(key))
    with pytest.raises(GenrouteError, match="blocked"):
        await env.call(key)


async def test_unknown_model_costs_zero(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    pipeline = governed_pipeline(
        env.gov, [{"model_name": "free", "params": {"model": "demo/free"}}]
    )
    try:
        for _ in range(3):
            call = await env.start(MASTER, model="free")
            await pipeline.generate(call, REQUEST)
            assert call.meter.cost == 0.0
    finally:
        await pipeline.router.aclose()
    warnings = [r for r in caplog.records if "no price known for model demo/free" in r.message]
    assert len(warnings) == 1


async def test_budget_overshoot_with_calls_in_flight(env: Env) -> None:
    """With a slow upstream many calls are in flight at once; reservations bound overshoot."""
    for deployment in env.pipeline.router.group("demo"):
        fast = deployment.provider.generate

        async def slow(call: Call, request: GenerateContentRequest, fast: Any = fast) -> Any:
            await asyncio.sleep(0.02)
            return await fast(call, request)

        deployment.provider.generate = slow  # type: ignore[method-assign]

    async def waves(key: str, request: GenerateContentRequest) -> int:
        served = 0
        for _ in range(3):

            async def one() -> None:
                await env.pipeline.generate(await env.start(key), request)

            ok, errors = await _outcomes([one() for _ in range(50)])
            assert all(isinstance(e, RateLimited) for e in errors)
            served += ok
        return served

    # maxOutputTokens makes the first estimate the worst case: no cold-start overshoot.
    bounded = GenerateContentRequest.model_validate(
        {
            "contents": [{"role": "user", "parts": [{"text": "hello there"}]}],
            "generationConfig": {"maxOutputTokens": 10},
        }
    )
    first = await env.key(max_budget=10 * CALL_COST + 1e-9)
    assert 10 <= await waves(first, bounded) <= 11
    # Without it, a call holds the model's output limit (model_info.max_output_tokens).
    second = await env.key(max_budget=20 * CALL_COST + 1e-9)
    await env.call(second)
    assert 19 <= await waves(second, REQUEST) <= 21


COUNT = CountTokensRequest.model_validate({"contents": [{"parts": [{"text": "a b c"}]}]})
EMBED = EmbedContentRequest.model_validate({"content": {"parts": [{"text": " ".join("w" * 10)}]}})
BATCH = BatchEmbedContentsRequest.model_validate(
    {"requests": [{"content": {"parts": [{"text": "y z"}]}}] * 3}
)


async def _other_operations(env: Env, key: str, model: str) -> list[Call]:
    calls = [
        await env.start(key, model=model, operation=op)
        for op in (Operation.COUNT_TOKENS, Operation.EMBED, Operation.BATCH_EMBED)
    ]
    await env.pipeline.count_tokens(calls[0], COUNT)
    await env.pipeline.embed(calls[1], EMBED)
    await env.pipeline.batch_embed(calls[2], BATCH)
    return calls


async def test_every_operation_is_governed_and_in_the_ledger(env: Env) -> None:
    key = await env.key(models=["demo"])
    for op in (Operation.COUNT_TOKENS, Operation.EMBED, Operation.BATCH_EMBED):
        call = await env.start(key, model="other", operation=op)
        request: Any = {
            Operation.COUNT_TOKENS: COUNT,
            Operation.EMBED: EMBED,
            Operation.BATCH_EMBED: BATCH,
        }[op]
        method = {
            Operation.COUNT_TOKENS: env.pipeline.count_tokens,
            Operation.EMBED: env.pipeline.embed,
            Operation.BATCH_EMBED: env.pipeline.batch_embed,
        }[op]
        with pytest.raises(PermissionDenied, match="may not use model 'other'") as err:
            await method(call, request)
        assert err.value.code == 403
    count, embed, batch = await _other_operations(env, key, "demo")
    assert count.meter.cost == 0.0
    # Embeddings: the tokens the upstream reports (the demo counts words), at the input price.
    assert embed.meter.input_tokens == 10 and embed.meter.cost == pytest.approx(10 * 0.001)
    assert batch.meter.input_tokens == 6 and batch.meter.cost == pytest.approx(6 * 0.001)
    assert not embed.meter.cost_estimated and not batch.meter.cost_estimated
    await env.gov.ledger.flush()
    async with env.store.session() as session:
        rows = (await session.execute(select(SpendLog).order_by(SpendLog.id))).scalars().all()
    assert [(r.operation, r.status_code, r.prompt_tokens, r.cost) for r in rows] == [
        ("countTokens", 403, 0, 0.0),  # the refused calls: rows with cost 0
        ("embedContent", 403, 0, 0.0),
        ("batchEmbedContents", 403, 0, 0.0),
        ("countTokens", 200, 0, 0.0),
        ("embedContent", 200, 10, pytest.approx(10 * 0.001)),
        ("batchEmbedContents", 200, 6, pytest.approx(6 * 0.001)),
    ]
    stored = await env.store.get("key", hash_key(key))
    assert stored is not None and stored["spend"] == pytest.approx(16 * 0.001)


async def test_rate_limits_count_every_operation(env: Env) -> None:
    key = await env.key(rpm_limit=3)
    await _other_operations(env, key, "demo")
    with pytest.raises(RateLimited, match="rpm_limit is 3"):
        await env.call(key)


class Refuser:
    """A layer inside governance that refuses every call (a guardrail, say)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def generate(self, call: Call, request: GenerateContentRequest) -> Any:
        raise PermissionDenied("refused by a later layer")

    def stream(self, call: Call, request: GenerateContentRequest) -> AsyncIterator[Any]:
        return self._refuse()

    async def _refuse(self) -> AsyncIterator[Any]:
        raise PermissionDenied("refused by a later layer")
        yield  # pragma: no cover

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_refusal_further_in_gives_back_what_governance_took(env: Env) -> None:
    from genroute.governance import Governed

    key = await env.key(max_parallel_requests=1, rpm_limit=100)
    inner = env.pipeline.api
    assert isinstance(inner, Governed)
    refusing = Governed(Refuser(inner.inner), env.gov, env.pipeline.router, env.pipeline.pricer)
    for _ in range(3):
        with pytest.raises(PermissionDenied, match="later layer"):
            await refusing.generate(await env.start(key), REQUEST)
        with pytest.raises(PermissionDenied, match="later layer"):
            async for _chunk in refusing.stream(
                await env.start(key, operation=Operation.STREAM), REQUEST
            ):
                pass
    # The parallel slot was given back each time: the next call is served.
    assert await env.call(key) == pytest.approx(CALL_COST)


async def test_a_cancelled_call_gives_back_its_slot(env: Env) -> None:
    key = await env.key(max_parallel_requests=1)
    for deployment in env.pipeline.router.group("demo"):

        async def hang(call: Call, request: GenerateContentRequest) -> Any:
            await asyncio.Event().wait()

        deployment.provider.generate = hang  # type: ignore[method-assign]
    task = asyncio.ensure_future(env.pipeline.generate(await env.start(key), REQUEST))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    state = env.gov.limiter
    assert isinstance(state, MemoryLimiter) and not state._parallel
