"""AWS's binary event-stream framing (`application/vnd.amazon.eventstream`), read
incrementally: bytes in as they arrive, split anywhere, whole messages out.

    message := prelude headers payload message_crc
    prelude := total_length:u32 headers_length:u32 prelude_crc:u32    (big-endian)
    headers := (name_length:u8 name type:u8 value)*
    message_crc := CRC32 of everything before it

`EventStreamReader` checks each prelude as soon as its 12 bytes are in (the CRC, and lengths
that fit botocore's limits), so a corrupted length fails at once instead of waiting for
bytes that never come; each complete message then goes through botocore's own parser
(`botocore.eventstream.EventStreamBuffer`), which checks the message CRC and decodes the
headers. Anything wrong is UpstreamMalformed naming what, and a stream that ends inside a
message is too (`finish`).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genroute.errors import UpstreamMalformed
from genroute.providers.shapes import malformed

__all__ = ["MAX_MESSAGE", "PRELUDE", "EventMessage", "EventStreamReader"]

PRELUDE = 12  # total length, headers length, prelude CRC
_MIN_MESSAGE = PRELUDE + 4  # and the message CRC
# botocore's limits: 128 KiB of headers, 16 MiB of payload.
_MAX_HEADERS = 128 * 1024
MAX_MESSAGE = _MIN_MESSAGE + _MAX_HEADERS + 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class EventMessage:
    """One decoded message: its headers (`:message-type`, `:event-type`...) and payload."""

    headers: Mapping[str, Any]
    payload: bytes

    def header(self, name: str) -> str:
        """A header's value as text ("" when absent)."""
        value = self.headers.get(name)
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return "" if value is None else str(value)

    @property
    def message_type(self) -> str:
        """`event`, `exception` or `error`."""
        return self.header(":message-type")

    @property
    def event_type(self) -> str:
        """The event's name (`messageStart`, `contentBlockDelta`...)."""
        return self.header(":event-type")


class EventStreamReader:
    """Turns the bytes of one event stream into messages; see the module docstring."""

    def __init__(self, provider: str = "bedrock") -> None:
        from botocore.eventstream import EventStreamBuffer

        self._provider = provider
        self._data = bytearray()
        self._parser = EventStreamBuffer()

    def _fail(self, detail: str) -> UpstreamMalformed:
        return malformed(self._provider, "event stream", detail)

    def _expected_length(self) -> int:
        """The total length the buffered prelude announces, after checking it."""
        total, headers = struct.unpack_from(">II", self._data)
        (crc,) = struct.unpack_from(">I", self._data, 8)
        if zlib.crc32(bytes(self._data[:8])) != crc:
            raise self._fail("prelude CRC mismatch")
        if total < _MIN_MESSAGE or total > MAX_MESSAGE:
            raise self._fail(f"message length {total} out of range")
        if headers > _MAX_HEADERS or headers > total - _MIN_MESSAGE:
            raise self._fail(f"headers length {headers} out of range")
        return int(total)

    def feed(self, data: bytes) -> list[EventMessage]:
        """The messages `data` completes (often none)."""
        from botocore.eventstream import ParserError

        self._data += data
        messages: list[EventMessage] = []
        while len(self._data) >= PRELUDE:
            total = self._expected_length()
            if len(self._data) < total:
                break
            frame = bytes(self._data[:total])
            del self._data[:total]
            self._parser.add_data(frame)
            try:
                message = next(self._parser)
            except ParserError as exc:
                raise self._fail(f"{type(exc).__name__}: {exc}") from None
            except (struct.error, ValueError, KeyError, IndexError, StopIteration) as exc:
                raise self._fail(f"headers that cannot be decoded ({exc!r})") from None
            messages.append(EventMessage(dict(message.headers), bytes(message.payload)))
        return messages

    @property
    def pending(self) -> int:
        """Bytes of a message not complete yet."""
        return len(self._data)

    def finish(self) -> None:
        """At the end of the stream: raise if it stopped inside a message."""
        if self._data:
            raise self._fail(f"the stream ended inside a message ({len(self._data)} bytes)")
