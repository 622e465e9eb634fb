"""AWS's binary event-stream framing: split at every byte, corrupted, truncated.

The frames come from the fake's encoder, which is itself checked against botocore's own
client-side parser for ConverseStream (what boto3 would read from the real service).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pytest

from genroute.errors import UpstreamMalformed
from genroute.providers.bedrock.eventstream import EventMessage, EventStreamReader
from tests.fakes.bedrock_upstream import (
    event_frame,
    exception_frame,
    frame,
    reasoning,
    reply_for,
    stream_events,
    text,
    tool_use,
)

BODY = {"messages": [{"role": "user", "content": [text("hi")]}]}
REPLY = reply_for(BODY, [reasoning("Plan é ✓."), text("Héllo"), tool_use("f", {"a": 1}, "t1")])
EVENTS = stream_events(REPLY)
DATA = b"".join(event_frame(kind, payload) for kind, payload in EVENTS)


def read(data: bytes, cuts: list[int]) -> list[EventMessage]:
    reader = EventStreamReader()
    messages: list[EventMessage] = []
    start = 0
    for cut in [*cuts, len(data)]:
        messages += reader.feed(data[start:cut])
        start = cut
    reader.finish()
    return messages


def test_every_single_split_point_gives_the_same_messages() -> None:
    whole = read(DATA, [])
    assert [m.event_type for m in whole] == [kind for kind, _ in EVENTS]
    assert all(m.message_type == "event" for m in whole)
    assert whole[1].payload.startswith(b'{"contentBlockIndex": 0, "delta": {"reasoningContent"')
    head = b"".join(event_frame(kind, payload) for kind, payload in EVENTS[:4])
    messages = read(head, [])
    for cut in range(1, len(head)):  # inside and between preludes, headers, payloads, CRCs
        assert read(head, [cut]) == messages, cut


def test_byte_by_byte_and_in_two_cuts() -> None:
    whole = read(DATA, [])
    assert read(DATA, list(range(1, len(DATA)))) == whole
    step = max(1, len(DATA) // 40)
    for first in range(1, len(DATA), step):
        for second in range(first, len(DATA), step):
            assert read(DATA, [first, second]) == whole


def malformed(data: bytes) -> UpstreamMalformed:
    reader = EventStreamReader()
    with pytest.raises(UpstreamMalformed) as info:
        reader.feed(data)
        reader.finish()
    assert info.value.code == 502 and info.value.provider == "bedrock"
    return info.value


def test_a_corrupted_prelude_fails_at_once() -> None:
    bad = bytearray(DATA)
    bad[2] ^= 0x40  # the total length: its CRC no longer matches
    reader = EventStreamReader()
    with pytest.raises(UpstreamMalformed, match="prelude CRC"):
        reader.feed(bytes(bad[:12]))  # before the rest of the message arrives


@pytest.mark.parametrize("offset", [12, 20, -5, -1])
def test_a_corrupted_header_payload_or_crc_fails(offset: int) -> None:
    first = event_frame("messageStart", {"role": "assistant"})
    bad = bytearray(first)
    bad[offset] ^= 0x01
    assert "CRC" in malformed(bytes(bad)).message or "Checksum" in malformed(bytes(bad)).message


def _prelude(total: int, headers: int) -> bytes:
    head = struct.pack(">II", total, headers)
    return head + struct.pack(">I", zlib.crc32(head))


@pytest.mark.parametrize(
    ("total", "headers"), [(8, 0), (15, 0), (40, 30), (32 * 1024 * 1024, 0), (300_000, 200_000)]
)
def test_lengths_that_cannot_be_are_refused(total: int, headers: int) -> None:
    assert "out of range" in malformed(_prelude(total, headers)).message


def test_unknown_header_types_are_malformed() -> None:
    headers = b"\x04name" + b"\x63"  # header value type 99 does not exist
    total = 16 + len(headers)
    prelude = _prelude(total, len(headers))
    message = prelude + headers
    assert "headers" in malformed(message + struct.pack(">I", zlib.crc32(message))).message


def test_a_stream_that_ends_inside_a_message_is_malformed() -> None:
    reader = EventStreamReader()
    assert len(reader.feed(DATA[:-3])) == len(EVENTS) - 1
    assert reader.pending > 0
    with pytest.raises(UpstreamMalformed, match="ended inside a message"):
        reader.finish()


def test_exception_and_error_messages_keep_their_headers() -> None:
    error = frame({":message-type": "error", ":error-code": "InternalFailure",
                   ":error-message": "boom"}, b"")  # fmt: skip
    messages = read(exception_frame("throttlingException", "slow down") + error, [])
    assert messages[0].message_type == "exception"
    assert messages[0].header(":exception-type") == "throttlingException"
    assert messages[0].payload == b'{"message": "slow down"}'
    assert (messages[1].message_type, messages[1].header(":error-code")) == (
        "error",
        "InternalFailure",
    )
    assert messages[1].header("missing") == ""


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self) -> Any:
        yield from (self.data[i : i + 7] for i in range(0, len(self.data), 7))

    def close(self) -> None:
        pass


def test_botocore_reads_the_fakes_frames_as_converse_stream_events() -> None:
    """boto3's own event-stream parser accepts what the fake writes, event by event."""
    import botocore.session
    from botocore.eventstream import EventStream
    from botocore.parsers import EventStreamJSONParser

    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    shape = model.operation_model("ConverseStream").output_shape.members["stream"]
    stream = EventStream(_Raw(DATA), shape, EventStreamJSONParser(), "ConverseStream")
    parsed = list(stream)
    assert [next(iter(e)) for e in parsed] == [kind for kind, _ in EVENTS]
    assert parsed[-1]["metadata"]["usage"] == REPLY["usage"]
    bad = EventStream(
        _Raw(exception_frame("throttlingException", "slow")), shape, EventStreamJSONParser(),
        "ConverseStream",
    )  # fmt: skip
    with pytest.raises(Exception, match="slow"):
        list(bad)
