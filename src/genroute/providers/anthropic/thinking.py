"""Carrying Anthropic thinking blocks through Gemini's `thoughtSignature`.

Anthropic wants every `thinking` (text + signature) and `redacted_thinking` block of the
assistant turn that made a tool call sent back unchanged, before that `tool_use`. Gemini
clients only promise to echo `thoughtSignature`: gemini-cli drops thought parts from its
history but keeps the signature of each `functionCall` part; the Python SDK keeps whole
parts but re-encodes the bytes as URL-safe base64.

So a thoughtSignature produced here is an envelope: base64 of a marker line followed by the
JSON list of the thinking blocks themselves. The blocks that precede a part ride on it:

- the next non-thought part (text or functionCall) carries the blocks since the previous
  non-thought part;
- the first functionCall after them carries every block not yet on a functionCall, so a
  client that strips signatures from text parts still sends them back with the call;
- blocks with nothing after them ride on the last thought part (or are dropped when thoughts
  are not returned: a turn that ends in thinking is never a tool turn).

Reading history, `blocks_from_signature` opens an envelope; duplicates (the same block on a
text part and on a functionCall, or on a kept thought part) are removed by the caller.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

__all__ = [
    "MARKER",
    "Block",
    "ThoughtCarrier",
    "block_key",
    "blocks_from_signature",
    "encode_signature",
]

MARKER = b"genroute/anthropic-thinking/1\n"
Block = dict[str, Any]


def encode_signature(blocks: list[Block]) -> str:
    """The thoughtSignature envelope for some thinking / redacted_thinking blocks."""
    return base64.b64encode(MARKER + orjson.dumps(blocks)).decode("ascii")


def _b64decode(text: str) -> bytes | None:
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        return None


def blocks_from_signature(signature: str | None) -> list[Block] | None:
    """The thinking blocks inside an envelope; None when it is not one of ours."""
    if not signature:
        return None
    raw = _b64decode(signature)
    if raw is None or not raw.startswith(MARKER):
        return None
    try:
        loaded = orjson.loads(raw[len(MARKER) :])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(loaded, list):
        return None
    blocks: list[Block] = []
    for item in loaded:
        block = _clean_block(item)
        if block is None:
            return None
        blocks.append(block)
    return blocks


def _clean_block(item: Any) -> Block | None:
    if not isinstance(item, dict):
        return None
    if item.get("type") == "thinking":
        text, signature = item.get("thinking"), item.get("signature")
        if isinstance(text, str) and isinstance(signature, str):
            return {"type": "thinking", "thinking": text, "signature": signature}
    elif item.get("type") == "redacted_thinking" and isinstance(item.get("data"), str):
        return {"type": "redacted_thinking", "data": item["data"]}
    return None


def block_key(block: Block) -> tuple[str, str]:
    """What identifies a thinking block when the same one arrives twice."""
    if block["type"] == "thinking":
        return ("thinking", str(block["signature"]))
    return ("redacted_thinking", str(block["data"]))


class ThoughtCarrier:
    """Decides which part of a response carries which thinking blocks (module docstring)."""

    __slots__ = ("_pending", "_unanchored")

    def __init__(self) -> None:
        self._pending: list[Block] = []
        self._unanchored: list[Block] = []

    def add(self, block: Block) -> None:
        """A complete thinking or redacted_thinking block from the upstream."""
        self._pending.append(block)
        self._unanchored.append(block)

    def for_text(self) -> str | None:
        """The signature for a text part about to be sent."""
        if not self._pending:
            return None
        signature = encode_signature(self._pending)
        self._pending = []
        return signature

    def for_call(self) -> str | None:
        """The signature for a functionCall part about to be sent."""
        if not self._unanchored:
            return None
        signature = encode_signature(self._unanchored)
        self._pending, self._unanchored = [], []
        return signature

    def leftover(self) -> str | None:
        """The signature of blocks that no part carried yet (end of the message)."""
        return self.for_text()
