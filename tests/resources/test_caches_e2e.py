"""End to end: cachedContents through genroute with google-genai's `client.caches`, and
`cached_content` in calls to Gemini (a cache made upstream once), OpenAI and Anthropic
(the cached parts put in front) groups; ownership by team; Gemini's rules."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types

from tests.conftest import InProcessGateway, eventually, genai_client
from tests.fakes.anthropic_upstream import DEFAULT_API_KEY as ANTHROPIC_KEY
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import DEFAULT_KEY as OPENAI_KEY
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.vertex_upstream import FakeVertex

pytestmark = pytest.mark.e2e

MASTER = "sk-caches-master"
LONG = "The handbook says: " + "policy " * 1500  # over Gemini's 1024-token minimum
SYSTEM = "You answer from the handbook only."


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeGemini, FakeOpenAI, FakeAnthropic]]:
    gemini = FakeGemini("upstream-key").start()
    with FakeOpenAI() as openai, FakeAnthropic() as anthropic:
        yield gemini, openai, anthropic
    gemini.stop()


@pytest.fixture(scope="module")
def vertex() -> Iterator[FakeVertex]:
    with FakeVertex(pause=0.002) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def gateway(
    fakes: tuple[FakeGemini, FakeOpenAI, FakeAnthropic],
    vertex: FakeVertex,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InProcessGateway]:
    gemini, openai, anthropic = fakes
    params = {
        "vclaude": {
            "model": "vertex_ai/claude-sonnet-4-5@20250929",
            "vertex_project": vertex.project,
            "vertex_location": vertex.location,
            "vertex_credentials": json.dumps(vertex.service_account()),
            "api_base": vertex.base_url,
        },
        "gem": {
            "model": "gemini/gemini-2.5-flash",
            "api_key": "upstream-key",
            "api_base": gemini.base_url,
        },
        "gpt": {
            "model": "openai/gpt-4o",
            "api_key": OPENAI_KEY,
            "api_base": f"{openai.base_url}/v1",
        },
        "claude": {
            "model": "anthropic/claude-sonnet-4-5",
            "api_key": ANTHROPIC_KEY,
            "api_base": anthropic.base_url,
        },
    }
    config = {
        "model_list": [{"model_name": name, "params": p} for name, p in params.items()],
        "general_settings": {"master_key": MASTER, "spend_flush_interval": 0.05},
    }
    gw = InProcessGateway(config, Path(tmp_path_factory.mktemp("caches-gateway")))
    yield gw
    gw.stop()


def get(gw: InProcessGateway, path: str) -> Any:
    request = urllib.request.Request(gw.base_url + path, headers={"x-goog-api-key": MASTER})
    with urllib.request.urlopen(request, timeout=15) as resp:
        return json.loads(resp.read())


def call(gw: InProcessGateway, path: str, body: Any) -> Any:
    request = urllib.request.Request(
        gw.base_url + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "x-goog-api-key": MASTER},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=15) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def keys(gateway: InProcessGateway) -> dict[str, str]:
    for team in ("red", "blue"):
        call(gateway, "/team/new", {"team_id": team})
    return {
        name: call(gateway, "/key/generate", {"team_id": team})["key"]
        for name, team in (("red1", "red"), ("red2", "red"), ("blue", "blue"))
    }


def make(client: Any, model: str, **config: Any) -> types.CachedContent:
    settings: dict[str, Any] = {
        "contents": [types.Content(role="user", parts=[types.Part(text=LONG)])],
        "system_instruction": SYSTEM,
        "ttl": "600s",
        **config,
    }
    cache: types.CachedContent = client.caches.create(model=model, config=settings)
    return cache


def test_create_get_list_update_delete(gateway: InProcessGateway, keys: dict[str, str]) -> None:
    client = genai_client(gateway.base_url, keys["red1"])
    cache = make(client, "gem", display_name="handbook")
    assert cache.name is not None and cache.name.startswith("cachedContents/")
    assert cache.model == "models/gem" and cache.display_name == "handbook"
    assert cache.usage_metadata is not None
    assert (cache.usage_metadata.total_token_count or 0) >= 1024
    assert cache.expire_time is not None
    assert abs(cache.expire_time - datetime.now(UTC) - timedelta(seconds=600)) < timedelta(
        seconds=30
    )
    assert client.caches.get(name=cache.name).usage_metadata == cache.usage_metadata
    assert cache.name in [c.name for c in client.caches.list()]
    later = client.caches.update(name=cache.name, config={"ttl": "7200s"})
    assert later.expire_time is not None and later.expire_time > cache.expire_time
    client.caches.delete(name=cache.name)
    with pytest.raises(errors.ClientError) as caught:
        client.caches.get(name=cache.name)
    assert caught.value.code == 404


def test_too_small_is_refused_as_gemini_does(
    gateway: InProcessGateway, keys: dict[str, str]
) -> None:
    client = genai_client(gateway.base_url, keys["red1"])
    with pytest.raises(errors.ClientError) as caught:
        make(client, "gpt", contents=[types.Content(role="user", parts=[types.Part(text="hi")])])
    assert caught.value.code == 400
    assert "min_total_token_count=1024" in str(caught.value.message)
    with pytest.raises(errors.ClientError) as caught:
        make(client, "no-such-model")
    assert caught.value.code == 404


def test_a_gemini_group_uses_a_cache_made_upstream_once(
    gateway: InProcessGateway, keys: dict[str, str], fakes: tuple[FakeGemini, Any, Any]
) -> None:
    gemini = fakes[0]
    client = genai_client(gateway.base_url, keys["red1"])
    cache = make(client, "gem")
    before = len(gemini.files_api.caches)
    for _ in range(2):
        reply = client.models.generate_content(
            model="gem", contents="What does it say?", config={"cached_content": cache.name}
        )
        assert reply.usage_metadata is not None
        assert reply.usage_metadata.cached_content_token_count
    assert len(gemini.files_api.caches) == before + 1  # created once, then remembered
    sent = gemini.requests[-1].body
    assert sent["cachedContent"] in gemini.files_api.caches
    assert sent["cachedContent"] != cache.name and "systemInstruction" not in sent
    upstream = gemini.files_api.caches[sent["cachedContent"]]["body"]
    assert upstream["model"] == "models/gemini-2.5-flash"
    assert upstream["systemInstruction"]["parts"][0]["text"] == SYSTEM
    assert upstream["ttl"] in ("600s", "599s", "598s")  # what the cache had left
    # Gemini charges for keeping it: priced once, when made there, for the time asked
    # ($1 / M tokens per hour for 2.5 Flash), under the team and key that own the cache.
    tokens = gemini.files_api.caches[sent["cachedContent"]]["tokens"]
    name = sent["cachedContent"].rsplit("/", 1)[-1]

    def storage() -> list[dict[str, Any]]:
        rows = get(gateway, "/spend/logs?limit=10000")
        return [
            r
            for r in rows
            if r["request_id"] == f"storage-{cache.name.removeprefix('cachedContents/')}-{name}"
        ]

    eventually(lambda: len(storage()) == 1)
    (row,) = storage()
    assert row["operation"] == "cachedContentStorage" and row["team_id"] == "red"
    assert row["key_hash"] == hashlib.sha256(keys["red1"].encode()).hexdigest()
    assert row["model_group"] == "gem" and row["provider"] == "gemini"
    assert row["cached_content"] == cache.name
    assert row["cached_tokens"] == tokens
    seconds = int(upstream["ttl"][:-1])
    assert row["cost"] == pytest.approx(tokens * seconds / 3600 * 1e-6, rel=0.01)


def test_openai_and_anthropic_groups_get_the_cached_parts_in_front(
    gateway: InProcessGateway, keys: dict[str, str], fakes: tuple[Any, FakeOpenAI, FakeAnthropic]
) -> None:
    _, openai, anthropic = fakes
    client = genai_client(gateway.base_url, keys["red2"])  # the same team as the maker
    maker = genai_client(gateway.base_url, keys["red1"])
    for model in ("gpt", "claude"):
        cache = make(maker, model)
        reply = client.models.generate_content(
            model=model, contents="Summarise", config={"cached_content": cache.name}
        )
        assert reply.text
    messages = openai.last_request.body["messages"]
    assert messages[0] == {"role": "system", "content": SYSTEM}
    assert LONG in json.dumps(messages[1]) and "Summarise" in json.dumps(messages[-1])
    body = anthropic.last_request.body
    assert SYSTEM in json.dumps(body["system"])
    assert LONG in json.dumps(body["messages"][0]) and "Summarise" in json.dumps(body["messages"])


def breakpoints(body: dict[str, Any]) -> list[str]:
    """Where a Messages API body asks Anthropic's prompt cache to keep the prefix."""
    found = [f"system[{i}]" for i, b in enumerate(body.get("system") or []) if "cache_control" in b]
    for i, message in enumerate(body["messages"]):
        found += [
            f"messages[{i}].content[{j}]"
            for j, block in enumerate(message["content"])
            if block.get("cache_control") == {"type": "ephemeral"}
        ]
    return found


@pytest.mark.parametrize("group", ["claude", "vclaude"])
def test_anthropics_prompt_cache_keeps_the_cached_prefix(
    gateway: InProcessGateway,
    keys: dict[str, str],
    fakes: tuple[Any, Any, FakeAnthropic],
    vertex: FakeVertex,
    group: str,
) -> None:
    upstream = fakes[2] if group == "claude" else vertex
    client = genai_client(gateway.base_url, keys["red1"])
    cache = make(client, group, contents=[LONG, "And the appendix."])
    usages, costs = [], []
    for question in ("What does it say?", "What does the appendix say?"):
        reply = client.models.generate_content(
            model=group, contents=question, config={"cached_content": cache.name}
        )
        assert reply.usage_metadata is not None and reply.sdk_http_response is not None
        usages.append(reply.usage_metadata)
        costs.append(float(reply.sdk_http_response.headers["x-genroute-response-cost"]))
        body = upstream.requests[-1].body
        # Breakpoints at the end of the system instruction and of the cached contents
        # (merged with the question into one user message), not on the question.
        assert breakpoints(body) == ["system[0]", "messages[0].content[1]"]
        assert body["messages"][0]["content"][-1]["text"] == question
    first, second = usages
    assert not first.cached_content_token_count  # written to Anthropic's cache...
    cached = second.cached_content_token_count  # ...then read from it
    assert cached and cached > 1500 and second.prompt_token_count == first.prompt_token_count + 1
    # Priced at Claude Sonnet 4.5's rates: $3 / M input, $3.75 / M written to the cache,
    # $0.30 / M read from it, $15 / M output (the question's 4 or 5 words are not cached).
    assert first.prompt_token_count and first.candidates_token_count
    written = first.prompt_token_count - 4
    assert costs[0] == pytest.approx(
        4 * 3e-6 + written * 3.75e-6 + first.candidates_token_count * 15e-6
    )
    assert second.prompt_token_count and second.candidates_token_count
    assert costs[1] == pytest.approx(
        (second.prompt_token_count - cached) * 3e-6
        + cached * 0.3e-6
        + second.candidates_token_count * 15e-6
    )


def test_openais_automatic_prompt_cache_applies_to_the_expanded_prefix(
    gateway: InProcessGateway, keys: dict[str, str], fakes: tuple[Any, FakeOpenAI, Any]
) -> None:
    openai = fakes[1]
    client = genai_client(gateway.base_url, keys["red1"])
    rules = "The rulebook says: " + "rule " * 1500  # a prefix no other test sent
    cache = make(client, "gpt", contents=[rules, "And the appendix."])
    usages, sent, costs = [], [], []
    for question in ("Which policy?", "Which appendix?"):
        reply = client.models.generate_content(
            model="gpt", contents=question, config={"cached_content": cache.name}
        )
        assert reply.usage_metadata is not None and reply.sdk_http_response is not None
        usages.append(reply.usage_metadata)
        costs.append(reply.sdk_http_response.headers["x-genroute-response-cost"])
        sent.append(openai.last_request.body["messages"])
    # The same prefix byte for byte (system, then the cached turns), the question last.
    assert json.dumps(sent[0][:-1]) == json.dumps(sent[1][:-1])
    assert sent[0][0] == {"role": "system", "content": SYSTEM}
    assert not usages[0].cached_content_token_count
    cached = usages[1].cached_content_token_count or 0
    assert cached >= 1024 and cached % 128 == 0  # OpenAI's own figure
    # gpt-4o: $2.50 / M input, $1.25 / M cached, $10 / M output.
    prompt, output = usages[1].prompt_token_count or 0, usages[1].candidates_token_count or 0
    cost = float(costs[1])
    assert cost == pytest.approx((prompt - cached) * 2.5e-6 + cached * 1.25e-6 + output * 10e-6)


def test_caches_belong_to_the_team_and_follow_geminis_rules(
    gateway: InProcessGateway, keys: dict[str, str]
) -> None:
    red = genai_client(gateway.base_url, keys["red1"])
    blue = genai_client(gateway.base_url, keys["blue"])
    cache = make(red, "gpt")
    assert cache.name is not None
    with pytest.raises(errors.ClientError) as caught:
        blue.caches.get(name=cache.name)
    assert caught.value.code == 404
    assert cache.name not in [c.name for c in blue.caches.list()]
    with pytest.raises(errors.ClientError) as caught:
        blue.models.generate_content(
            model="gpt", contents="x", config={"cached_content": cache.name}
        )
    assert caught.value.code == 404
    with pytest.raises(errors.ClientError) as caught:  # another model than the cache's
        red.models.generate_content(
            model="claude", contents="x", config={"cached_content": cache.name}
        )
    assert caught.value.code == 400 and "has to be the same" in str(caught.value.message)
    with pytest.raises(errors.ClientError) as caught:  # a system instruction of its own
        red.models.generate_content(
            model="gpt",
            contents="x",
            config={"cached_content": cache.name, "system_instruction": "Be brief"},
        )
    assert caught.value.code == 400 and "CachedContent can not be used" in str(caught.value.message)
    with pytest.raises(errors.ClientError) as caught:
        red.caches.update(name=cache.name, config={"ttl": "soon"})
    assert caught.value.code == 400 and "ttl" in str(caught.value.message)
