"""The management API's routes for uploaded files, cached contents and batches, for the
master key (added to `ManagementAPI` when the gateway has both a store and resources).

    GET /files/list             ?team_id= &key= (a key, or its hash) &page_size= &page_token=
    GET /cached_contents/list   the same filters
    GET /batches/list           the same filters; each batch with its spend so far

LiteLLM has no such routes (its `/v1/files` and `/v1/batches` are OpenAI's user routes, and
`/{v}/files` is Gemini's here), so they follow its management names (`/key/list`,
`/team/list`). Every owner's resources are listed, newest first, `page_size` at a time (at
most 100, default 10; `next_page_token` for the next page); `team_id` keeps a team's,
`key` those made by one key. Each entry is the resource as the Gemini API shows it, with
who owns it: `owner` (`team:{id}`, or `key:{hash}` for a key without a team), `team_id`
and `key_hash` (the key that made it). A batch also carries `spend`: the requests of it
in the ledger and what they cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genroute.resources import Access, Resources, cache_json, file_json
from genroute.server.management import _param, _token, _whole
from genroute.store.repo import Store
from genroute.store.spend import SpendFilter, spend_totals

__all__ = ["ResourceAdmin"]

_PAGE_NAMES = ("page_size", "pageSize")
_TOKEN_NAMES = ("page_token", "pageToken")


def _owned(owner: str | None, key_hash: str | None) -> dict[str, Any]:
    team = owner.removeprefix("team:") if owner and owner.startswith("team:") else None
    return {"owner": owner, "team_id": team, "key_hash": key_hash}


def _first(query: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((query[n] for n in names if query.get(n)), None)


class ResourceAdmin:
    """The three list routes (see the module docstring)."""

    def __init__(self, resources: Resources, store: Store) -> None:
        self.resources = resources
        self.store = store

    def routes(self) -> dict[tuple[str, str], Any]:
        """The routes, as `ManagementAPI.routes` holds them."""
        return {
            ("GET", "/files/list"): self.files_list,
            ("GET", "/cached_contents/list"): self.caches_list,
            ("GET", "/batches/list"): self.batches_list,
        }

    def _filters(
        self, query: Mapping[str, str]
    ) -> tuple[Access, str | None, int | None, str | None]:
        """Whose resources (a team's, or all), made by which key, the page size and token."""
        team = _param(query, "team_id")
        key = _param(query, "key", "key_hash", "api_key", limit=1024)
        size_name = next((n for n in _PAGE_NAMES if query.get(n)), _PAGE_NAMES[0])
        size = _whole(query, size_name, 0) or None
        access = Access(f"team:{team}") if team else Access(None, sees_all=True)
        return access, _token(key) if key else None, size, _first(query, _TOKEN_NAMES)

    async def files_list(self, body: bytes, query: Mapping[str, str]) -> Any:
        await self.resources.ready()
        access, key_hash, size, token = self._filters(query)
        rows, more = await self.resources.files.list(access, size, token, key_hash)
        entries = []
        for row in rows:
            entry = file_json(row, "")
            entry.pop("uri", None)  # the uri is the API root's the client used
            entries.append({**entry, **_owned(row.owner, row.key_hash)})
        return _page("files", entries, more)

    async def caches_list(self, body: bytes, query: Mapping[str, str]) -> Any:
        await self.resources.ready()
        access, key_hash, size, token = self._filters(query)
        rows, more = await self.resources.caches.list(access, size, token, key_hash)
        entries = [{**cache_json(r), **_owned(r.owner, r.key_hash)} for r in rows]
        return _page("cached_contents", entries, more)

    async def batches_list(self, body: bytes, query: Mapping[str, str]) -> Any:
        await self.resources.ready()
        access, key_hash, size, token = self._filters(query)
        batches = self.resources.batches
        rows, more = await batches.list(access, size, token, key_hash)
        entries = []
        for row in rows:
            name = f"batches/{row.batch_id}"
            spend = await spend_totals(self.store, SpendFilter(batch=name))
            entry = await batches.to_json(row)
            owned = _owned(row.owner, row.key_hash or row.caller.get("key_hash"))
            entries.append({**entry, **owned, "spend": spend})
        return _page("batches", entries, more)


def _page(kind: str, entries: list[dict[str, Any]], more: str | None) -> dict[str, Any]:
    reply: dict[str, Any] = {kind: entries, "total_count": len(entries)}
    if more:
        reply["next_page_token"] = more
    return reply
