"""The SSE decoder re-frames events however TCP reads split or merge them."""

from __future__ import annotations

import random

import pytest

from genroute.sse import SSEDecoder, encode_event

EVENTS = [b'{"a":1}', b'{"b":"two words"}', b'{"c":[1,2,3]}']


def stream(sep: bytes) -> bytes:
    return b"".join(b"data: " + e + sep for e in EVENTS)


@pytest.mark.parametrize("sep", [b"\r\n\r\n", b"\n\n"])
def test_whole_stream_in_one_read(sep: bytes) -> None:
    assert SSEDecoder().feed(stream(sep)) == EVENTS


@pytest.mark.parametrize("sep", [b"\r\n\r\n", b"\n\n"])
def test_every_split_point_gives_the_same_events(sep: bytes) -> None:
    data = stream(sep)
    for cut in range(1, len(data)):
        decoder = SSEDecoder()
        assert decoder.feed(data[:cut]) + decoder.feed(data[cut:]) == EVENTS, cut


def test_random_fragmentation_byte_by_byte_and_merged() -> None:
    data = stream(b"\r\n\r\n") * 20
    rng = random.Random(7)
    for _ in range(50):
        decoder = SSEDecoder()
        got: list[bytes] = []
        pos = 0
        while pos < len(data):
            step = rng.randint(1, 40)
            got += decoder.feed(data[pos : pos + step])
            pos += step
        assert got == EVENTS * 20


def test_comments_event_and_id_lines_are_ignored_and_multiline_data_joined() -> None:
    raw = b': keepalive\r\nevent: message\r\nid: 3\r\ndata: {"x":\r\ndata: 1}\r\n\r\n'
    assert SSEDecoder().feed(raw) == [b'{"x":\n1}']


def test_flush_returns_an_unterminated_last_event() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"a":1}\r\n\r\ndata: {"b":2}') == [b'{"a":1}']
    assert decoder.flush() == [b'{"b":2}']
    assert decoder.flush() == []


def test_encode_event_is_googles_framing() -> None:
    assert encode_event(b'{"a":1}') == b'data: {"a":1}\r\n\r\n'
