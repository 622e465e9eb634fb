"""The cached layer in a pipeline over a mock upstream: hits, misses, what is never stored,
streams, directives, teams, TTLs, embeddings, and what a hit costs."""

from __future__ import annotations

import asyncio

import pytest

from genroute.call import CacheControl, Call, Caller, Operation
from genroute.errors import GenrouteError
from genroute.wire import BatchEmbedContentsRequest, Content, EmbedContentRequest, Part
from tests.cache.conftest import ANSWER, Upstream, call, pipeline, request

COST = 10 * 0.001 + 20 * 0.002  # the upstream's usage at PRICES


async def ask(p, c: Call, req=None):
    response = await p.generate(c, req or request())
    await p.cache.drain()
    return response


async def stream(p, c: Call, req=None):
    chunks = [chunk async for chunk in p.stream(c, req or request())]
    await p.cache.drain()
    return chunks


async def test_an_exact_hit_costs_nothing_and_says_what_it_saved() -> None:
    up = Upstream()
    p = pipeline(up)
    first, second = call(), call()
    miss = await ask(p, first)
    hit = await ask(p, second)
    assert (first.cache.outcome, second.cache.outcome) == ("miss", "hit")
    assert up.generated == 1
    assert hit.text == miss.text == ANSWER
    assert first.meter.cost == pytest.approx(COST)
    assert second.meter.cost == 0.0
    assert second.cache.saved_cost == pytest.approx(COST)
    assert second.meter.usage is not None and second.meter.usage.total_token_count == 30
    assert second.route.attempts == []  # no deployment was asked
    await p.aclose()


async def test_the_key_is_the_canonical_request() -> None:
    up = Upstream()
    p = pipeline(up)
    await ask(p, call(), request(generationConfig={"temperature": 0.2, "topK": 3}))
    same = [
        # snake_case, another key order, a single Content instead of a list of one
        {"generation_config": {"top_k": 3, "temperature": 0.2}},
        {"generationConfig": {"topK": 3.0, "temperature": 0.2}},
    ]
    for fields in same:
        c = call()
        await ask(p, c, request(**fields))
        assert c.cache.outcome == "hit", fields
    single = request(generationConfig={"temperature": 0.2, "topK": 3}).model_validate(
        {
            "contents": {"role": "user", "parts": {"text": "What is the capital of France?"}},
            "generationConfig": {"temperature": 0.2, "topK": 3},
        }
    )
    c = call()
    await ask(p, c, single)
    assert c.cache.outcome == "hit"
    changed = call()
    await ask(p, changed, request(generationConfig={"temperature": 0.3, "topK": 3}))
    assert changed.cache.outcome == "miss"
    assert up.generated == 2
    await p.aclose()


async def test_a_stream_is_stored_once_complete_and_a_hit_is_replayed_as_a_stream() -> None:
    up = Upstream(answer=" ".join(["word"] * 60) + ".")
    p = pipeline(up)
    first = call(stream=True)
    chunks = await stream(p, first)
    assert first.cache.outcome == "miss" and up.streamed == 1
    again = call(stream=True)
    replayed = await stream(p, again)
    assert again.cache.outcome == "hit" and up.streamed == 1
    assert "".join(c.text for c in replayed) == "".join(c.text for c in chunks) == up.answer
    assert len(replayed) > 2  # chunked, not one blob
    assert all(c.candidates[0].finish_reason is None for c in replayed[:-1])
    assert replayed[-1].candidates[0].finish_reason == "STOP"
    assert replayed[-1].usage_metadata.total_token_count == 30
    whole = call()
    assert (await ask(p, whole)).text == up.answer  # the assembled stream answers a generate
    assert whole.cache.outcome == "hit" and up.generated == 0
    await p.aclose()


async def test_a_stream_left_early_or_failing_is_not_stored() -> None:
    up = Upstream(answer=" ".join(["word"] * 60))
    p = pipeline(up)
    chunks = p.stream(call(stream=True), request())
    await anext(chunks)
    await chunks.aclose()  # the client went away
    await p.cache.drain()
    c = call(stream=True)
    await stream(p, c)
    assert c.cache.outcome == "miss" and up.streamed == 2
    await p.aclose()


async def test_a_stream_that_fails_after_its_stop_chunk_is_not_stored() -> None:
    up = Upstream(answer=" ".join(["word"] * 60), stream_tail=[b"{not json"])
    p = pipeline(up)
    first = call(stream=True)
    seen = []
    with pytest.raises(GenrouteError):
        async for chunk in p.stream(first, request()):
            seen.append(chunk)
    await p.cache.drain()
    assert seen and seen[-1].candidates[0].finish_reason == "STOP"
    up.stream_tail = []
    again = call(stream=True)
    await stream(p, again)
    assert again.cache.outcome == "miss" and up.streamed == 2
    await p.aclose()


@pytest.mark.parametrize("finish", ["MAX_TOKENS", "SAFETY", "OTHER"])
async def test_a_stream_that_does_not_finish_with_stop_is_not_stored(finish: str) -> None:
    up = Upstream(answer=" ".join(["word"] * 60), finish=finish)
    p = pipeline(up)
    for _ in range(2):
        c = call(stream=True)
        await stream(p, c)
        assert c.cache.outcome == "miss"
    assert up.streamed == 2 and p.cache.not_stored["finishReason"] == 2
    await p.aclose()


async def test_no_cache_skips_the_lookup_and_no_store_the_write() -> None:
    up = Upstream()
    p = pipeline(up)
    await ask(p, call(cache_control=CacheControl(no_store=True)))
    c = call()
    await ask(p, c)
    assert c.cache.outcome == "miss"  # nothing was stored by the no-store call
    fresh = call(cache_control=CacheControl(no_cache=True))
    await ask(p, fresh)
    assert fresh.cache.outcome == "miss" and up.generated == 3
    c = call()
    await ask(p, c)
    assert c.cache.outcome == "hit"
    await p.aclose()


@pytest.mark.parametrize(
    ("scripted", "why"),
    [
        ({"finish": "MAX_TOKENS"}, "finishReason"),
        ({"finish": "SAFETY"}, "finishReason"),
        ({"parts": [{"functionCall": {"name": "f", "args": {}}}]}, "function"),
        # STOP with nothing in it (Gemini does this now and then): clients retry such an
        # answer, and a cached one would answer every retry the same
        ({"parts": []}, "empty"),
        ({"parts": [{"text": ""}]}, "empty"),
        ({"parts": [{"text": "Let me think.", "thought": True}]}, "empty"),
    ],
)
async def test_answers_that_are_never_stored(scripted: dict, why: str) -> None:
    up = Upstream(**scripted)
    p = pipeline(up)
    await ask(p, call())
    c = call()
    await ask(p, c)
    assert c.cache.outcome == "miss" and up.generated == 2
    assert p.cache.not_stored[why] == 2
    await p.aclose()


async def test_function_calls_are_stored_when_configured() -> None:
    up = Upstream(parts=[{"functionCall": {"name": "f", "args": {"x": 1}}}])
    p = pipeline(up, {"cache_function_calls": True})
    await ask(p, call())
    c = call()
    response = await ask(p, c)
    assert c.cache.outcome == "hit"
    assert response.candidates[0].content.parts[0].function_call.args == {"x": 1}
    await p.aclose()


async def test_errors_are_not_stored() -> None:
    up = Upstream(status=500)
    p = pipeline(up)
    with pytest.raises(GenrouteError):
        await ask(p, call())
    up.status = 200
    c = call()
    await ask(p, c)
    assert c.cache.outcome == "miss"
    await p.aclose()


@pytest.mark.parametrize(
    "fields",
    [
        {"cachedContent": "cachedContents/abc"},
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": "what is this?"},
                        {"fileData": {"fileUri": "files/x", "mimeType": "text/plain"}},
                    ],
                }
            ]
        },
    ],
)
async def test_requests_naming_cached_content_or_files_are_not_cached(fields: dict) -> None:
    up = Upstream()
    p = pipeline(up)
    req = request().model_validate({**request().to_dict(), **fields})
    for _ in range(2):
        c = call()
        await ask(p, c, req)
        assert c.cache.outcome == "miss"
    assert up.generated == 2
    await p.aclose()


async def test_no_entry_is_served_across_teams_unless_configured() -> None:
    up = Upstream()
    p = pipeline(up)
    await ask(p, call(team="a"))
    other = call(team="b")
    await ask(p, other)
    mine = call(team="a")
    await ask(p, mine)
    no_team = Call(Operation.GENERATE, "flash", Caller(key_hash="lonely"))
    await ask(p, no_team)
    assert (other.cache.outcome, mine.cache.outcome, no_team.cache.outcome) == (
        "miss",
        "hit",
        "miss",
    )
    shared = pipeline(Upstream(), {"shared_across_teams": True})
    await ask(shared, call(team="a"))
    across = call(team="b")
    await ask(shared, across)
    assert across.cache.outcome == "hit"
    await p.aclose()
    await shared.aclose()


async def test_each_entry_has_its_own_ttl_and_max_age_bounds_what_is_served() -> None:
    up = Upstream()
    p = pipeline(up, {"ttl": 60})
    now = [1000.0]
    p.cache.clock = p.cache.store.clock = lambda: now[0]
    await ask(p, call(cache_control=CacheControl(ttl=5)), request("short"))
    await ask(p, call(), request("long"))
    now[0] += 10
    short, long = call(), call()
    await ask(p, short, request("short"))
    await ask(p, long, request("long"))
    assert (short.cache.outcome, long.cache.outcome) == ("miss", "hit")
    young = call(cache_control=CacheControl(max_age=5))
    await ask(p, young, request("long"))
    assert young.cache.outcome == "miss"  # stored 10 s ago
    now[0] += 60
    gone = call()
    await ask(p, gone, request("long"))
    assert gone.cache.outcome == "miss"
    await p.aclose()


async def test_the_local_cache_is_bounded() -> None:
    p = pipeline(Upstream(), {"max_entries": 3})
    for i in range(5):
        await ask(p, call(), request(f"question {i}"))
    assert len(p.cache.store) == 3
    first, last = call(), call()
    await ask(p, first, request("question 0"))
    await ask(p, last, request("question 4"))
    assert (first.cache.outcome, last.cache.outcome) == ("miss", "hit")
    await p.aclose()


async def test_embeddings_are_cached_too() -> None:
    up = Upstream()
    p = pipeline(up)
    req = EmbedContentRequest(content=Content(parts=[Part(text="hello world")]))
    first = Call(Operation.EMBED, "embedder")
    one = await p.embed(first, req)
    await p.cache.drain()
    again = Call(Operation.EMBED, "embedder")
    two = await p.embed(again, req)
    assert (first.cache.outcome, again.cache.outcome) == ("miss", "hit")
    assert one.embedding.values == two.embedding.values and len(up.embedded) == 1
    assert again.meter.cost == 0.0 and again.cache.saved_cost == pytest.approx(first.meter.cost)
    batch = BatchEmbedContentsRequest(requests=[req, req.model_copy()])
    calls = [Call(Operation.BATCH_EMBED, "embedder") for _ in range(2)]
    for c in calls:
        await p.batch_embed(c, batch)
        await p.cache.drain()
    assert [c.cache.outcome for c in calls] == ["miss", "hit"]
    assert calls[1].meter.input_tokens == calls[0].meter.input_tokens
    await p.aclose()


async def test_count_tokens_and_unsupported_call_types_pass_through() -> None:
    up = Upstream()
    p = pipeline(up, {"supported_call_types": ["aembedding"]})
    for _ in range(2):
        c = call()
        await ask(p, c)
        assert c.cache.outcome is None
    assert up.generated == 2
    await p.aclose()


async def test_a_hit_is_recorded_under_its_model_group() -> None:
    import time

    from genroute.config import config_from_data
    from genroute.observability.records import build_record
    from genroute.pipeline import build_pipeline
    from genroute.providers.transport import MockTransport
    from genroute.routing import Router
    from genroute.store.ledger import SpendRecord
    from tests.cache.conftest import config

    cfg = config_from_data(
        {**config(), "router_settings": {"model_group_alias": {"fast": "flash"}}}
    )  # the client asks for an alias
    p = build_pipeline(cfg, router=Router(config=cfg, transport=MockTransport(Upstream())))
    await ask(p, call())
    hit = Call(Operation.GENERATE, "fast", Caller(team_id=None, key_hash="key-of-None"))
    await ask(p, hit)
    assert hit.cache.outcome == "hit" and hit.route.group is None
    assert build_record(hit, None, time.perf_counter()).model_group == "flash"
    row = SpendRecord.of(hit, status_code=200, error_status=None, finished=time.perf_counter())
    assert (row.model_group, row.cache_hit, row.cost) == ("flash", "hit", 0.0)
    await p.aclose()


async def test_a_hit_has_a_response_id_of_its_own_and_the_answer_s_model_and_usage() -> None:
    """Gemini gives every response its own responseId (clients log it, and LangChain and
    pydantic-ai keep it as the message's id); a hit's is its own request id, never the id
    of the call that made the entry. modelVersion and usageMetadata are the answer's."""
    up = Upstream(answer=" ".join(["word"] * 60) + ".")
    p = pipeline(up)
    first = call()
    miss = await ask(p, first)
    assert miss.response_id == "r1"
    hits = [call(), call()]
    answers = [await ask(p, c) for c in hits]
    assert [c.cache.outcome for c in hits] == ["hit", "hit"]
    assert [a.response_id for a in answers] == [c.request_id for c in hits]
    assert all(a.model_version == miss.model_version for a in answers)
    assert all(a.usage_metadata == miss.usage_metadata for a in answers)
    streamed = call(stream=True)
    chunks = await stream(p, streamed)
    assert streamed.cache.outcome == "hit" and len(chunks) > 1
    assert {c.response_id for c in chunks} == {streamed.request_id}  # one id per stream
    await p.aclose()


async def test_embeddings_of_a_file_are_not_cached() -> None:
    """An embedding request naming a file depends on what is stored elsewhere, as a
    generateContent naming one does."""
    up = Upstream()
    p = pipeline(up)
    file = {"fileData": {"fileUri": "files/x", "mimeType": "text/plain"}}
    one = EmbedContentRequest.model_validate({"content": {"parts": [{"text": "a"}, file]}})
    batch = BatchEmbedContentsRequest(requests=[one])
    for _ in range(2):
        c = Call(Operation.EMBED, "embedder")
        await p.embed(c, one)
        b = Call(Operation.BATCH_EMBED, "embedder")
        await p.batch_embed(b, batch)
        await p.cache.drain()
        assert (c.cache.outcome, b.cache.outcome) == ("miss", "miss")
    assert len(up.embedded) == 4
    await p.aclose()


async def test_without_the_cache_there_is_no_cached_layer() -> None:
    from genroute.cache import Cached
    from genroute.config import config_from_data
    from genroute.pipeline import build_pipeline
    from genroute.providers.transport import MockTransport
    from genroute.routing import Router
    from tests.cache.conftest import config

    data = config()
    data["litellm_settings"]["cache"] = False
    cfg = config_from_data(data)
    p = build_pipeline(cfg, router=Router(config=cfg, transport=MockTransport(Upstream())))
    assert p.cache is None
    layer, layers = p.api, []
    while layer is not None:
        layers.append(type(layer).__name__)
        layer = getattr(layer, "inner", None)
    assert "Metered" in layers and "Router" in layers and Cached.__name__ not in layers
    c = call()
    await p.generate(c, request())
    assert c.cache.outcome is None
    await p.aclose()


async def test_when_the_key_and_team_switches_cannot_be_read_the_cache_stays_out() -> None:
    """A team's `no-store` may be there for privacy: when its switches cannot be read
    (the key store is down), the call neither reads nor writes the cache."""
    up = Upstream()
    p = pipeline(up)
    await ask(p, call(team="t"))  # an entry the team made earlier

    async def down(caller: Caller) -> dict:
        raise ConnectionError("the key store is down")

    p.cache.controls = down
    for _ in range(2):
        c = call(team="t")
        await ask(p, c, request("Something new"))
        assert c.cache.outcome is None
    c = call(team="t")
    await ask(p, c)
    assert c.cache.outcome is None and up.generated == 4
    assert p.cache.stats["writes"] == 1
    await p.aclose()


async def test_drain_returns_when_a_write_ended_before_its_done_callback_ran() -> None:
    """From Python 3.12 on, gathering tasks that have all ended returns without yielding to
    the event loop: a drain (or a shutdown) right after a write ended, before the write's
    done callback had taken it out of the writes in flight, spun for ever."""
    p = pipeline(Upstream())
    cache = p.cache

    class Watched(set):  # fails the test where the drain would spin
        looks = 0

        def __bool__(self) -> bool:
            Watched.looks += 1
            assert Watched.looks < 100, "the drain spins"
            return len(self) > 0

    cache._pending = Watched()

    async def write() -> None:
        return None

    task = asyncio.create_task(write())
    cache._pending.add(task)
    task.add_done_callback(cache._pending.discard)  # as store_later does
    await asyncio.sleep(0)  # the write ends; its done callback is scheduled, not yet run
    assert task.done() and task in cache._pending
    await cache.drain()
    assert not cache._pending
    await p.aclose()
