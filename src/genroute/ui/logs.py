"""The Logs page: the latest calls, newest first, updating live; and one call's detail.

The rows are the spend ledger's (`/spend/logs?order=desc`: every instance's calls, each
written within `general_settings.spend_flush_interval`), filtered by key, model and
status. The table's body polls `/ui/logs/rows` every LIVE_SECONDS (htmx), so a call
shows within a flush interval plus that. A call's detail adds, from `/request/info`, how
the instance that served it routed it (attempts, fallbacks, trace id, and its content
where `observability.logs.include_content` is on), while it is among the calls that
instance keeps.
"""

from __future__ import annotations

from typing import Any

from genroute.errors import GenrouteError, InvalidRequest
from genroute.ui.context import Page
from genroute.ui.http import Response, with_query

__all__ = ["LIVE_SECONDS", "PAGE_ROWS", "STATUSES", "detail", "page", "rows"]

PAGE_ROWS = 50
LIVE_SECONDS = 2
STATUSES = {
    "": "Any status",
    "success": "Success",
    "error": "Error",
    **{str(c): str(c) for c in (400, 401, 403, 404, 408, 429, 499, 500, 502, 503, 504)},
}


def _filters(query: dict[str, str]) -> dict[str, str]:
    status = query.get("status", "")
    if status not in STATUSES:
        raise InvalidRequest("Status: pick one of the list")
    return {"key": query.get("key", ""), "model": query.get("model", ""), "status": status}


async def _calls(page: Page, filters: dict[str, str]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = await page.api(
        "GET",
        "/spend/logs",
        order="desc",
        limit=PAGE_ROWS,
        api_key=filters["key"],
        model=filters["model"],
        status=filters["status"],
    )
    return calls


async def _options(page: Page) -> tuple[list[tuple[str, str]], list[str]]:
    """The filters' choices: every key (hash, name) and every model group."""
    keys = (await page.api("GET", "/key/list"))["keys"]
    key_options = [(k["key_hash"], k["key_alias"] or k["key_name"]) for k in keys]
    models: list[str] = []
    try:
        health = await page.api("GET", "/model/health")
        models = sorted({d["model_group"] for d in health["deployments"]})
    except GenrouteError:  # the filter still takes the model of the query
        models = []
    return key_options, models


async def page(page: Page) -> Response:
    """The Logs page."""
    error = None
    try:
        filters = _filters(page.request.query)
    except InvalidRequest as exc:
        filters, error = {"key": "", "model": "", "status": ""}, exc.message
    keys, models = await _options(page)
    if filters["model"] and filters["model"] not in models:
        models.append(filters["model"])
    return page.render(
        "logs.html",
        400 if error else 200,
        page_name="logs",
        filters=filters,
        error=error,
        keys=keys,
        models=models,
        statuses=STATUSES,
        calls=await _calls(page, filters),
        rows_url=with_query("/ui/logs/rows", filters),
        live_seconds=LIVE_SECONDS,
        page_rows=PAGE_ROWS,
    )


async def rows(page: Page) -> Response:
    """The table's body alone: what the page polls."""
    filters = _filters(page.request.query)
    return page.render(
        "log_rows.html",
        calls=await _calls(page, filters),
        rows_url=with_query("/ui/logs/rows", filters),
        live_seconds=LIVE_SECONDS,
    )


async def detail(page: Page) -> Response:
    """One call: the ledger's row and, where this instance has it, its routing."""
    request_id = page.request.query.get("request_id", "")
    info = await page.api("GET", "/request/info", request_id=request_id)
    return page.render(
        "log_detail.html",
        page_name="logs",
        request_id=request_id,
        ledger=info["ledger"],
        calls=info["calls"],
        content_logged=info["content_logged"],
    )
