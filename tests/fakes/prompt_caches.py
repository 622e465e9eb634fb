"""The providers' prompt caches, as the fake upstreams play them.

Anthropic (``AnthropicPromptCache``, used by FakeAnthropic and the fake Vertex AI's Claude):
a prefix is cached only where the request puts a ``cache_control`` breakpoint. At most 4
blocks may carry one (tools, system blocks, message blocks), and a 1h breakpoint may not
follow a 5m one (``cache_control_problems``, Anthropic's 400s). The prefix up to each
breakpoint, in Anthropic's order (tools, then system, then messages), is cached once it
reaches the model's minimum (1024 tokens; 2048 or 4096 for some models): a later request
with the same prefix reports it as ``cache_read_input_tokens``, the first one as
``cache_creation_input_tokens``, and ``input_tokens`` is the rest. Tokens are whitespace
words, one per block that is not text, five per tool (FakeAnthropic's own count).

OpenAI (``OpenAIPromptCache``, FakeOpenAI): automatic. A prompt of at least 1024 tokens is
remembered; a later one reports as ``cached_tokens`` the longest prefix it shares with one
remembered (same key, model and tools), in steps of 128 tokens, when that is 1024 or more.
Tokens are FakeOpenAI's: the whitespace words of each message's JSON content.

Bedrock (``BedrockPromptCache``, FakeBedrock): like Anthropic's, but a prefix ends at a
``{"cachePoint": {"type": "default"}}`` block (in ``toolConfig.tools``, ``system`` or a
message's ``content``). ``cache_point_problems`` is what Bedrock refuses: more than 4
checkpoints, a checkpoint opening a list or following another, a checkpoint sent to a model
without prompt caching (Claude 3.5 Haiku, 3.7 Sonnet, Sonnet/Opus/Haiku 4 and later, Nova
have it), or in the tools of a Nova model. Usage reports ``cacheReadInputTokens`` and
``cacheWriteInputTokens``, ``inputTokens`` being the rest. Tokens are FakeBedrock's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from typing import Any

__all__ = [
    "AnthropicPromptCache",
    "BedrockPromptCache",
    "OpenAIPromptCache",
    "anthropic_cache_minimum",
    "bedrock_prompt_cache",
    "cache_control_problems",
    "cache_point_problems",
]

_MINIMUMS = ((re.compile(r"claude-(haiku-4-5|opus-4-[56])"), 4096),
             (re.compile(r"claude-(3-haiku|3-5-haiku|haiku-3)"), 2048))  # fmt: skip
_BEDROCK_CLAUDE = re.compile(r"claude-(3-5-haiku|3-7-sonnet|(sonnet|opus|haiku)-[4-9])")
_BEDROCK_NOVA = re.compile(r"(^|[.:/])amazon\.nova-")
NOVA_MINIMUM = 1000
OPENAI_MINIMUM = 1024
OPENAI_STEP = 128
REMEMBERED = 64  # prompts an OpenAI fake remembers


def anthropic_cache_minimum(model: str) -> int:
    """The fewest tokens a prefix must have for Anthropic to cache it, for this model."""
    return next((n for pattern, n in _MINIMUMS if pattern.search(model)), 1024)


def _message_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _prompt_blocks(body: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
    """Every block of an Anthropic prompt in cache order, with its token count."""
    found: list[tuple[dict[str, Any], int]] = [(t, 5) for t in body.get("tools") or []]
    system = body.get("system") or []
    for block in [{"type": "text", "text": system}] if isinstance(system, str) else system:
        found.append((block, len(block["text"].split())))
    for message in body.get("messages") or []:
        for block in _message_blocks(message):
            size = len(block["text"].split()) if block["type"] == "text" else 1
            found.append(({**block, "role": message["role"]}, size))
    return found


def cache_control_problems(body: dict[str, Any]) -> list[str]:
    """What Anthropic refuses in a request's cache_control breakpoints."""
    marked = [b["cache_control"] for b, _ in _prompt_blocks(body) if b.get("cache_control")]
    problems = []
    if len(marked) > 4:
        problems.append(
            f"A maximum of 4 blocks with cache_control may be provided. Found {len(marked)}."
        )
    ttls = [c.get("ttl", "5m") for c in marked]
    if "5m" in ttls and "1h" in ttls[ttls.index("5m") :]:
        problems.append(
            "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block"
        )
    return problems


class AnthropicPromptCache:
    """The prefixes one Anthropic fake has cached (see the module docstring)."""

    def __init__(self) -> None:
        self.prefixes: set[str] = set()

    def usage(self, key: str, body: dict[str, Any]) -> dict[str, int]:
        """input_tokens, cache_read_input_tokens and cache_creation_input_tokens of one
        request; the prefixes of its breakpoints that reach the minimum are cached."""
        blocks = _prompt_blocks(body)
        total = max(1, sum(size for _, size in blocks))
        minimum = anthropic_cache_minimum(str(body.get("model")))
        read = written = tokens = 0
        seen: list[dict[str, Any]] = []
        for block, size in blocks:
            tokens += size
            seen.append({k: v for k, v in block.items() if k != "cache_control"})
            if not block.get("cache_control") or tokens < minimum:
                continue
            digest = _digest([key, body.get("model"), seen])
            if digest in self.prefixes:
                read, written = tokens, 0
            else:
                self.prefixes.add(digest)
                written = tokens - read
        return {
            "input_tokens": total - read - written,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
        }


class OpenAIPromptCache:
    """The prompts one OpenAI fake remembers (see the module docstring)."""

    def __init__(self) -> None:
        self.prompts: deque[tuple[str, list[str]]] = deque(maxlen=REMEMBERED)

    def cached_tokens(self, key: str, body: dict[str, Any]) -> int:
        """How many tokens of this request's prompt OpenAI would report as cached; the
        prompt is remembered for the next requests."""
        scope = _digest([key, body.get("model"), body.get("tools")])
        words: list[str] = []
        for message in body.get("messages") or []:
            content = message.get("content")
            if content:
                words += json.dumps(content, ensure_ascii=False).split()
        best = 0
        for other_scope, other in self.prompts:
            if other_scope != scope:
                continue
            shared = 0
            for mine, theirs in zip(words, other, strict=False):
                if mine != theirs:
                    break
                shared += 1
            best = max(best, shared)
        if len(words) >= OPENAI_MINIMUM:
            self.prompts.append((scope, words))
        if best < OPENAI_MINIMUM:
            return 0
        return min(best, len(words)) // OPENAI_STEP * OPENAI_STEP


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def bedrock_prompt_cache(model: str) -> tuple[bool, bool]:
    """Whether a Bedrock model takes cache checkpoints, and whether in its tools too."""
    if _BEDROCK_CLAUDE.search(model):
        return True, True
    return bool(_BEDROCK_NOVA.search(model)), False


def _bedrock_lists(body: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    lists = [("toolConfig.tools", (body.get("toolConfig") or {}).get("tools") or [])]
    lists.append(("system", body.get("system") or []))
    for i, message in enumerate(body.get("messages") or []):
        lists.append((f"messages.{i}.content", message.get("content") or []))
    return lists


def cache_point_problems(body: dict[str, Any], model: str) -> list[str]:
    """What Bedrock refuses in a Converse request's cachePoint blocks."""
    problems: list[str] = []
    count = 0
    supported, in_tools = bedrock_prompt_cache(model)
    for where, blocks in _bedrock_lists(body):
        for j, block in enumerate(blocks):
            if "cachePoint" not in block:
                continue
            count += 1
            if j == 0 or "cachePoint" in blocks[j - 1]:
                problems.append(f"{where}.{j}: a cachePoint must follow a content block")
            if supported and where.startswith("toolConfig") and not in_tools:
                problems.append(f"{where}.{j}: this model does not support cachePoint in tools")
    if count and not supported:
        problems.append(
            "You invoked an unsupported model or your request did not allow prompt caching. "
            "See the documentation for more information."
        )
    if count > 4:
        problems.append(f"A maximum of 4 cachePoint blocks may be provided. Found {count}.")
    return problems


class BedrockPromptCache:
    """The prefixes one Bedrock fake has cached (see the module docstring)."""

    def __init__(self) -> None:
        self.prefixes: set[str] = set()

    def usage(self, key: str, model: str, body: dict[str, Any], total: int) -> dict[str, int]:
        """inputTokens (of `total`), cacheReadInputTokens and cacheWriteInputTokens of one
        request; the prefixes ending at its checkpoints that reach the minimum are cached."""
        minimum = anthropic_cache_minimum(model) if "claude" in model else NOVA_MINIMUM
        read = written = tokens = 0
        seen: list[dict[str, Any]] = []
        for _, blocks in _bedrock_lists(body):
            for block in blocks:
                if "cachePoint" not in block:
                    tokens += 5 if "toolSpec" in block else _bedrock_size(block)
                    seen.append(block)
                    continue
                if tokens < minimum:
                    continue
                digest = _digest([key, model, seen])
                if digest in self.prefixes:
                    read, written = tokens, 0
                else:
                    self.prefixes.add(digest)
                    written = tokens - read
        return {
            "inputTokens": max(0, total - read - written),
            "cacheReadInputTokens": read,
            "cacheWriteInputTokens": written,
        }


def _bedrock_size(block: dict[str, Any]) -> int:
    return len(block["text"].split()) if "text" in block else 1
