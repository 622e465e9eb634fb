"""Budgets hold under any concurrency: a call holds the most it can cost from before it
starts, so the spend passes a budget by at most one call's hold, whether the calls are
streamed or not, on one instance or two sharing the budget (through Redis, or through the
database's row locks without it), with no cost history.

Each wave of 24 calls is held at the upstream until every call has been admitted or
refused, so all 24 are in flight at once (the worst case for a budget)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from genroute.call import Call, Operation
from genroute.config import config_from_data
from genroute.errors import RateLimited
from genroute.governance import Governance, MemoryLimiter
from genroute.governance.budgets import RedisBudgets
from genroute.observability import Observability
from genroute.pipeline import Pipeline, build_pipeline
from genroute.store import Store, hash_key
from genroute.wire import GenerateContentRequest, GenerationConfig
from tests.dbs import db_url

__all__ = ["db_url"]

MASTER = "sk-master-budget"
PRICES = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
CALL_COST = 2 * 0.001 + 10 * 0.002  # "hello there": 2 prompt tokens, 10 words answered
# The most a call can cost: the prompt at 1 token per 3 bytes (11 bytes: 4 tokens), and
# the model's output limit (model_info.max_output_tokens: 10).
HOLD = 4 * 0.001 + 10 * 0.002
REQUEST = GenerateContentRequest.model_validate(
    {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}
)
WAVE = 24  # over twice the 10.5 calls the budget fits


class Gate:
    """Holds every call at the upstream until each of `expected` calls has reached it or
    been refused: then all of them go on."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.decided = 0
        self.event = asyncio.Event()

    def decide(self, *_: object) -> None:
        self.decided += 1
        if self.decided >= self.expected:
            self.event.set()

    def install(self, pipeline: Pipeline) -> None:
        for deployment in pipeline.router.group("demo"):
            provider = deployment.provider
            generate, stream = provider.generate, provider.stream

            async def gated_generate(call: Call, request: Any, generate: Any = generate) -> Any:
                self.decide()
                await self.event.wait()
                return await generate(call, request)

            async def gated_stream(
                call: Call, request: Any, stream: Any = stream
            ) -> AsyncIterator[Any]:
                self.decide()
                await self.event.wait()
                async for chunk in stream(call, request):
                    yield chunk

            provider.generate = gated_generate  # type: ignore[method-assign]
            provider.stream = gated_stream  # type: ignore[method-assign]


@dataclass
class Instance:
    gov: Governance
    pipeline: Pipeline

    async def call(self, key: str, stream: bool) -> float:
        row = await self.gov.authenticate(key)
        caller = self.gov.caller(hash_key(key), row)
        call = Call(Operation.STREAM if stream else Operation.GENERATE, "demo", caller)
        if stream:
            async for _ in self.pipeline.stream(call, REQUEST):
                pass
        else:
            await self.pipeline.generate(call, REQUEST)
        return call.meter.cost or 0.0


def instance(url: str, redis: Any, info: dict[str, Any], prefix: str) -> Instance:
    gov = Governance(Store(url), master_key=MASTER, limiter=MemoryLimiter(), redis=redis)
    if isinstance(gov.budgets.shared, RedisBudgets):
        gov.budgets.shared.prefix = prefix
    config = config_from_data(
        {
            "model_list": [
                {"model_name": "demo", "params": {"model": "demo/echo"}, "model_info": info}
            ]
        }
    )
    return Instance(gov, build_pipeline(config, governance=gov, observability=Observability()))


@pytest.fixture(params=["database", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def cluster(
    backend: str, db_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., Any]]:
    """Factory: `await cluster(n, info)` → n instances sharing one database (and Redis)."""
    redis: Any = None
    prefix = f"genroute-test:budget:{uuid.uuid4().hex}"
    if backend == "redis":
        redis = aioredis.from_url(request.getfixturevalue("redis_url"))
    started: list[Instance] = []

    async def make(n: int, info: dict[str, Any]) -> list[Instance]:
        for _ in range(n):
            member = instance(db_url, redis, info, prefix)
            await member.pipeline.start()
            started.append(member)
        return started[-n:]

    yield make
    for member in started:
        member.gov.redis = None  # the client is shared: closed once, below
        await member.pipeline.aclose()
    if redis is not None:
        keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def wave(
    instances: list[Instance], key: str, stream: bool
) -> tuple[int, list[BaseException]]:
    """WAVE calls spread over the instances, all in flight at once."""
    gate = Gate(WAVE)
    for member in instances:
        gate.install(member.pipeline)
    tasks = []
    for i in range(WAVE):
        task = asyncio.ensure_future(instances[i % len(instances)].call(key, stream))
        task.add_done_callback(
            lambda t: None if t.cancelled() or not t.exception() else gate.decide()
        )
        tasks.append(task)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    return WAVE - len(errors), errors


async def spend_of(instances: list[Instance], key: str) -> float:
    for member in instances:
        await member.gov.ledger.flush()
    row = await instances[0].gov.store.get("key", hash_key(key))
    assert row is not None
    return float(row["spend"])


@pytest.mark.parametrize("instances", [1, 2])
@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
async def test_a_budget_is_passed_by_at_most_one_call(
    cluster: Callable[..., Any], instances: int, stream: bool
) -> None:
    """A budget that fits 10.5 calls, no cost history, waves of 24 concurrent calls:
    10 or 11 served (the bug: all 24 of the first wave)."""
    members = await cluster(instances, {**PRICES, "max_output_tokens": 10})
    budget = 10.5 * CALL_COST
    key = str((await members[0].gov.store.create_key({"max_budget": budget}))["key"])
    served = 0
    for _ in range(3):
        ok, errors = await wave(members, key, stream)
        served += ok
        assert all(isinstance(e, RateLimited) and "Budget" in e.message for e in errors), errors
    spend = await spend_of(members, key)
    print(f"{instances} instance(s), {'stream' if stream else 'generate'}: {served} served, "
          f"spend ${spend:.4f} of ${budget:.4f} (overshoot {(spend - budget) / CALL_COST:.2f} calls)")  # fmt: skip
    assert served in (10, 11)
    assert spend == pytest.approx(served * CALL_COST)
    assert spend <= budget + HOLD


async def test_without_a_known_output_limit_a_call_holds_the_default(
    cluster: Callable[..., Any],
) -> None:
    """A model whose output limit is unknown holds default_max_output_tokens (65,536) of
    output: more than the whole budget, so one call at a time, never an overshoot of more
    than one call; maxOutputTokens in the request makes the hold its real size."""
    members = await cluster(1, PRICES)
    budget = 10.5 * CALL_COST
    key = str((await members[0].gov.store.create_key({"max_budget": budget}))["key"])
    ok, errors = await wave(members, key, stream=False)
    assert ok == 1
    assert all("nearly exhausted" in e.message and e.retry_after == 1 for e in errors)  # type: ignore[attr-defined]
    assert await spend_of(members, key) == pytest.approx(CALL_COST)


async def test_a_team_budget_is_shared_by_its_keys(cluster: Callable[..., Any]) -> None:
    members = await cluster(2, {**PRICES, "max_output_tokens": 10})
    store = members[0].gov.store
    await store.create(
        "team", {"team_id": f"t-{uuid.uuid4().hex[:8]}", "max_budget": 5.5 * CALL_COST}
    )
    team = (await store.list("team"))[0]["team_id"]
    keys = [str((await store.create_key({"team_id": team}))["key"]) for _ in range(5)]

    async def one(i: int) -> float:
        return await members[i % 2].call(keys[i % 5], stream=False)

    results = await asyncio.gather(*(one(i) for i in range(40)), return_exceptions=True)
    served = sum(not isinstance(r, BaseException) for r in results)
    assert served in (5, 6)
    for member in members:
        await member.gov.ledger.flush()
    row = await store.get("team", team)
    assert row is not None and row["spend"] == pytest.approx(served * CALL_COST)


def test_holds_are_priced_at_the_dearest_deployment(tmp_path: Path) -> None:
    from genroute.cost import pricer_for
    from genroute.governance.estimate import MaxCost
    from genroute.routing import Router

    config = config_from_data(
        {
            "model_list": [
                {"model_name": "g", "params": {"model": "demo/a"},
                 "model_info": {**PRICES, "max_output_tokens": 100}},
                {"model_name": "g", "params": {"model": "demo/b"},
                 "model_info": {"input_cost_per_token": 0.01, "output_cost_per_token": 0.02,
                                "max_output_tokens": 50}},
            ]
        }
    )  # fmt: skip
    router = Router.from_config(config)
    cost = MaxCost(router, pricer_for(config.model_list))
    assert cost.generate("g", REQUEST) == pytest.approx(
        max(4 * 0.001 + 100 * 0.002, 4 * 0.01 + 50 * 0.02)
    )
    bounded = REQUEST.model_copy(deep=True)
    bounded.generation_config = GenerationConfig(max_output_tokens=5, candidate_count=2)
    assert cost.generate("g", bounded) == pytest.approx(4 * 0.01 + 10 * 0.02)


def test_holds_price_output_as_thinking_where_a_reasoning_price_is_dearer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A model_info reasoning price (on the deployment, or in the pricer's model_infos)
    can make thinking dearer than an answer: the hold is the dearer. Without one, output
    and thinking cost alike and the hold is priced once."""
    from genroute import cost as cost_module
    from genroute.cost import pricer_for
    from genroute.governance.estimate import MaxCost
    from genroute.routing import Router

    def estimate(model_info: dict[str, Any]) -> float:
        entry = {"model_name": "g", "params": {"model": "demo/a"}, "model_info": model_info}
        config = config_from_data({"model_list": [entry]})
        return MaxCost(Router.from_config(config), pricer_for(config.model_list)).generate(
            "g", REQUEST
        )

    limits = {**PRICES, "max_output_tokens": 100}
    dear = estimate({**limits, "output_cost_per_reasoning_token": 0.005})
    assert dear == pytest.approx(4 * 0.001 + 100 * 0.005)
    cheap = estimate({**limits, "output_cost_per_reasoning_token": 0.0001})
    assert cheap == pytest.approx(4 * 0.001 + 100 * 0.002)

    priced: list[Any] = []
    real = cost_module.tokens_cost

    def counting(tokens: Any, *args: Any) -> Any:
        priced.append(tokens)
        return real(tokens, *args)

    monkeypatch.setattr(cost_module, "tokens_cost", counting)
    assert estimate(limits) == pytest.approx(4 * 0.001 + 100 * 0.002)
    assert [(t.output, t.thinking) for t in priced] == [(100, 0)]
