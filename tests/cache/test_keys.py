"""What an entry is keyed by: the scope cannot be forged by choosing names, and the request
is made canonical once per call."""

from __future__ import annotations

from typing import Any

import pytest

from genroute.call import Call, Caller, Operation
from genroute.wire import GenerateContentRequest
from tests.cache.conftest import Upstream, pipeline, request

SEMANTIC = {"type": "local-semantic", "similarity_threshold": 0.9,
            "redis_semantic_cache_embedding_model": "embedder"}  # fmt: skip


async def test_a_namespace_and_a_team_name_cannot_make_another_teams_scope() -> None:
    """A team named "a/team:b" and team "b" with namespace "team:a" are two scopes (names
    may hold "/" and ":"), exactly and by meaning."""
    up = Upstream()
    p = pipeline(up, SEMANTIC)
    namespaces = {"b": "team:a", "c": "a/team:b"}

    async def controls(caller: Caller) -> dict[str, Any]:
        team = caller.team_id or ""
        return {"namespace": namespaces[team]} if team in namespaces else {}

    p.cache.controls = controls
    first = Call(Operation.GENERATE, "flash", Caller(key_hash="k1", team_id="b"))
    await p.generate(first, request("What is the capital of France?"))
    await p.cache.drain()
    for team, text in [
        ("a/team:b", "What is the capital of France?"),
        ("a/team:b", "Tell me France's capital city"),
        ("b/team:b", "What is the capital of France?"),
    ]:
        other = Call(Operation.GENERATE, "flash", Caller(key_hash="k2", team_id=team))
        await p.generate(other, request(text))
        assert other.cache.outcome == "miss", (team, text)
    await p.aclose()


async def test_the_request_is_made_canonical_once_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    up = Upstream()
    p = pipeline(up, SEMANTIC)
    dumps = []
    original = GenerateContentRequest.to_dict

    def counted(self: GenerateContentRequest) -> dict[str, Any]:
        dumps.append(1)
        return original(self)

    monkeypatch.setattr(GenerateContentRequest, "to_dict", counted)
    c = Call(Operation.GENERATE, "flash", Caller(key_hash="k"))
    plan = await p.cache.plan(c, request(), "generate")
    assert plan is not None and plan.semantic is not None
    assert len(dumps) == 1
    await p.aclose()
