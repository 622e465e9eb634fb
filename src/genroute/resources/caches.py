"""The cachedContents API's logic: create (with Gemini's minimum size), get, list, update
the expiry, delete; and what a generateContent call naming a cached content is given.

A cached content is kept in the database (`genroute.store.caches`): the contents, system
instruction, tools and tool config it holds, the model it is for, its token count and its
expiry. It belongs to its owner as files do (`genroute.resources.owners`). Its token count
is the model's own count, through the pipeline (governed like any countTokens).

`CachedContent` JSON is Gemini's shape; the cached parts themselves are never returned,
as on Gemini.
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from genroute.config import CachedContentsSettings
from genroute.errors import InvalidRequest, NotFound
from genroute.resources.files import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    page_token,
    parse_page_token,
)
from genroute.resources.owners import Access
from genroute.store.caches import CacheRepo, CacheRow
from genroute.store.repo import aware, utcnow
from genroute.wire import Content, GenerateContentRequest, Tool, ToolConfig, WireModel
from genroute.wire.base import Repeated

__all__ = [
    "CacheService",
    "CachedContentBody",
    "cache_json",
    "cache_request",
    "expand",
    "parse_cache_name",
]

_ID_CHARS = string.ascii_lowercase + string.digits
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
Counter = Callable[[str, GenerateContentRequest], Awaitable[int]]
_PAYLOAD = ("contents", "system_instruction", "tools", "tool_config")


class CachedContentBody(WireModel):
    """The body of `POST cachedContents` (and of PATCH, which takes ttl or expireTime)."""

    model: str | None = None
    display_name: str | None = None
    contents: Repeated[Content] | None = None
    system_instruction: Content | None = None
    tools: Repeated[Tool] | None = None
    tool_config: ToolConfig | None = None
    ttl: str | None = None
    expire_time: str | None = None


def parse_cache_name(name: str, field: str = "name") -> str:
    """The id of `cachedContents/{id}`; InvalidRequest naming `field` otherwise."""
    cache_id = name.removeprefix("cachedContents/")
    if not _NAME.match(cache_id):
        raise InvalidRequest(f"{field}: {name[:80]!r} is not a cached content name")
    return cache_id


def _time(value: datetime) -> str:
    stamp = aware(value).astimezone(UTC).isoformat(timespec="microseconds")  # type: ignore[union-attr]
    return stamp.replace("+00:00", "Z")


def cache_json(row: CacheRow) -> dict[str, Any]:
    """A cached content as Gemini's `CachedContent` (without its parts)."""
    data: dict[str, Any] = {
        "name": f"cachedContents/{row.cache_id}",
        "model": f"models/{row.model}",
        "createTime": _time(row.created_at),
        "updateTime": _time(row.updated_at),
        "expireTime": _time(row.expires_at),
        "usageMetadata": {"totalTokenCount": row.token_count},
    }
    if row.display_name:
        data["displayName"] = row.display_name
    return data


def cache_request(row: CacheRow) -> GenerateContentRequest:
    """A cached content's parts as a generateContent request (an empty text when it holds
    no contents: a request needs some)."""
    return _request(row.payload)


def _request(payload: dict[str, Any]) -> GenerateContentRequest:
    data = dict(payload)
    data["contents"] = data.get("contents") or [{"role": "user", "parts": [{"text": ""}]}]
    return GenerateContentRequest.model_validate(data)


def expand(request: GenerateContentRequest, row: CacheRow) -> GenerateContentRequest:
    """A request with the cached content's parts in front: its contents first, its system
    instruction, tools and tool config (which the request may not set itself), always in
    the order they were cached, so that the prefix is the same byte for byte on every call
    (what providers' prompt caches match). The expanded request notes how many contents
    came from the cache (`_cached_prefix`), for translators that mark the prefix for the
    provider's prompt cache (Anthropic's `cache_control`)."""
    payload = row.payload
    cached = [Content.model_validate(c) for c in payload.get("contents") or []]
    update: dict[str, Any] = {"contents": [*cached, *request.contents], "cached_content": None}
    if payload.get("systemInstruction") is not None:
        update["system_instruction"] = Content.model_validate(payload["systemInstruction"])
    if payload.get("tools") is not None:
        update["tools"] = [Tool.model_validate(t) for t in payload["tools"]]
    if payload.get("toolConfig") is not None:
        update["tool_config"] = ToolConfig.model_validate(payload["toolConfig"])
    expanded = request.model_copy(update=update)
    expanded.set_private("_cached_prefix", len(cached))
    return expanded


class CacheService:
    """Cached contents in the database; see the module docstring."""

    def __init__(
        self,
        repo: CacheRepo,
        settings: CachedContentsSettings,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.repo = repo
        self.settings = settings
        self.now = now

    def _expiry(self, body: CachedContentBody, default: datetime | None) -> datetime | None:
        if body.ttl is not None and body.expire_time is not None:
            raise InvalidRequest("ttl and expireTime: give one of them, not both")
        if body.ttl is not None:
            found = _DURATION.match(body.ttl)
            if found is None or float(found.group(1)) <= 0:
                raise InvalidRequest(f"ttl: {body.ttl[:40]!r} is not a duration such as '3600s'")
            return self.now() + timedelta(seconds=float(found.group(1)))
        if body.expire_time is not None:
            try:
                when = datetime.fromisoformat(body.expire_time.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidRequest(
                    f"expireTime: {body.expire_time[:40]!r} is not an RFC 3339 time"
                ) from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            if when <= self.now():
                raise InvalidRequest("expireTime: the time is in the past")
            return when
        return default

    async def create(
        self, access: Access, key_hash: str | None, body: CachedContentBody, count: Counter
    ) -> CacheRow:
        """A new cached content for `body.model`, counted by `count(model, request)`."""
        if not body.model:
            raise InvalidRequest("model: required (the model the cached content is for)")
        model = body.model.removeprefix("models/")
        if not body.contents and body.system_instruction is None:
            raise InvalidRequest("contents: a cached content needs contents or a systemInstruction")
        payload = body.model_dump(by_alias=True, exclude_none=True, include=set(_PAYLOAD))
        default = self.now() + timedelta(seconds=self.settings.default_ttl_seconds)
        expires = self._expiry(body, default)
        assert expires is not None
        tokens = await count(model, _request(payload))
        minimum = self.settings.minimum(model)
        if tokens < minimum:
            raise InvalidRequest(
                f"Cached content is too small. total_token_count={tokens}, "
                f"min_total_token_count={minimum}"
            )
        now = self.now()
        row = CacheRow(
            cache_id="".join(secrets.choice(_ID_CHARS) for _ in range(16)),
            owner=access.owner,
            key_hash=key_hash,
            model=model,
            display_name=(body.display_name or None) and body.display_name[:512],
            payload=payload,
            token_count=tokens,
            created_at=now,
            updated_at=now,
            expires_at=expires,
        )
        await self.repo.insert(row)
        return row

    async def get(self, access: Access, name: str) -> CacheRow:
        """A cached content the caller may see and that has not expired."""
        cache_id = parse_cache_name(name)
        row = await self.repo.get(cache_id)
        if (
            row is None or not access.may_see(row.owner) or aware(row.expires_at) <= self.now()  # type: ignore[operator]
        ):
            raise Access.hidden("CachedContent", cache_id)
        return row

    async def update(self, access: Access, name: str, body: CachedContentBody) -> CacheRow:
        """Change a cached content's expiry (ttl or expireTime; nothing else changes)."""
        row = await self.get(access, name)
        changed = set(body.model_fields_set) - {"ttl", "expire_time"}
        if changed:
            raise InvalidRequest(
                f"{sorted(changed)[0]}: only ttl and expireTime of a cached content can change"
            )
        expires = self._expiry(body, None)
        if expires is None:
            raise InvalidRequest("ttl or expireTime: required to update a cached content")
        row.expires_at = expires
        row.updated_at = self.now()
        await self.repo.save(row)
        return row

    async def list(
        self,
        access: Access,
        page_size: int | None,
        token: str | None,
        key_hash: str | None = None,
    ) -> tuple[list[CacheRow], str | None]:
        """One page of the caller's cached contents, newest first, and the next token
        (those made by `key_hash` only, when given)."""
        size = max(1, min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE))
        after = parse_page_token(token) if token else None
        rows = await self.repo.page(
            access.owner, access.sees_all, after, size + 1, self.now(), key_hash
        )
        more = len(rows) > size
        rows = rows[:size]
        last = rows[-1] if more and rows else None
        return rows, page_token(last.created_at, last.cache_id) if last is not None else None

    async def delete(self, access: Access, name: str) -> None:
        """Delete a cached content the caller may see."""
        row = await self.get(access, name)
        await self.repo.remove(row.cache_id)

    async def for_call(
        self, access: Access, name: str, model: str, request: GenerateContentRequest
    ) -> CacheRow:
        """The cached content a generateContent call names, checked as Gemini checks it."""
        try:
            row = await self.get(access, name)
        except (InvalidRequest, NotFound) as exc:
            exc.message = f"cachedContent: {exc.message}"
            raise
        if row.model != model:
            raise InvalidRequest(
                f"Model used by GenerateContent request (models/{model}) and CachedContent "
                f"(models/{row.model}) has to be the same."
            )
        if request.system_instruction is not None or request.tools or request.tool_config:
            raise InvalidRequest(
                "CachedContent can not be used with GenerateContent request setting "
                "system_instruction, tools or tool_config. Proposed fix: move those values "
                "to CachedContent from GenerateContent request."
            )
        return row

    async def sweep(self) -> int:
        """Delete cached contents past their expiry; how many."""
        ids = await self.repo.expired(self.now())
        for cache_id in ids:
            await self.repo.remove(cache_id)
        return len(ids)
