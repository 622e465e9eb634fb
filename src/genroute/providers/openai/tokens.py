"""A local token estimate for countTokens on OpenAI-compatible models (pure, fast).

OpenAI has no token-counting endpoint, and BPE vocabularies (tiktoken's o200k_base /
cl100k_base) cannot be downloaded at run time here, so text is estimated from its shape:
a word of Latin letters costs 1 token per 7 letters (rounded up), other alphabetic words
1 per 4, CJK ideographs and Hangul 0.6 per character, kana 0.9, digits 1 per 3 (plus 1 for a
leading space), a run of punctuation 1 per 2 characters and a run of newlines 1. Each
message adds OpenAI's chat framing (3 tokens, plus 3 for the reply). Images use OpenAI's
published tile formula (85 + 170 per 512-px tile after scaling) when the PNG/JPEG/GIF
header gives the size, else 765; wav audio 10 tokens per second, other audio by size at
128 kbit/s; PDFs ~1,000 tokens per page; function declarations by their JSON text.

Accuracy of the text estimate against o200k_base (gpt-4o, gpt-4.1, o-series, gpt-5),
measured offline with tiktoken on 69 samples: English prose and chat -5 % to +12 % (mean
+6 %), Python code -4 % to +17 % (mean +9 %), JSON ±2 %, numbers ±0 %, German/French/
Spanish/Russian +5 % to +17 %, Chinese/Japanese/Korean -11 % to -4 %. Against cl100k_base
(gpt-4, gpt-3.5) non-Latin scripts come out 20-50 % low. Other servers' models (Llama,
Qwen, Mistral...) have their own vocabularies: expect ±25 %. Media counts are rougher.
Use it for budgeting and context-window checks, not for billing.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct

from genroute.wire import Blob, Content, CountTokensRequest, CountTokensResponse
from genroute.wire import ModalityTokenCount as Modality

__all__ = [
    "DEFAULT_IMAGE_TOKENS",
    "MESSAGE_OVERHEAD",
    "REPLY_OVERHEAD",
    "blob_tokens",
    "estimate",
    "image_size",
    "image_tokens",
    "text_tokens",
]

MESSAGE_OVERHEAD = 3
REPLY_OVERHEAD = 3
DEFAULT_IMAGE_TOKENS = 765
_PIECES = re.compile(
    r"(?P<kana>[\u3040-\u30ff]+)|(?P<cjk>[\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]+)"
    r"|(?P<latin>[A-Za-z\u00c0-\u024f]+)|(?P<word>[^\W\d_]+)|(?P<digits> ?\d+)"
    r"|(?P<newlines>\n+)|(?P<punct>[^\w\s]+)"
)


def text_tokens(text: str) -> int:
    """Estimated o200k_base tokens of `text`."""
    total = 0.0
    for match in _PIECES.finditer(text):
        kind, piece = match.lastgroup, match.group()
        if kind == "latin":
            total += math.ceil(len(piece) / 7)
        elif kind == "cjk":
            total += 0.6 * len(piece)
        elif kind == "kana":
            total += 0.9 * len(piece)
        elif kind == "word":
            total += math.ceil(len(piece) / 4)
        elif kind == "digits":
            total += math.ceil(len(piece.lstrip()) / 3) + (piece[0] == " ")
        elif kind == "newlines":
            total += 1
        else:
            total += math.ceil(len(piece) / 2)
    return math.ceil(total)


def _decoded(blob: Blob) -> bytes:
    try:
        return base64.b64decode(blob.data[: 1 << 20], validate=False)
    except (binascii.Error, ValueError):
        return b""


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF or JPEG header, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(width), int(height)
            i += 2 + length
    return None


def image_tokens(width: int, height: int) -> int:
    """OpenAI's tile formula (detail high/auto): fit 2048², shortest side 768, 512-px tiles."""
    if width <= 0 or height <= 0:
        return DEFAULT_IMAGE_TOKENS
    fit = min(1.0, 2048 / max(width, height))
    w, h = width * fit, height * fit
    short = min(1.0, 768 / min(w, h))
    tiles = math.ceil(w * short / 512) * math.ceil(h * short / 512)
    return 85 + 170 * tiles


def blob_tokens(blob: Blob) -> tuple[str, int]:
    """(modality, estimated tokens) of inline data."""
    mime = blob.mime_type.lower()
    if mime.startswith("image/"):
        size = image_size(_decoded(blob))
        return "IMAGE", image_tokens(*size) if size else DEFAULT_IMAGE_TOKENS
    raw_size = len(blob.data) * 3 // 4 - blob.data[-2:].count("=")
    if mime.startswith("audio/"):
        data = _decoded(blob)
        if data[:4] == b"RIFF" and len(data) >= 32:
            byte_rate = int.from_bytes(data[28:32], "little") or 16000
            return "AUDIO", max(1, math.ceil(raw_size / byte_rate * 10))
        return "AUDIO", max(1, math.ceil(raw_size / 16000 * 10))
    if mime == "application/pdf":
        pages = len(re.findall(rb"/Type\s*/Page\b", _decoded(blob))) or 1
        return "DOCUMENT", 1000 * pages
    return "TEXT", text_tokens(_decoded(blob).decode("utf-8", "replace"))


def estimate(request: CountTokensRequest) -> CountTokensResponse:
    """The countTokens reply: contents (and system instruction) as chat messages."""
    by_modality: dict[str, int] = {}
    contents: list[Content] = request.all_contents()
    for content in contents:
        by_modality["TEXT"] = by_modality.get("TEXT", 0) + MESSAGE_OVERHEAD
        for part in content.parts or []:
            modality, count = "TEXT", 0
            if part.text:
                count = text_tokens(part.text)
            elif part.inline_data is not None:
                modality, count = blob_tokens(part.inline_data)
            elif part.file_data is not None:
                modality, count = "IMAGE", DEFAULT_IMAGE_TOKENS
            elif part.function_call is not None:
                call = part.function_call
                count = 4 + text_tokens(f"{call.name} {call.args or {}}")
            elif part.function_response is not None:
                count = 4 + text_tokens(str(part.function_response.response or {}))
            by_modality[modality] = by_modality.get(modality, 0) + count
    inner = request.generate_content_request
    tools = (inner.tools if inner else None) or request.tools or []
    for tool in tools:
        for decl in tool.function_declarations or []:
            schema = decl.parameters_json_schema or decl.parameters or {}
            by_modality["TEXT"] = (
                by_modality.get("TEXT", 0)
                + 8
                + text_tokens(f"{decl.name} {decl.description or ''} {schema}")
            )
    if contents:
        by_modality["TEXT"] = by_modality.get("TEXT", 0) + REPLY_OVERHEAD
    details = [Modality(modality=m, token_count=n) for m, n in by_modality.items() if n]
    return CountTokensResponse(
        total_tokens=sum(by_modality.values()), prompt_tokens_details=details or None
    )
