"""The response cache end to end: google-genai and raw HTTP through genroute to a fake
Gemini (bag-of-words embeddings), the cache in Redis (a prefix of each test's own).

Exact hits, a miss on a changed generation config, a streamed hit replayed in the same SSE
framing, a semantic hit on a paraphrase and a miss on an unrelated prompt, two instances
sharing entries (exactly and by meaning), no hit across teams, `cache-control` and the key
and team switches, ledger rows of cost 0 that say what they saved, and a Redis outage.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import InProcessGateway, eventually, freeze_limits, genai_client
from tests.fakes.embeddings import SemanticGemini
from tests.fakes.tcp_proxy import TcpProxy
from tests.routing.conftest import unique_prefix

pytestmark = pytest.mark.e2e

MASTER = "sk-cache-master"
PRICES = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002}
QUESTION = "What is the capital of France?"


def body(text: str = QUESTION, **fields: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], **fields}


@pytest.fixture
def fake() -> Iterator[SemanticGemini]:
    with SemanticGemini() as upstream:
        yield upstream


def config(fake: SemanticGemini, redis_url: str, prefix: str, **params: Any) -> dict[str, Any]:
    upstream = {"api_key": fake.api_key, "api_base": fake.base_url}
    return {
        "model_list": [
            {
                "model_name": "flash",
                "params": {"model": "gemini/gemini-2.5-flash", **upstream},
                "model_info": PRICES,
            },
            {
                "model_name": "embedder",
                "params": {"model": "gemini/text-embedding-004", **upstream},
                "model_info": {"input_cost_per_token": 0.0001},
            },
        ],
        "litellm_settings": {
            "cache": True,
            "cache_params": {
                "type": "redis-semantic",
                "url": redis_url,
                "namespace": prefix,
                "similarity_threshold": 0.9,
                "redis_semantic_cache_embedding_model": "embedder",
                **params,
            },
        },
    }


def http(
    gw: InProcessGateway,
    path: str,
    data: Any = None,
    key: str = MASTER,
    method: str = "POST",
    **headers: str,
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        gw.base_url + path,
        data=None if data is None else json.dumps(data).encode(),
        headers={"content-type": "application/json", "x-goog-api-key": key, **headers},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def generate(gw: InProcessGateway, data: Any = None, key: str = MASTER, **headers: str) -> Any:
    status, head, raw = http(
        gw, "/v1beta/models/flash:generateContent", data or body(), key, **headers
    )
    assert status == 200, raw
    return head, json.loads(raw)


def stored(gw: InProcessGateway, count: int) -> None:
    """Wait until the gateway's cache has written `count` entries in all."""
    cache = gw.app.pipeline.cache
    assert cache is not None
    eventually(lambda: cache.stats["writes"] >= count)


def upstream_calls(fake: SemanticGemini, action: str) -> int:
    return sum(1 for r in fake.requests if r.action == action)


@pytest.fixture
def gateway(fake: SemanticGemini, redis_url: str, tmp_path: Path) -> Iterator[InProcessGateway]:
    cfg = config(fake, redis_url, unique_prefix("cache"))
    cfg["general_settings"] = {"master_key": MASTER, "spend_flush_interval": 0.1}
    gw = InProcessGateway(cfg, tmp_path)
    yield gw
    gw.stop()


def test_an_exact_hit_and_a_miss_on_a_changed_generation_config(
    gateway: InProcessGateway, fake: SemanticGemini
) -> None:
    client = genai_client(gateway.base_url, MASTER)
    config = {"temperature": 0.5}
    first = client.models.generate_content(model="flash", contents=QUESTION, config=config)
    stored(gateway, 1)
    second = client.models.generate_content(model="flash", contents=QUESTION, config=config)
    assert second.text == first.text and second.candidates[0].finish_reason == "STOP"
    assert upstream_calls(fake, "generateContent") == 1
    changed = client.models.generate_content(
        model="flash", contents=QUESTION, config={"temperature": 0.6}
    )
    assert changed.text and upstream_calls(fake, "generateContent") == 2
    head, _ = generate(gateway, body(generation_config={"temperature": 0.5}))
    assert head["x-genroute-cache"] == "hit"
    assert head["x-genroute-response-cost"] == "0"
    assert "x-genroute-deployment" not in head  # no deployment answered
    head, _ = generate(gateway, body("Something else entirely"))
    assert head["x-genroute-cache"] == "miss"
    assert float(head["x-genroute-response-cost"]) > 0


def test_a_streamed_hit_is_replayed_in_the_same_framing(
    gateway: InProcessGateway, fake: SemanticGemini
) -> None:
    client = genai_client(gateway.base_url, MASTER)
    first = list(client.models.generate_content_stream(model="flash", contents=QUESTION))
    stored(gateway, 1)
    path = "/v1beta/models/flash:streamGenerateContent?alt=sse"
    status, head, raw = http(gateway, path, body())
    assert status == 200 and head["x-genroute-cache"] == "hit"
    assert head["content-type"].startswith("text/event-stream")
    events = raw.split(b"\r\n\r\n")
    assert events[-1] == b"" and all(e.startswith(b"data: {") for e in events[:-1])
    chunks = [json.loads(e[len(b"data: ") :]) for e in events[:-1]]
    assert len(chunks) > 1
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    again = list(client.models.generate_content_stream(model="flash", contents=QUESTION))
    text = "".join(c.text or "" for c in first)
    assert "".join(c.text or "" for c in again) == text
    assert upstream_calls(fake, "streamGenerateContent") == 1
    whole = client.models.generate_content(model="flash", contents=QUESTION)
    assert whole.text == text and upstream_calls(fake, "generateContent") == 0
    # without alt=sse: one JSON array, sent progressively
    status, head, raw = http(gateway, "/v1beta/models/flash:streamGenerateContent", body())
    assert head["x-genroute-cache"] == "hit" and len(json.loads(raw)) == len(chunks)


def test_a_semantic_hit_on_a_paraphrase_and_a_miss_on_an_unrelated_prompt(
    gateway: InProcessGateway, fake: SemanticGemini
) -> None:
    client = genai_client(gateway.base_url, MASTER)
    first = client.models.generate_content(model="flash", contents=QUESTION)
    stored(gateway, 1)
    head, paraphrase = generate(gateway, body("Tell me France's capital city, please"))
    assert head["x-genroute-cache"] == "semantic-hit"
    assert paraphrase["candidates"][0]["content"]["parts"][-1]["text"] == first.text
    head, _ = generate(gateway, body("How do I bake bread?"))
    assert head["x-genroute-cache"] == "miss"
    assert upstream_calls(fake, "generateContent") == 2
    assert upstream_calls(fake, "embedContent") == 3  # one per lookup, routed like any call

    def logged() -> bool:
        lines = [json.loads(x) for x in gateway.log().splitlines() if x.startswith("{")]
        hits = [x for x in lines if x.get("cache") == "semantic-hit"]
        embeddings = [x for x in lines if x.get("model_group") == "embedder"]
        return len(hits) == 1 and len(embeddings) == 3 and hits[0]["cost"] == 0

    eventually(logged)


def test_two_instances_share_entries_through_redis(
    fake: SemanticGemini, redis_url: str, tmp_path: Path
) -> None:
    cfg = config(fake, redis_url, unique_prefix("cache-shared"))
    one = InProcessGateway(cfg, tmp_path)
    try:
        generate(one, key="")
        stored(one, 1)
        two = InProcessGateway(cfg, tmp_path)  # starts after the entry: catches up
        try:
            head, _ = generate(two, key="")
            assert head["x-genroute-cache"] == "hit"
            index = two.app.pipeline.cache.index
            eventually(lambda: len(index) == 1)
            head, _ = generate(two, body("Tell me France's capital city"), key="")
            assert head["x-genroute-cache"] == "semantic-hit"
            generate(two, body("How do I bake bread?"), key="")  # stored by two, seen by one
            eventually(lambda: len(one.app.pipeline.cache.index) == 2)
            head, _ = generate(one, body("Bread: how do I bake it?"), key="")
            assert head["x-genroute-cache"] == "semantic-hit"
            assert upstream_calls(fake, "generateContent") == 2
        finally:
            two.stop()
    finally:
        one.stop()


def new_key(gw: InProcessGateway, **fields: Any) -> str:
    status, _, raw = http(gw, "/key/generate", fields)
    assert status == 200, raw
    return str(json.loads(raw)["key"])


def new_team(gw: InProcessGateway, team_id: str, **fields: Any) -> None:
    status, _, raw = http(gw, "/team/new", {"team_id": team_id, **fields})
    assert status == 200, raw


def test_no_hit_across_teams(gateway: InProcessGateway) -> None:
    new_team(gateway, "red")
    new_team(gateway, "blue")
    new_team(gateway, "green")
    red, red_too, blue, green = (
        new_key(gateway, team_id=t) for t in ("red", "red", "blue", "green")
    )
    generate(gateway, key=red)
    stored(gateway, 1)
    assert generate(gateway, key=blue)[0]["x-genroute-cache"] == "miss"
    paraphrase = body("Tell me France's capital city")
    assert generate(gateway, paraphrase, key=green)[0]["x-genroute-cache"] == "miss"
    assert generate(gateway, key=red_too)[0]["x-genroute-cache"] == "hit"
    assert generate(gateway, paraphrase, key=red_too)[0]["x-genroute-cache"] == "semantic-hit"


def test_cache_control_no_cache_and_no_store(
    gateway: InProcessGateway, fake: SemanticGemini
) -> None:
    generate(gateway, **{"cache-control": "no-store"})
    head, _ = generate(gateway)
    assert head["x-genroute-cache"] == "miss"  # the no-store answer was not kept
    stored(gateway, 1)
    head, _ = generate(gateway, **{"cache-control": "no-cache"})
    assert head["x-genroute-cache"] == "miss"
    assert generate(gateway)[0]["x-genroute-cache"] == "hit"
    assert upstream_calls(fake, "generateContent") == 3
    status, _, raw = http(
        gateway, "/v1beta/models/flash:generateContent", body(), **{"x-genroute-cache-ttl": "x"}
    )
    assert status == 400 and b"x-genroute-cache-ttl" in raw


def test_the_key_and_team_switches(gateway: InProcessGateway) -> None:
    new_team(gateway, "quiet", metadata={"cache": {"no-cache": True, "no-store": True}})
    muted = new_key(gateway, team_id="quiet")
    plain = new_key(gateway)
    generate(gateway, key=plain)
    stored(gateway, 1)
    for _ in range(2):
        assert generate(gateway, key=muted)[0]["x-genroute-cache"] == "miss"
    assert gateway.app.pipeline.cache.stats["writes"] == 1
    key = new_key(gateway, metadata={"cache": {"no-cache": True}})
    generate(gateway, body("Key switch"), key=key)
    stored(gateway, 2)
    assert generate(gateway, body("Key switch"), key=key)[0]["x-genroute-cache"] == "miss"
    status, _, raw = http(
        gateway, "/key/update", {"key": key, "metadata": {"cache": {"no-cache": False}}}
    )
    assert status == 200, raw
    assert generate(gateway, body("Key switch"), key=key)[0]["x-genroute-cache"] == "hit"
    status, _, raw = http(gateway, "/key/generate", {"metadata": {"cache": {"no-cache": "yes"}}})
    assert status == 400 and b"metadata.cache.no-cache" in raw
    status, _, raw = http(gateway, "/team/new", {"metadata": {"cache": {"nocache": True}}})
    assert status == 400 and b"metadata.cache.nocache" in raw


def test_a_hit_costs_nothing_in_the_ledger_and_the_report_shows_the_saving(
    gateway: InProcessGateway,
) -> None:
    key = new_key(gateway)
    generate(gateway, key=key)
    stored(gateway, 1)
    generate(gateway, key=key)

    def rows() -> list[dict[str, Any]]:
        status, _, raw = http(gateway, "/spend/logs", method="GET")
        assert status == 200, raw
        found = [r for r in json.loads(raw) if r["model_group"] == "flash"]
        return found if len(found) == 2 else []

    eventually(lambda: bool(rows()))
    miss, hit = rows()
    assert miss["cache_hit"] is None and miss["cost"] > 0
    assert hit["cache_hit"] == "hit" and hit["cost"] == 0.0
    assert hit["saved_cost"] == pytest.approx(miss["cost"])
    assert hit["prompt_tokens"] == miss["prompt_tokens"]
    status, _, raw = http(gateway, "/global/spend/report?group_by=model", method="GET")
    assert status == 200, raw
    report = [r for r in json.loads(raw) if r["model"] == "flash"]
    assert sum(r["cache_hits"] for r in report) == 1
    assert sum(r["cache_saved"] for r in report) == pytest.approx(miss["cost"])
    assert sum(r["spend"] for r in report) == pytest.approx(miss["cost"])


def test_a_redis_outage_skips_the_cache_and_calls_go_on(
    fake: SemanticGemini, redis_url: str, tmp_path: Path
) -> None:
    with TcpProxy(6379) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        cfg = config(fake, url, unique_prefix("cache-outage"))
        gw = InProcessGateway(cfg, tmp_path)
        try:
            generate(gw, key="")
            stored(gw, 1)
            assert generate(gw, key="")[0]["x-genroute-cache"] == "hit"
            proxy.stop()
            for _ in range(3):
                assert generate(gw, key="")[0]["x-genroute-cache"] == "miss"
            assert gw.log().count("response cache: Redis is unavailable") == 1
            _, _, metrics = http(gw, "/metrics", method="GET", key="")
            assert b"genroute_cache_redis_up 0.0" in metrics
            proxy.start()

            def back() -> bool:
                return generate(gw, key="")[0]["x-genroute-cache"] == "hit"

            eventually(back, 10)
        finally:
            gw.stop()


def test_the_cache_s_own_embedding_is_not_counted_against_the_key_s_limits(
    gateway: InProcessGateway, fake: SemanticGemini
) -> None:
    """A semantic lookup embeds the prompt as a call of its own, charged to the caller's
    key; it is part of the caller's one request, so it takes none of its rpm, tpm or
    parallel slots (with max_parallel_requests 1 it was refused, with an rpm every call
    counted twice)."""
    freeze_limits(gateway)
    single = new_key(gateway, max_parallel_requests=1)
    generate(gateway, key=single)
    stored(gateway, 1)
    head, _ = generate(gateway, body("Tell me France's capital city"), key=single)
    assert head["x-genroute-cache"] == "semantic-hit"
    three = new_key(gateway, rpm_limit=3)
    for text in ("How do I bake bread?", "Bread: how do I bake it?", "How do I bake bread?"):
        generate(gateway, body(text), key=three)
        stored(gateway, 2)
    status, _, _ = http(gateway, "/v1beta/models/flash:generateContent", body(), three)
    assert status == 429  # the fourth request of the minute
    assert upstream_calls(fake, "embedContent") == 4  # every lookup embedded its prompt

    def charged(key: str, count: int) -> bool:
        status, _, raw = http(gateway, f"/spend/logs?api_key={key}&model=embedder", method="GET")
        rows = json.loads(raw)
        return status == 200 and len(rows) == count and all(r["cost"] > 0 for r in rows)

    eventually(lambda: charged(single, 2) and charged(three, 2))  # to the caller's key


def test_max_age_0_asks_for_a_fresh_answer(gateway: InProcessGateway, fake: SemanticGemini) -> None:
    """`cache-control: max-age=0` (what browsers send on a reload, and some proxies add) is
    a valid directive: no entry is young enough, the answer is still stored."""
    generate(gateway)
    stored(gateway, 1)
    head, _ = generate(gateway, **{"cache-control": "max-age=0"})
    assert head["x-genroute-cache"] == "miss"
    assert upstream_calls(fake, "generateContent") == 2


def test_with_the_cache_off_its_headers_are_ignored(
    fake: SemanticGemini, redis_url: str, tmp_path: Path
) -> None:
    cfg = config(fake, redis_url, unique_prefix("cache-off"))
    cfg["litellm_settings"]["cache"] = False
    gw = InProcessGateway(cfg, tmp_path)
    try:
        assert gw.app.pipeline.cache is None
        for headers in (
            {"cache-control": "max-age=0"},
            {"cache-control": "max-age=soon"},
            {"x-genroute-cache-ttl": "forever"},
        ):
            head, _ = generate(gw, key="", **headers)
            assert "x-genroute-cache" not in head, headers
    finally:
        gw.stop()


def test_a_key_that_may_not_use_the_model_is_never_served_a_hit(
    gateway: InProcessGateway,
) -> None:
    """The cache is inside governance: a key of the same team (the same scope) without
    the model group in its list is refused before any lookup."""
    new_team(gateway, "shared")
    allowed = new_key(gateway, team_id="shared")
    denied = new_key(gateway, team_id="shared", models=["embedder"])
    generate(gateway, key=allowed)
    stored(gateway, 1)
    for text in (QUESTION, "Tell me France's capital city"):
        status, head, raw = http(
            gateway, "/v1beta/models/flash:generateContent", body(text), denied
        )
        assert status == 403 and b"may not use model" in raw, raw
        assert "x-genroute-cache" not in head
    assert generate(gateway, key=allowed)[0]["x-genroute-cache"] == "hit"
