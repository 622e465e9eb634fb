"""A deterministic embedding model for semantic-cache tests: bag of words.

Words are lower-cased, common words dropped and a few synonyms folded, and each remaining
word adds 1 to one of `DIM` dimensions (by CRC-32): two prompts that use the same content
words ("What is the capital of France?", "Tell me France's capital city") embed to the
same direction, an unrelated one ("How do I bake bread?") to an orthogonal one.
`SemanticGemini` is the fake Gemini upstream embedding with it.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from tests.fakes.gemini_upstream import FakeGemini, field_of

DIM = 64
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "can",
        "city",
        "could",
        "do",
        "does",
        "for",
        "give",
        "i",
        "in",
        "is",
        "it",
        "me",
        "of",
        "please",
        "s",
        "tell",
        "that",
        "the",
        "to",
        "what",
        "which",
        "would",
        "you",
        "your",
    ]
)
SYNONYMS = {"capitol": "capital", "french": "france"}


def bag_of_words(text: str, dim: int = DIM) -> list[float]:
    """The text's content words counted into `dim` dimensions (not normalised)."""
    values = [0.0] * dim
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in STOPWORDS:
            continue
        word = SYNONYMS.get(word, word)
        values[zlib.crc32(word.encode()) % dim] += 1.0
    if not any(values):
        values[0] = 1.0
    return values


def _text(content: Any) -> str:
    parts = field_of(content, "parts") or []
    if isinstance(parts, dict):
        parts = [parts]
    return " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


class SemanticGemini(FakeGemini):
    """The fake Gemini upstream, embedding by bag of words (see the module docstring)."""

    def _answer(self, rec: Any) -> Any:
        if rec.action == "embedContent":
            return {"embedding": {"values": bag_of_words(_text(field_of(rec.body, "content")))}}
        return super()._answer(rec)
