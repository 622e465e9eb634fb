"""Replies that are not the Converse shape: the Bedrock translator and stream decoder raise
UpstreamMalformed (502, reason MALFORMED, naming the field), never a bare KeyError,
TypeError, AttributeError, IndexError or ValueError. Every golden reply and stream event is
mutated node by node (each value replaced by a number, a string, an array, an object, null)
and fed back: it may be accepted or refused with a genroute error, and nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from genroute.errors import FailureReason, GenrouteError, UpstreamMalformed
from genroute.providers.bedrock.response import from_wire
from genroute.providers.bedrock.stream import StreamDecoder
from tests.providers.bedrock.golden import FIXTURES, context, load, names

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


def survives(run: Callable[..., object], *args: Any) -> None:
    """Accepted, or refused with a genroute error; anything else fails the test."""
    with contextlib.suppress(GenrouteError):
        run(*args)


@pytest.mark.parametrize("name", names("response"))
def test_mutated_replies(name: str) -> None:
    case = load(FIXTURES / f"{name}.in.json")
    bodies = [orjson.dumps(body) for body in mutations(case["reply"])]
    for data in bodies:
        survives(from_wire, data, context(case))
    assert len(bodies) > 20


def _feed(case: dict[str, Any], events: list[Any]) -> None:
    decoder = StreamDecoder(context(case))
    for event_type, payload in events:
        decoder.feed(event_type, orjson.dumps(payload))
    decoder.finish()


@pytest.mark.parametrize("name", names("stream"))
def test_mutated_stream_events(name: str) -> None:
    case = load(FIXTURES / f"{name}.in.json")
    events = case["events"]
    tried = 0
    for i, (event_type, payload) in enumerate(events):
        for changed in [*mutations(payload), *[w for w in WRONG if w != payload]]:
            survives(_feed, case, [*events[:i], (event_type, changed), *events[i + 1 :]])
            tried += 1
    assert tried >= 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"[]", "an array, not an object"),
        (b'{"output": 5}', "output is a number"),
        (b'{"output": {"message": {"content": "x"}}}', "output.message.content is a string"),
        (b'{"output": {"message": {"content": [{"toolUse": {"input": {}}}]}}}', "toolUse.name"),
        (b'{"output": {"message": {"content": [{"text": 1}]}}}', "content[0].text is a number"),
        (
            b'{"output": {"message": {"content": []}}, "usage": {"inputTokens": "9"}}',
            "usage.inputTokens",
        ),
    ],
)
def test_the_error_names_the_field(body: bytes, field: str) -> None:
    with pytest.raises(UpstreamMalformed) as info:
        from_wire(body, context({}))
    error = info.value
    assert (error.code, error.reason, error.provider) == (502, FailureReason.MALFORMED, "bedrock")
    assert field in error.message
