"""What an entry is keyed by: the scope cannot be forged by choosing names, and the request
is made canonical once per call."""

from __future__ import annotations

from typing import Any

import pytest

from genroute.call import CacheControl, Call, Caller, Operation
from genroute.wire import GenerateContentRequest
from tests.cache.conftest import Upstream, call, pipeline, request

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


BASE = {
    "systemInstruction": {"parts": [{"text": "Be brief."}]},
    "generationConfig": {
        "temperature": 0.2,
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
        "thinkingConfig": {"thinkingBudget": 128},
    },
    "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    "tools": [{"functionDeclarations": [{"name": "lookup"}]}],
    "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
}
CHANGES = {
    "systemInstruction": {"systemInstruction": {"parts": [{"text": "Be verbose."}]}},
    "temperature": {"generationConfig": {**BASE["generationConfig"], "temperature": 0.3}},
    "responseSchema": {
        "generationConfig": {
            **BASE["generationConfig"],
            "responseSchema": {"type": "OBJECT", "properties": {"town": {"type": "STRING"}}},
        }
    },
    "thinkingConfig": {
        "generationConfig": {**BASE["generationConfig"], "thinkingConfig": {"thinkingBudget": 0}}
    },
    "an unknown generationConfig field": {
        "generationConfig": {**BASE["generationConfig"], "enableEnhancedCivicAnswers": True}
    },
    "safetySettings": {
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ALL"}]
    },
    "tools": {"tools": [{"functionDeclarations": [{"name": "search"}]}]},
    "toolConfig": {"toolConfig": {"functionCallingConfig": {"mode": "NONE"}}},
    "serviceTier": {"serviceTier": "flex"},
}


@pytest.mark.parametrize("what", list(CHANGES))
async def test_a_request_that_differs_in_anything_but_labels_and_model_is_another_entry(
    what: str,
) -> None:
    up = Upstream()
    p = pipeline(up, SEMANTIC)
    await p.generate(call(), request("What is the capital of France?", **BASE))
    await p.cache.drain()
    same = call()
    await p.generate(
        same,
        request("What is the capital of France?", **BASE, labels={"team": "x"}, model="models/y"),
    )
    assert same.cache.outcome == "hit"  # billing labels and the body's model change nothing
    for text in ("What is the capital of France?", "Tell me France's capital city"):
        c = call()
        await p.generate(c, request(text, **{**BASE, **CHANGES[what]}))
        assert c.cache.outcome == "miss", (what, text)
    await p.aclose()


async def test_keys_without_a_team_the_master_key_and_no_key_each_have_their_own_entries() -> None:
    up = Upstream()
    p = pipeline(up)
    callers = [Caller(key_hash="one"), Caller(key_hash="two"), Caller(key_hash=None)]
    for caller in callers:
        c = Call(Operation.GENERATE, "flash", caller)
        await p.generate(c, request())
        await p.cache.drain()
        assert c.cache.outcome == "miss", caller
    for caller in callers:
        c = Call(Operation.GENERATE, "flash", caller)
        await p.generate(c, request())
        assert c.cache.outcome == "hit", caller
    await p.aclose()


async def test_an_embedding_never_answers_a_generate_or_the_other_way_round() -> None:
    from genroute.wire import Content, CountTokensRequest, EmbedContentRequest, Part

    up = Upstream()
    p = pipeline(up, {"shared_across_teams": True})
    text = "What is the capital of France?"
    embed = EmbedContentRequest(content=Content(role="user", parts=[Part(text=text)]))
    first = Call(Operation.EMBED, "flash")
    await p.embed(first, embed)
    await p.cache.drain()
    c = Call(Operation.GENERATE, "flash")
    response = await p.generate(c, request(text))
    await p.cache.drain()
    assert c.cache.outcome == "miss" and response.text
    again = Call(Operation.EMBED, "flash")
    await p.embed(again, embed)
    assert again.cache.outcome == "hit"
    for _ in range(2):  # countTokens always asks the upstream
        counted = Call(Operation.COUNT_TOKENS, "flash")
        tokens = await p.count_tokens(counted, CountTokensRequest(contents=request(text).contents))
        assert tokens.total_tokens == 7 and counted.cache.outcome is None
    assert up.counted == 2
    await p.aclose()


async def test_two_model_groups_never_share_an_entry() -> None:
    from genroute.config import config_from_data
    from genroute.pipeline import build_pipeline
    from genroute.providers.transport import MockTransport
    from genroute.routing import Router
    from tests.cache.conftest import config

    data = config({**SEMANTIC, "shared_across_teams": True})
    pro = {**data["model_list"][0], "model_name": "pro"}
    pro["params"] = {**pro["params"], "model": "gemini/gemini-2.5-pro"}
    data["model_list"].append(pro)
    cfg = config_from_data(data)
    up = Upstream()
    p = build_pipeline(cfg, router=Router(config=cfg, transport=MockTransport(up)), server=False)
    await p.generate(Call(Operation.GENERATE, "flash"), request())
    await p.cache.drain()
    for text in ("What is the capital of France?", "Tell me France's capital city"):
        c = Call(Operation.GENERATE, "pro", cache_control=CacheControl(no_store=True))
        await p.generate(c, request(text))
        assert c.cache.outcome == "miss", text
    await p.aclose()
