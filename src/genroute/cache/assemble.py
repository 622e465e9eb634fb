"""A stream's chunks assembled into one response (what the cache stores), and a stored
response cut into stream chunks again (what a streamed hit replays).

Assembling works on the wire JSON, so fields genroute does not model are kept: text parts
that follow each other (with the same `thought` flag) are joined, a `thoughtSignature` is
kept on the part it came with, other parts are kept as they came; a candidate keeps its
last finish reason, safety ratings and metadata, and every citation; the response keeps
the last usage, model version and response id.

Replaying cuts text into pieces of about `CHUNK_CHARS` characters at word boundaries (as
models stream), one part per chunk; the last chunk of a candidate carries its finish
reason and metadata, and the last chunk of all the usage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from genroute.wire import GenerateContentResponse

__all__ = ["CHUNK_CHARS", "assemble", "replay"]

CHUNK_CHARS = 80
_WORDS = re.compile(r"\S+\s*|\s+")
_TEXT_KEYS = frozenset({"text", "thought", "thoughtSignature"})
_RESPONSE_META = ("usageMetadata", "promptFeedback")


def _merge_part(parts: list[dict[str, Any]], part: dict[str, Any]) -> None:
    last = parts[-1] if parts else None
    if (
        last is not None
        and "text" in part
        and "text" in last
        and part.keys() <= _TEXT_KEYS
        and last.keys() <= _TEXT_KEYS
        and bool(part.get("thought")) == bool(last.get("thought"))
        and "thoughtSignature" not in last
    ):
        last["text"] += part["text"]
        if "thoughtSignature" in part:
            last["thoughtSignature"] = part["thoughtSignature"]
        return
    parts.append(dict(part))


def _merge_candidate(into: dict[str, Any], candidate: dict[str, Any]) -> None:
    for name, value in candidate.items():
        if name == "content":
            content = into.setdefault("content", {"role": value.get("role", "model")})
            if value.get("role"):
                content["role"] = value["role"]
            parts = content.setdefault("parts", [])
            for part in value.get("parts") or ():
                _merge_part(parts, part)
        elif name == "citationMetadata":
            sources = into.setdefault("citationMetadata", {}).setdefault("citationSources", [])
            sources.extend(value.get("citationSources") or ())
        else:
            into[name] = value


def assemble(chunks: Iterable[GenerateContentResponse]) -> GenerateContentResponse:
    """One response saying what the chunks of a stream said together."""
    whole: dict[str, Any] = {}
    candidates: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        data = chunk.to_dict()
        for position, candidate in enumerate(data.pop("candidates", None) or ()):
            index = int(candidate.get("index", position))
            _merge_candidate(candidates.setdefault(index, {}), candidate)
        whole.update(data)
    if candidates:
        whole["candidates"] = [candidates[i] for i in sorted(candidates)]
    return GenerateContentResponse.model_validate(whole)


def _pieces(text: str, size: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for word in _WORDS.findall(text):
        current += word
        if len(current) >= size:
            pieces.append(current)
            current = ""
    if current or not pieces:
        pieces.append(current)
    return pieces


def _part_chunks(part: dict[str, Any], size: int) -> list[dict[str, Any]]:
    if "text" not in part or not part.keys() <= _TEXT_KEYS:
        return [part]
    pieces = _pieces(part["text"], size)
    out: list[dict[str, Any]] = []
    for piece in pieces:
        item: dict[str, Any] = {"text": piece}
        if part.get("thought"):
            item["thought"] = True
        out.append(item)
    if "thoughtSignature" in part:
        out[-1]["thoughtSignature"] = part["thoughtSignature"]
    return out


def _candidate_chunks(candidate: dict[str, Any], size: int) -> list[dict[str, Any]]:
    """The candidate as a list of candidate objects, one part each; the last one carries
    everything but the content (finish reason, ratings, metadata)."""
    index = candidate.get("index", 0)
    content = candidate.get("content") or {}
    role = content.get("role", "model")
    out: list[dict[str, Any]] = []
    for part in content.get("parts") or ():
        for piece in _part_chunks(part, size):
            out.append({"content": {"role": role, "parts": [piece]}, "index": index})
    rest = {k: v for k, v in candidate.items() if k != "content"}
    if not out:
        return [candidate]
    out[-1].update(rest)
    return out


def replay(
    response: GenerateContentResponse, size: int = CHUNK_CHARS
) -> list[GenerateContentResponse]:
    """The response as stream chunks (see the module docstring)."""
    data = response.to_dict()
    candidates = data.pop("candidates", None) or []
    meta = {k: data.pop(k) for k in _RESPONSE_META if k in data}
    chunks: list[dict[str, Any]] = []
    for candidate in candidates:
        chunks.extend({**data, "candidates": [c]} for c in _candidate_chunks(candidate, size))
    if not chunks:
        chunks.append(dict(data))
    chunks[-1].update(meta)
    return [GenerateContentResponse.model_validate(c) for c in chunks]
