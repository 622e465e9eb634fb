"""A translated answer of one text part is written as its JSON at once (`wire.text_answer`):
for any Chat Completions or Messages reply, what the translator returns sends the bytes,
has the facts and parses to the models of the answer built part by part, as before."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any
from unittest.mock import patch

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import genroute
from genroute.cost import Tokens
from genroute.errors import UpstreamMalformed
from genroute.providers.anthropic import response as anthropic
from genroute.providers.openai import response as openai
from genroute.providers.transport import HttpResponse, MockTransport
from genroute.wire import GenerateContentResponse, ResponseFacts, dump_json, wire_bytes

TEXT = st.text(max_size=30)
MAYBE_TEXT = st.none() | TEXT
COUNT = st.integers(min_value=0, max_value=10_000)
ODD = st.none() | st.integers(-1, 2) | st.booleans() | TEXT | st.lists(COUNT, max_size=1)
ODD = ODD | st.dictionaries(st.sampled_from(["content", "x"]), st.none() | TEXT, max_size=1)


def _usage(prompt: int, completion: int, reasoning: int | None, cached: int | None) -> Any:
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion}
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached, "audio_tokens": 0}
    return usage


@st.composite
def completions(draw: st.DrawFn) -> dict[str, Any]:
    """Chat completions: a plain text answer, or one with up to two of its fields changed
    to something that may or may not take it off the short cut."""
    message: dict[str, Any] = {"role": "assistant", "content": draw(TEXT), "refusal": None}
    message["annotations"] = draw(st.sampled_from([[], None]))
    choice: dict[str, Any] = {"index": 0, "message": message, "logprobs": None}
    choice["finish_reason"] = draw(st.sampled_from(["stop", "length", "content_filter"]))
    body: dict[str, Any] = {"choices": [choice]}
    if draw(st.booleans()):
        body["usage"] = _usage(
            draw(COUNT), draw(COUNT), draw(st.none() | COUNT), draw(st.none() | COUNT)
        )
    for key in ("model", "id"):
        if draw(st.booleans()):
            body[key] = draw(MAYBE_TEXT)
    for _ in range(draw(st.sampled_from([0, 0, 1, 2]))):
        where, key = draw(st.sampled_from(CHANGES))
        target = {"body": body, "choice": choice, "message": message}[where]
        target[key] = draw(st.sampled_from([None, "", [], "no", 0, 1, False]) | ODD)
    return body


CHANGES = [
    ("message", key)
    for key in ("content", "refusal", "tool_calls", "annotations", "function_call", "reasoning")
] + [("choice", "index"), ("choice", "logprobs"), ("choice", "finish_reason")]
CHANGES += [("choice", "message"), ("body", "choices"), ("body", "usage")]


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """Messages API replies: one text block, or something else now and then."""
    block: dict[str, Any] = {"type": "text", "text": draw(TEXT)}
    if draw(st.integers(0, 4)) == 0:
        block["type"] = draw(st.sampled_from(["thinking", "tool_use", "x"]))
    if draw(st.integers(0, 4)) == 0:
        block["text"] = draw(ODD)
    if draw(st.booleans()):
        block["citations"] = []
    blocks = [block] * draw(st.sampled_from([1, 1, 1, 1, 2, 0]))
    body: dict[str, Any] = {"type": "message", "role": "assistant", "content": blocks}
    body["stop_reason"] = draw(
        st.sampled_from(["end_turn", "max_tokens", "refusal", "pause_turn", "odd"]) | ODD
    )
    if draw(st.booleans()):
        body["stop_details"] = {"explanation": draw(TEXT)}
    usage = {"input_tokens": draw(COUNT), "output_tokens": draw(COUNT)}
    if draw(st.booleans()):
        usage["cache_read_input_tokens"] = draw(COUNT)
    body["usage"] = usage
    for key in ("model", "id"):
        if draw(st.booleans()):
            body[key] = draw(MAYBE_TEXT)
    return body


def both_ways(module: Any, call: Callable[[], Any]) -> tuple[Any, Any]:
    """The translation as it is, and with the short cut off (built part by part)."""
    fast = _outcome(call)
    with patch.object(module, "_plain_text", lambda *_: None):
        slow = _outcome(call)
    return fast, slow


def _outcome(call: Any) -> Any:
    try:
        return call()
    except UpstreamMalformed as exc:
        return ("malformed", exc.message)


def _same(fast: Any, slow: Any) -> None:
    if not isinstance(slow, GenerateContentResponse):
        assert fast == slow
        return
    assert isinstance(fast, GenerateContentResponse)
    assert wire_bytes(fast) == dump_json(slow)
    assert fast.facts() == ResponseFacts.of(slow)
    assert fast == slow


@given(body=completions(), include_thoughts=st.booleans(), unwrap=st.sampled_from([None, "v"]))
def test_a_chat_completion_translates_as_it_did(
    body: dict[str, Any], include_thoughts: bool, unwrap: str | None
) -> None:
    data = orjson.dumps(body)
    fast, slow = both_ways(
        openai,
        lambda: openai.from_wire(data, include_thoughts=include_thoughts, unwrap=unwrap),
    )
    _same(fast, slow)


@given(body=messages(), include_thoughts=st.booleans())
def test_a_messages_reply_translates_as_it_did(
    body: dict[str, Any], include_thoughts: bool
) -> None:
    data = orjson.dumps(body)
    context = anthropic.ReplyContext(include_thoughts=include_thoughts)
    fast, slow = both_ways(anthropic, lambda: anthropic.from_wire(data, context))
    _same(fast, slow)


ODD_VALUES = [None, "", [], "no", 0, 1, False, {"x": None}, [{"type": "url_citation",
              "url_citation": {"url": "https://a.example", "title": "A"}}], [{"content": []}]]  # fmt: skip


@pytest.mark.parametrize("value", ODD_VALUES)
@pytest.mark.parametrize(("where", "key"), CHANGES)
def test_each_field_of_a_chat_completion_changed(where: str, key: str, value: Any) -> None:
    message = {"role": "assistant", "content": "Hi", "refusal": None, "annotations": []}
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
    body = {"id": "c-1", "model": "m", "choices": [choice], "usage": _usage(3, 2, None, None)}
    {"body": body, "choice": choice, "message": message}[where][key] = value
    data = orjson.dumps(body)
    for thoughts in (False, True):
        _same(*both_ways(openai, partial(openai.from_wire, data, include_thoughts=thoughts)))


@pytest.mark.parametrize("stop_reason", ["end_turn", "refusal", "pause_turn", None, 3])
@pytest.mark.parametrize(
    "blocks",
    [
        [{"type": "text", "text": "Hi"}],
        [{"type": "text", "text": "Hi", "citations": [{"type": "x"}]}],
        [{"type": "text", "text": ""}],
        [{"type": "text", "text": 3}],
        [{"type": "text"}],
        [{"type": "thinking", "thinking": "hm", "signature": "s"}, {"type": "text", "text": "Hi"}],
        [{"type": "text", "text": "Hi"}, {"type": "text", "text": "there"}],
        ["text"],
        [],
    ],
)
def test_each_kind_of_messages_reply(blocks: list[Any], stop_reason: Any) -> None:
    body = {"type": "message", "id": "m-1", "model": "claude", "content": blocks,
            "stop_reason": stop_reason, "stop_details": {"category": "cyber"},
            "usage": {"input_tokens": 3, "output_tokens": 2}}  # fmt: skip
    data = orjson.dumps(body)
    for thoughts in (False, True):
        context = anthropic.ReplyContext(include_thoughts=thoughts)
        _same(*both_ways(anthropic, partial(anthropic.from_wire, data, context)))


def test_a_plain_answer_is_written_at_once() -> None:
    """The short cut is taken for the usual answer (not only allowed by the tests above)."""
    chat = {
        "id": "chatcmpl-1",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi", "refusal": None,
                     "annotations": []}, "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(5, 2, 0, 0),
    }  # fmt: skip
    answer = openai.from_wire(orjson.dumps(chat))
    assert "_raw" in answer.__dict__ and answer.facts().text_chars == 2
    assert orjson.loads(wire_bytes(answer))["candidates"][0]["content"]["parts"] == [{"text": "Hi"}]
    reply = {"type": "message", "content": [{"type": "text", "text": "Hi"}],
             "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 2}}  # fmt: skip
    answer = anthropic.from_wire(orjson.dumps(reply), anthropic.ReplyContext())
    assert "_raw" in answer.__dict__ and answer.facts().finish_reason == "STOP"


def test_an_answer_read_into_keeps_its_usage_as_built() -> None:
    """A Messages reply's cache writes have no field in Gemini's usage: the usage built by
    the translator carries them, and keeps them once the answer is parsed (the SDK prices
    the parsed answer)."""
    reply = {"type": "message", "content": [{"type": "text", "text": "Hi"}],
             "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 5,
                                                  "cache_creation_input_tokens": 90_000}}  # fmt: skip
    fast, slow = both_ways(
        anthropic, partial(anthropic.from_wire, orjson.dumps(reply), anthropic.ReplyContext())
    )
    built = fast.facts().usage
    assert fast.candidates[0].content.parts[0].text == "Hi"  # parses it
    assert fast.usage_metadata is built
    assert Tokens.from_usage(fast.usage_metadata) == Tokens.from_usage(slow.usage_metadata)
    assert Tokens.from_usage(fast.usage_metadata).cache_write == 90_000


async def test_the_sdk_prices_an_answer_with_cache_writes_as_before() -> None:
    reply = orjson.dumps(
        {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
         "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn",
         "usage": {"input_tokens": 10, "cache_creation_input_tokens": 90_000,
                   "output_tokens": 5}}
    )  # fmt: skip
    models = [
        {"model_name": "c", "params": {"model": "anthropic/claude-sonnet-4-5", "api_key": "k"}}
    ]

    async def cost() -> float | None:
        transport = MockTransport(
            lambda _: HttpResponse(200, {"content-type": "application/json"}, reply)
        )
        async with genroute.Client(models, transport=transport) as client:
            answer = await client.agenerate_content(model="c", contents="hi")
            return genroute.response_cost(answer)

    written = await cost()
    with patch.object(anthropic, "_plain_text", lambda *_: None):
        built = await cost()
    assert written == built and written is not None and written > 0.3  # 90k cache writes
