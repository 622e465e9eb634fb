"""Server-Sent Events: an incremental decoder for upstream streams, and the encoder we send.

The decoder is fed raw TCP reads, which may split one event or merge several, and
returns the `data` payload of each complete event. It understands `\\r\\n` and `\\n`
line endings, joins multi-line `data:` fields, and ignores comments, `event:`, `id:`
and `retry:` lines. A `[DONE]` sentinel (OpenAI) is returned like any other payload.
"""

from __future__ import annotations

__all__ = ["EVENT_END", "SSEDecoder", "encode_event"]

EVENT_END = b"\r\n\r\n"


class SSEDecoder:
    """Turns a byte stream into complete SSE `data` payloads."""

    __slots__ = ("_buffer", "_data")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add bytes from the wire; return the payloads of the events they completed."""
        buffer = self._buffer + chunk if self._buffer else chunk
        events: list[bytes] = []
        start = 0
        while True:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            line = buffer[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
            # Comments (":"), "event:", "id:" and "retry:" lines carry nothing we relay.
        self._buffer = buffer[start:]
        return events

    def flush(self) -> list[bytes]:
        """The last event, when the stream ended without its closing blank line."""
        tail = self._buffer.rstrip(b"\r")
        self._buffer = b""
        if tail.startswith(b"data:"):
            value = tail[5:]
            self._data.append(value[1:] if value.startswith(b" ") else value)
        events = [b"\n".join(self._data)] if self._data else []
        self._data = []
        return events


def encode_event(payload: bytes) -> bytes:
    """One SSE event exactly as Google frames it: `data: <json>\\r\\n\\r\\n`."""
    return b"data: " + payload + EVENT_END
