"""Anthropic's prompt cache for a cached content genroute put in front of a request. Pure.

A generateContent call naming a `cachedContent` reaches an Anthropic model (direct or on
Vertex AI) with the cached content's parts expanded in front (genroute.resources), and the
request says how many contents came from it (`_cached_prefix`). Anthropic caches a prompt
prefix only where the request asks, with `cache_control` breakpoints, so `mark` puts
`{"type": "ephemeral"}` (Anthropic's 5-minute cache) at the end of each part of the cached
prefix, in Anthropic's order of the prompt (tools, system, messages):

    tools      the last tool of the cached content (not the JSON-output tool genroute may
               append, which depends on the call's own generationConfig)
    system     the last block of the system instruction
    messages   the last cacheable block of the cached contents (not a thinking block)

That is at most 3 of the 4 breakpoints Anthropic allows. A prefix under the model's
minimum (1024 tokens for most models, 2048 or 4096 for some) is not cached by Anthropic
and costs nothing extra; a cached read is reported as `cache_read_input_tokens`, a write as
`cache_creation_input_tokens` (see response.py).
"""

from __future__ import annotations

import logging
from typing import Any

from genroute.errors import InvalidRequest
from genroute.providers.anthropic.messages import MessageBuilder, new_call_id
from genroute.providers.drops import Drops
from genroute.wire import GenerateContentRequest

__all__ = ["CACHEABLE", "EPHEMERAL", "MAX_BREAKPOINTS", "mark"]

log = logging.getLogger("genroute.providers.anthropic")

EPHEMERAL = {"type": "ephemeral"}
MAX_BREAKPOINTS = 4  # Anthropic refuses a request with more blocks with cache_control
# Blocks that take cache_control (thinking blocks are cached only as part of a prefix).
CACHEABLE = frozenset(
    {"text", "image", "document", "tool_use", "tool_result", "search_result", "server_tool_use"}
)


def mark(
    body: dict[str, Any],
    request: GenerateContentRequest,
    *,
    json_tool: str | None,
    drop_params: bool,
) -> int:
    """Put cache breakpoints at the end of the cached prefix of `body` (the Messages API
    body translated from `request`); how many were put. Nothing when the request carries no
    cached content."""
    cached = request._cached_prefix
    if cached is None:
        return 0
    marks = 0
    tools = [t for t in body.get("tools") or [] if t.get("name") != json_tool]
    if tools and request.tools:
        tools[-1]["cache_control"] = dict(EPHEMERAL)
        marks += 1
    system = body.get("system")
    if isinstance(system, list) and system and request.system_instruction is not None:
        system[-1]["cache_control"] = dict(EPHEMERAL)
        marks += 1
    block = _last_cached_block(body["messages"], request, cached, drop_params)
    if block is not None:
        block["cache_control"] = dict(EPHEMERAL)
        marks += 1
    return marks


def _last_cached_block(
    messages: list[dict[str, Any]],
    request: GenerateContentRequest,
    cached: int,
    drop_params: bool,
) -> dict[str, Any] | None:
    """The last cacheable block the cached contents became in `messages`: the cached
    contents are translated alone to see how many messages and blocks they make."""
    if cached <= 0:
        return None
    try:
        prefix = MessageBuilder(new_call_id, Drops(drop_params)).build(request.contents[:cached])
    except InvalidRequest as exc:  # e.g. it ends with a call answered after it
        log.debug("cached contents not marked for the prompt cache: %s", exc.message)
        return None
    if not prefix or len(prefix) > len(messages):
        return None
    index = len(prefix) - 1
    end = min(len(prefix[-1]["content"]), len(messages[index]["content"]))
    for i in range(index, -1, -1):
        content = messages[i]["content"]
        start = end if i == index else len(content)
        for block in reversed(content[:start]):
            if block.get("type") in CACHEABLE:
                return block  # type: ignore[no-any-return]
    return None
