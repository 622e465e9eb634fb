"""What a cache entry is keyed by, and which requests and answers may be cached.

The exact key is the SHA-256 of the kind of call (generate or embed), the model group, the
scope (the key's team; see `scope_of`) and the request's canonical JSON: the wire model has
already read camelCase and snake_case alike and a single object as a list of one, and its
JSON is written with sorted keys, so two requests that mean the same thing have one key.
The body's `model` and `labels` (billing labels) do not change the answer and are left out.
`canonical` makes that data once per call; the exact key and the semantic bucket use it.

The semantic match embeds the text of the last user turn; everything else must match
exactly, so it is hashed into the entry's bucket: the earlier turns (a digest), the system
instruction, tools, tool config, safety settings and generation config.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

from genroute.call import Caller
from genroute.wire import (
    BatchEmbedContentsRequest,
    Content,
    EmbedContentRequest,
    GenerateContentRequest,
    GenerateContentResponse,
    Part,
    WireModel,
)

__all__ = [
    "SHARED_SCOPE",
    "cacheable_request",
    "canonical",
    "exact_key",
    "scope_of",
    "semantic_prompt",
    "storable_response",
]

SHARED_SCOPE = "*"
_IGNORED = ("model", "labels")
_DUMP = orjson.OPT_SORT_KEYS


def scope_of(caller: Caller, shared: bool, namespace: str | None = None) -> str:
    """Whose entries a call may read and write: its key's team; a key without a team has
    its own; the master key (or an open gateway) one of its own. `shared`
    (`cache_params.shared_across_teams`) puts every caller in one scope. A key's or team's
    `namespace` (its metadata) is part of the scope, length-prefixed: names may hold any
    character, and no choice of namespace and team names makes another scope."""
    if shared:
        scope = SHARED_SCOPE
    elif caller.team_id:
        scope = f"team:{caller.team_id}"
    elif caller.key_hash:
        scope = f"key:{caller.key_hash}"
    else:
        scope = "-"
    return f"{len(namespace)}:{namespace}/{scope}" if namespace else scope


def canonical(request: WireModel) -> dict[str, Any]:
    """The request as the key sees it: its wire JSON without what does not change the
    answer (`model`, `labels`)."""
    data = request.to_dict()
    for name in _IGNORED:
        data.pop(name, None)
    return data


def exact_key(kind: str, group: str, scope: str, data: dict[str, Any]) -> str:
    """The hex SHA-256 naming the entry of a request (`data`: its `canonical` form)."""
    material = orjson.dumps([kind, group, scope, data], option=_DUMP)
    return hashlib.sha256(material).hexdigest()


def _contents(request: WireModel) -> Iterable[Content]:
    if isinstance(request, GenerateContentRequest):
        yield from request.contents
        if request.system_instruction is not None:
            yield request.system_instruction
    elif isinstance(request, EmbedContentRequest):
        yield request.content
    elif isinstance(request, BatchEmbedContentsRequest):
        yield from (r.content for r in request.requests)


def cacheable_request(request: WireModel) -> str | None:
    """Why a request (generateContent, an embedding or a batch of them) is never cached
    (None: it may be): one that names a cached content or a file, whose answer depends on
    what is stored elsewhere."""
    if isinstance(request, GenerateContentRequest) and request.cached_content:
        return "cachedContent"
    for content in _contents(request):
        for part in content.parts or ():
            if part.file_data is not None:
                return "fileData"
    return None


_BARE = frozenset({"text", "thought", "thoughtSignature"})


def _says_something(part: Part) -> bool:
    """Whether a part of an answer is more than a thought or empty text."""
    if part.thought:
        return False
    if part.text is not None and part.text.strip():
        return True
    return not part.to_dict().keys() <= _BARE  # a call, data, code...


def storable_response(response: GenerateContentResponse, function_calls: bool) -> str | None:
    """Why an answer is not stored (None: it may be): no candidate, a blocked prompt, a
    candidate that did not finish with STOP (blocked, truncated, an error), one that says
    nothing (no part but thoughts or empty text: Gemini answers so now and then, and
    clients retry it), or a function call (unless `function_calls`)."""
    if response.prompt_feedback is not None and response.prompt_feedback.block_reason:
        return "blocked"
    if not response.candidates:
        return "no candidate"
    for candidate in response.candidates:
        if candidate.finish_reason != "STOP":
            return f"finishReason {candidate.finish_reason or 'missing'}"
        parts = (candidate.content.parts if candidate.content is not None else None) or []
        if not any(_says_something(p) for p in parts):
            return "empty answer"
        if not function_calls and any(p.function_call is not None for p in parts):
            return "function call"
    return None


def semantic_prompt(
    request: GenerateContentRequest, data: dict[str, Any], group: str, scope: str
) -> tuple[str, str] | None:
    """(text to embed, bucket) for a request (`data`: its `canonical` form) the semantic
    match can serve: its last turn is the user's and all text. None otherwise (the exact
    match still applies). Entries match only within one bucket: one group, scope,
    conversation before the last turn, system instruction, tools and settings."""
    last = request.contents[-1]
    if last.role not in (None, "user") or not last.parts:
        return None
    texts: list[str] = []
    for part in last.parts:
        if part.text is None or part.thought:
            return None
        texts.append(part.text)
    text = "\n".join(texts).strip()
    if not text:
        return None
    rest = {**data, "contents": data["contents"][:-1]}  # the earlier turns must match exactly
    material = orjson.dumps([group, scope, rest], option=_DUMP)
    bucket = hashlib.sha256(material).hexdigest()[:32]
    return text, bucket
