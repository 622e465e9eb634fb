"""Replies that are not their API's shape: every translator and stream decoder raises
UpstreamMalformed (502, reason MALFORMED, naming the provider), never a bare KeyError,
TypeError, AttributeError, IndexError or ValueError.

Besides the hand-written cases, every golden reply is mutated node by node (each value
replaced by a number, a string, an array, an object, null) and fed back: the translator
may accept the change or raise a genroute error, and nothing else.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from genroute.errors import FailureReason, GenrouteError, UpstreamMalformed
from genroute.providers.anthropic import response as anthropic
from genroute.providers.anthropic.stream import StreamDecoder as AnthropicDecoder
from genroute.providers.gemini import translate as gemini
from genroute.providers.openai import response as openai
from genroute.providers.openai.stream import StreamDecoder as OpenAIDecoder
from genroute.providers.shapes import Reader
from genroute.wire import (
    BatchEmbedContentsResponse,
    CountTokensResponse,
    EmbedContentResponse,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CONTEXT = anthropic.ReplyContext(include_thoughts=True)


def malformed(provider: str, run: Callable[[], object]) -> UpstreamMalformed:
    with pytest.raises(UpstreamMalformed) as info:
        run()
    error = info.value
    assert (error.code, error.status, error.reason) == (502, "UNAVAILABLE", FailureReason.MALFORMED)
    assert error.provider == provider and error.message.startswith(f"{provider} upstream sent")
    return error


# -- OpenAI Chat Completions ----------------------------------------------------------------

CHOICE = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
OPENAI_BODIES = {
    "truncated": b'{"choices": [{"message": {"content": "hi',
    "array": b"[]",
    "html": b"<html>502</html>",
    "no choices": b'{"id": "x"}',
    "choices a string": b'{"choices": "x"}',
    "choice a number": b'{"choices": [5]}',
    "message a string": orjson.dumps({"choices": [{**CHOICE, "message": "hi"}]}),
    "content a number": orjson.dumps({"choices": [{**CHOICE, "message": {"content": 5}}]}),
    "content parts not objects": orjson.dumps(
        {"choices": [{**CHOICE, "message": {"content": [1]}}]}
    ),
    "refusal a number": orjson.dumps({"choices": [{**CHOICE, "message": {"refusal": 1}}]}),
    "tool_calls a string": orjson.dumps({"choices": [{**CHOICE, "message": {"tool_calls": "f"}}]}),
    "tool call a list": orjson.dumps({"choices": [{**CHOICE, "message": {"tool_calls": [[]]}}]}),
    "function a list": orjson.dumps(
        {"choices": [{**CHOICE, "message": {"tool_calls": [{"id": "c", "function": []}]}}]}
    ),
    "call name a number": orjson.dumps(
        {"choices": [{**CHOICE, "message": {"tool_calls": [{"function": {"name": 7}}]}}]}
    ),
    "index a string": orjson.dumps({"choices": [{**CHOICE, "index": "zero"}]}),
    "finish_reason a number": orjson.dumps({"choices": [{**CHOICE, "finish_reason": 1}]}),
    "model a number": orjson.dumps({"choices": [CHOICE], "model": 4}),
    "id an object": orjson.dumps({"choices": [CHOICE], "id": {}}),
    "usage a list": orjson.dumps({"choices": [CHOICE], "usage": []}),
    "tokens a string": orjson.dumps({"choices": [CHOICE], "usage": {"prompt_tokens": "many"}}),
    "details a list": orjson.dumps(
        {"choices": [CHOICE], "usage": {"completion_tokens_details": [1]}}
    ),
    "logprobs a list": orjson.dumps({"choices": [{**CHOICE, "logprobs": [1]}]}),
    "logprob a string": orjson.dumps(
        {"choices": [{**CHOICE, "logprobs": {"content": [{"token": "a", "logprob": "low"}]}}]}
    ),
    "annotations an object": orjson.dumps(
        {"choices": [{**CHOICE, "message": {"content": "x", "annotations": {"a": 1}}}]}
    ),
}


@pytest.mark.parametrize("body", OPENAI_BODIES.values(), ids=OPENAI_BODIES.keys())
def test_openai_chat_completion(body: bytes) -> None:
    error = malformed("groq", lambda: openai.from_wire(body, provider="groq"))
    assert "chat completion" in error.message


EMBEDDINGS = {"data": [{"index": 0, "embedding": [0.1, 0.2]}], "usage": {"prompt_tokens": 2}}
EMBEDDING_BODIES = {
    "truncated": b'{"data": [',
    "array": b"[]",
    "no data": b"{}",
    "data an object": orjson.dumps({"data": {}}),
    "too few": orjson.dumps({"data": []}),
    "item a number": orjson.dumps({"data": [1]}),
    "embedding a string": orjson.dumps({"data": [{"index": 0, "embedding": "AAAA"}]}),
    "values strings": orjson.dumps({"data": [{"index": 0, "embedding": ["0.1"]}]}),
    "values booleans": orjson.dumps({"data": [{"index": 0, "embedding": [True]}]}),
    "index out of range": orjson.dumps({"data": [{"index": 3, "embedding": [0.1]}]}),
    "index a string": orjson.dumps({"data": [{"index": "0", "embedding": [0.1]}]}),
    "usage a string": orjson.dumps({**EMBEDDINGS, "usage": "2"}),
    "tokens a string": orjson.dumps({**EMBEDDINGS, "usage": {"prompt_tokens": "2"}}),
}


@pytest.mark.parametrize("body", EMBEDDING_BODIES.values(), ids=EMBEDDING_BODIES.keys())
def test_openai_embeddings(body: bytes) -> None:
    malformed("openai", lambda: openai.embeddings_from_wire(body, 1))


def test_openai_embeddings_well_formed() -> None:
    reply = openai.embeddings_from_wire(orjson.dumps(EMBEDDINGS), 1)
    assert (reply.vectors, reply.input_tokens) == ([[0.1, 0.2]], 2)
    without_usage = openai.embeddings_from_wire(orjson.dumps({"data": EMBEDDINGS["data"]}), 1)
    assert without_usage.input_tokens is None


OPENAI_EVENTS = {
    "truncated": b'{"choices": [{"delta": {"content": "a',
    "array": b"[]",
    "number": b"5",
    "choices a string": b'{"choices": "x"}',
    "choice a number": b'{"choices": [1]}',
    "delta a string": b'{"choices": [{"index": 0, "delta": "hi"}]}',
    "content a number": b'{"choices": [{"index": 0, "delta": {"content": 5}}]}',
    "tool_calls an object": b'{"choices": [{"index": 0, "delta": {"tool_calls": {}}}]}',
    "tool call index a string": b'{"choices": [{"delta": {"tool_calls": [{"index": "0"}]}}]}',
    "finish_reason a list": b'{"choices": [{"index": 0, "delta": {}, "finish_reason": []}]}',
    "usage a number": b'{"choices": [], "usage": 12}',
    "model a number": b'{"model": 4, "choices": []}',
}


@pytest.mark.parametrize("event", OPENAI_EVENTS.values(), ids=OPENAI_EVENTS.keys())
def test_openai_stream_event(event: bytes) -> None:
    decoder = OpenAIDecoder(provider="openai")
    decoder.feed(b'{"id": "c", "choices": [{"index": 0, "delta": {"content": "ok"}}]}')
    error = malformed("openai", lambda: decoder.feed(event))
    assert "stream event" in error.message


# -- Anthropic Messages ---------------------------------------------------------------------

MESSAGE = {"id": "msg_1", "type": "message", "model": "claude", "content": [], "usage": {}}
ANTHROPIC_BODIES = {
    "truncated": b'{"type": "message", "content": [',
    "array": b"[]",
    "content a number": orjson.dumps({**MESSAGE, "content": 5}),
    "content a string": orjson.dumps({**MESSAGE, "content": "hi"}),
    "block a string": orjson.dumps({**MESSAGE, "content": ["hi"]}),
    "text a number": orjson.dumps({**MESSAGE, "content": [{"type": "text", "text": 5}]}),
    "type a number": orjson.dumps({**MESSAGE, "content": [{"type": 1}]}),
    "thinking a list": orjson.dumps({**MESSAGE, "content": [{"type": "thinking", "thinking": []}]}),
    "signature a number": orjson.dumps(
        {**MESSAGE, "content": [{"type": "thinking", "thinking": "t", "signature": 1}]}
    ),
    "tool_use without name": orjson.dumps(
        {**MESSAGE, "content": [{"type": "tool_use", "id": "t", "input": {}}]}
    ),
    "tool input a list": orjson.dumps(
        {**MESSAGE, "content": [{"type": "tool_use", "id": "t", "name": "f", "input": [1]}]}
    ),
    "tool id a number": orjson.dumps(
        {**MESSAGE, "content": [{"type": "tool_use", "id": 9, "name": "f", "input": {}}]}
    ),
    "model a number": orjson.dumps({**MESSAGE, "model": 3}),
    "stop_reason a number": orjson.dumps({**MESSAGE, "stop_reason": 1}),
    "stop_details a string": orjson.dumps({**MESSAGE, "stop_details": "no"}),
    "usage a list": orjson.dumps({**MESSAGE, "usage": []}),
    "tokens a string": orjson.dumps({**MESSAGE, "usage": {"input_tokens": "10"}}),
    "details a number": orjson.dumps({**MESSAGE, "usage": {"output_tokens_details": 1}}),
}


@pytest.mark.parametrize("body", ANTHROPIC_BODIES.values(), ids=ANTHROPIC_BODIES.keys())
def test_anthropic_message(body: bytes) -> None:
    error = malformed("anthropic", lambda: anthropic.from_wire(body, CONTEXT))
    assert "message" in error.message


START = {"type": "message_start", "message": {"id": "m", "model": "claude", "usage": {}}}
ANTHROPIC_EVENTS = {
    "truncated": b'{"type": "content_block_delta", "index": 0, "delta": {"type": "text_de',
    "array": b"[]",
    "string": b'"message_stop"',
    "type a number": b'{"type": 5}',
    "message a string": b'{"type": "message_start", "message": "m"}',
    "usage a list": b'{"type": "message_start", "message": {"usage": [1]}}',
    "index a string": b'{"type": "content_block_start", "index": "0", "content_block": {"type": "text"}}',
    "block a list": b'{"type": "content_block_start", "index": 0, "content_block": []}',
    "tool_use without name": b'{"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t"}}',
    "delta a string": b'{"type": "content_block_delta", "index": 0, "delta": "x"}',
    "text a number": b'{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}}',
    "stop_reason a list": b'{"type": "message_delta", "delta": {"stop_reason": []}}',
    "message_delta usage a number": b'{"type": "message_delta", "delta": {}, "usage": 5}',
}


@pytest.mark.parametrize("event", ANTHROPIC_EVENTS.values(), ids=ANTHROPIC_EVENTS.keys())
def test_anthropic_stream_event(event: bytes) -> None:
    decoder = AnthropicDecoder(CONTEXT)
    decoder.feed(START)
    decoder.feed({"type": "content_block_start", "index": 0, "content_block": {"type": "text"}})
    error = malformed("anthropic", lambda: decoder.feed(event))
    assert "stream event" in error.message


@pytest.mark.parametrize("pieces", [["{not json"], ["[1, 2]"]], ids=["not JSON", "not an object"])
def test_anthropic_streamed_tool_arguments(pieces: list[str]) -> None:
    decoder = AnthropicDecoder(CONTEXT)
    decoder.feed(START)
    block = {"type": "tool_use", "id": "t", "name": "f", "input": {}}
    decoder.feed({"type": "content_block_start", "index": 0, "content_block": block})
    for piece in pieces:
        delta = {"type": "input_json_delta", "partial_json": piece}
        decoder.feed({"type": "content_block_delta", "index": 0, "delta": delta})
    malformed("anthropic", lambda: decoder.feed({"type": "content_block_stop", "index": 0}))


def test_anthropic_usage_with_stream_totals_of_the_wrong_type() -> None:
    decoder = AnthropicDecoder(CONTEXT)
    decoder.feed(START)
    decoder.feed({"type": "message_delta", "delta": {}, "usage": {"output_tokens": "7"}})
    malformed("anthropic", lambda: decoder.feed({"type": "message_stop"}))


# -- Gemini ---------------------------------------------------------------------------------

GEMINI_BODIES = {
    "truncated": b'{"candidates": [',
    "array": b"[]",
    "empty": b"",
    "candidates a string": b'{"candidates": "x"}',
    "content a number": b'{"candidates": [{"content": 5}]}',
    "text a number": b'{"candidates": [{"content": {"parts": [{"text": 5}]}}]}',
    "usage a list": b'{"usageMetadata": []}',
    "tokens a string": b'{"usageMetadata": {"promptTokenCount": "many"}}',
    "modelVersion a number": b'{"modelVersion": 5}',
}


@pytest.mark.parametrize("body", GEMINI_BODIES.values(), ids=GEMINI_BODIES.keys())
def test_gemini_response_and_stream_event(body: bytes) -> None:
    malformed("gemini", lambda: gemini.from_wire(body))
    malformed("gemini", lambda: gemini.decode_event(body))


@pytest.mark.parametrize(
    ("reply", "body"),
    [
        (CountTokensResponse, b'{"totalTokens": "ten"}'),
        (CountTokensResponse, b"[]"),
        (EmbedContentResponse, b'{"embedding": {"values": "x"}}'),
        (EmbedContentResponse, b'{"embedding": 5}'),
        (BatchEmbedContentsResponse, b'{"embeddings": {"values": []}}'),
        (BatchEmbedContentsResponse, b'{"embeddings": [{"values": ["a"]}]}'),
    ],
)
def test_gemini_other_replies(reply: type[Any], body: bytes) -> None:
    malformed("gemini", lambda: gemini.parse_reply(body, reply, "reply"))


def test_the_reader_names_the_field_and_what_it_found() -> None:
    reader = Reader("openai", "chat completion")
    with pytest.raises(
        UpstreamMalformed, match=r"choices\[0\]\.message is a string, not an object"
    ):
        reader.obj("x", "choices[0].message")
    with pytest.raises(UpstreamMalformed, match=r"choices is missing \(or null\), not an array"):
        reader.array(None, "choices", required=True)
    assert reader.integer(3.0, "n") == 3 and reader.integer(None, "n") is None
    with pytest.raises(UpstreamMalformed, match="is a boolean, not a whole number"):
        reader.integer(True, "n")


# -- every golden reply, mutated node by node -----------------------------------------------

WRONG: list[Any] = [7, "x", [], {"k": 1}, None]


def mutations(value: Any) -> Iterator[Any]:
    """`value` with one node replaced by each wrong value in turn, for every node."""
    if isinstance(value, dict):
        for key, item in value.items():
            for wrong in WRONG:
                if wrong != item:
                    yield {**value, key: wrong}
            for changed in mutations(item):
                yield {**value, key: changed}
    elif isinstance(value, list):
        for i, item in enumerate(value):
            for wrong in WRONG:
                if wrong != item:
                    yield [*value[:i], wrong, *value[i + 1 :]]
            for changed in mutations(item):
                yield [*value[:i], changed, *value[i + 1 :]]


def survives(run: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    """Accepted, or refused with a genroute error; anything else fails the test."""
    with contextlib.suppress(GenrouteError):
        run(*args, **kwargs)


def load(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.mark.parametrize(
    "path", sorted((FIXTURES / "openai").glob("response_*.in.json")), ids=lambda p: p.name
)
def test_mutated_openai_replies(path: Path) -> None:
    case = load(path)
    bodies = [orjson.dumps(body) for body in mutations(case["body"])]
    for data in bodies:
        survives(openai.from_wire, data, include_thoughts=True, unwrap=case.get("unwrap"))
    assert len(bodies) > 20


@pytest.mark.parametrize(
    "path", sorted((FIXTURES / "anthropic").glob("response_*.in.json")), ids=lambda p: p.name
)
def test_mutated_anthropic_replies(path: Path) -> None:
    case = load(path)
    context = anthropic.ReplyContext(**case.get("context", {}))
    bodies = [orjson.dumps(message) for message in mutations(case["message"])]
    for data in bodies:
        survives(anthropic.from_wire, data, context)
    assert len(bodies) > 20


@pytest.mark.parametrize("name", ["response_rich.json", "response_blocked.json"])
def test_mutated_gemini_replies(name: str) -> None:
    bodies = [orjson.dumps(body) for body in mutations(load(FIXTURES / "gemini" / name))]
    for data in bodies:
        survives(gemini.from_wire, data)
    assert len(bodies) > 20


def _feed_openai(case: dict[str, Any], events: list[Any]) -> None:
    decoder = OpenAIDecoder(include_thoughts=True, unwrap=case.get("unwrap"))
    for event in events:
        decoder.feed(event.encode() if isinstance(event, str) else orjson.dumps(event))
    decoder.end()


def _feed_anthropic(case: dict[str, Any], events: list[Any]) -> None:
    decoder = AnthropicDecoder(anthropic.ReplyContext(**case.get("context", {})))
    for event in events:
        decoder.feed(orjson.dumps(event))
    decoder.finish()


STREAMS = [
    *[("openai", p) for p in sorted((FIXTURES / "openai").glob("stream_*.in.json"))],
    *[("anthropic", p) for p in sorted((FIXTURES / "anthropic").glob("stream_*.in.json"))],
]


@pytest.mark.parametrize(("api", "path"), STREAMS, ids=[p.name for _, p in STREAMS])
def test_mutated_stream_events(api: str, path: Path) -> None:
    case = load(path)
    feed = _feed_openai if api == "openai" else _feed_anthropic
    events = case["events"]
    tried = 0
    for i, event in enumerate(events):
        for changed in [*mutations(event), *[w for w in WRONG if w != event]]:
            survives(feed, case, [*events[:i], changed, *events[i + 1 :]])
            tried += 1
    assert tried > 50
