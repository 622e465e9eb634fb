"""Bedrock's prompt cache for a cached content genroute put in front of a request. Pure.

A generateContent call naming a `cachedContent` reaches a Bedrock model with the cached
content's parts expanded in front (genroute.resources), and the request says how many
contents came from it (`_cached_prefix`). Bedrock caches a prompt prefix only where the
Converse request puts a cache checkpoint, a `{"cachePoint": {"type": "default"}}` block (a
5-minute cache), so `mark` appends one after the last block of each part of the cached
prefix, in the order Bedrock reads the prompt (tools, system, messages):

    toolConfig.tools   after the last tool of the cached content (not the JSON-output tool
                       genroute may append, which depends on the call's own
                       generationConfig); Claude only, Nova takes no checkpoint in tools
    system             after the last block of the system instruction
    messages           after the last block the cached contents became (not after a
                       reasoning block)

That is at most 3 of the 4 checkpoints Bedrock allows, and only on the models that support
prompt caching (`supports_prompt_cache`): Bedrock refuses a checkpoint sent to any other
model. A prefix under the model's minimum is not cached and costs nothing extra; a cached
read is reported as `cacheReadInputTokens`, a write as `cacheWriteInputTokens` (response.py).
"""

from __future__ import annotations

import logging
from typing import Any

from genroute.errors import InvalidRequest
from genroute.providers.anthropic.messages import new_call_id
from genroute.providers.bedrock.messages import MessageBuilder, kind
from genroute.providers.drops import Drops
from genroute.wire import GenerateContentRequest

__all__ = ["CACHE_POINT", "MAX_CACHE_POINTS", "mark"]

log = logging.getLogger("genroute.providers.bedrock")

CACHE_POINT = "cachePoint"
MAX_CACHE_POINTS = 4  # Bedrock refuses a request with more checkpoints


def _point() -> dict[str, Any]:
    return {CACHE_POINT: {"type": "default"}}


def mark(
    body: dict[str, Any],
    request: GenerateContentRequest,
    *,
    tools: bool,
    json_tool: str | None,
    claude: bool,
    drop_params: bool,
) -> int:
    """Append cache checkpoints after the cached prefix of `body` (the Converse body
    translated from `request`); how many were put. Nothing when the request carries no
    cached content. `tools`: whether the model takes a checkpoint in its tools."""
    cached = request._cached_prefix
    if cached is None:
        return 0
    marks = 0
    declared = (body.get("toolConfig") or {}).get("tools") or []
    own = [i for i, t in enumerate(declared) if (t.get("toolSpec") or {}).get("name") != json_tool]
    if tools and own and request.tools:
        at = own[-1] + 1
        body["toolConfig"]["tools"] = [*declared[:at], _point(), *declared[at:]]
        marks += 1
    system = body.get("system")
    if system and request.system_instruction is not None:
        system.append(_point())
        marks += 1
    if _mark_messages(body["messages"], request, cached, claude, drop_params):
        marks += 1
    return marks


def _mark_messages(
    messages: list[dict[str, Any]],
    request: GenerateContentRequest,
    cached: int,
    claude: bool,
    drop_params: bool,
) -> bool:
    """Put a checkpoint after the last block the cached contents became in `messages`: the
    cached contents are translated alone to see how many messages and blocks they make."""
    if cached <= 0:
        return False
    try:
        builder = MessageBuilder(new_call_id, Drops(drop_params), claude=claude)
        prefix = builder.build(request.contents[:cached])
    except InvalidRequest as exc:  # e.g. it ends with a call answered after it
        log.debug("cached contents not marked for the prompt cache: %s", exc.message)
        return False
    if not prefix or len(prefix) > len(messages):
        return False
    content = messages[len(prefix) - 1]["content"]
    end = min(len(prefix[-1]["content"]), len(content))
    if end == 0 or kind(content[end - 1]) in ("reasoningContent", CACHE_POINT):
        return False
    content.insert(end, _point())
    return True
