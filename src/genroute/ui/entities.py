"""The Keys page: virtual keys, teams and end users, each created, edited, blocked,
unblocked and deleted through the management API (/key/*, /team/*, /customer/*).

A kind (`Kind`) says which routes serve it and which fields its forms have (`Field`);
the same code turns a form into the JSON body the management API takes, and shows the
API's refusal (which names the field) above the form. A new key's secret is shown once,
in the answer to the form that created it, and never again.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from genroute.errors import GenrouteError, InvalidRequest
from genroute.ui.context import Page
from genroute.ui.http import Response, redirect, with_query

__all__ = ["KINDS", "Field", "Kind", "form_body", "routes"]


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a form: the management API's name, the label a person reads, its
    kind of value (text, money, int, duration, list, team), and whether it is given only
    at creation."""

    name: str
    label: str
    kind: str = "text"
    create_only: bool = False
    hint: str = ""


@dataclass(frozen=True, slots=True)
class Kind:
    """Keys, teams or end users: their routes and their form."""

    slug: str  # in the UI's paths: keys, teams, end-users
    noun: str  # key, team, end user
    api: str  # key, team, customer
    id_field: str  # the body field naming the row in /update
    delete_field: str  # the body field listing rows in /delete
    row_id: str  # the row's identifying column
    fields: tuple[Field, ...]

    @property
    def create_label(self) -> str:
        return f"Create {self.noun}"

    def ident(self, row: dict[str, Any]) -> str:
        return str(row[self.row_id])

    def name(self, row: dict[str, Any]) -> str:
        """What a person calls the row: its alias, else its id (a key: its masked name)."""
        alias = row.get("key_alias") or row.get("team_alias") or row.get("alias")
        if alias:
            return str(alias)
        return str(row.get("key_name") or row[self.row_id])


_BUDGET = (
    Field("max_budget", "Max budget", "money", hint="USD; empty: no budget"),
    Field(
        "budget_duration",
        "Budget period",
        "duration",
        hint="e.g. 1d, 7d, 30d; empty: the budget never resets",
    ),
)
_LIMITS = (
    Field("rpm_limit", "Requests per minute", "int"),
    Field("tpm_limit", "Tokens per minute", "int"),
    Field("max_parallel_requests", "Parallel requests", "int"),
)
_MODELS = Field("models", "Models", "list", hint="comma-separated; empty: every model")

KEYS = Kind(
    "keys",
    "key",
    "key",
    "key",
    "keys",
    "key_hash",
    (
        Field("key_alias", "Key alias"),
        *_BUDGET,
        _MODELS,
        Field("team_id", "Team", "team"),
        Field("user_id", "User ID"),
        *_LIMITS,
        Field("duration", "Expires after", "duration", hint="e.g. 30d; empty: never"),
    ),
)
TEAMS = Kind(
    "teams",
    "team",
    "team",
    "team_id",
    "team_ids",
    "team_id",
    (
        Field("team_id", "Team ID", create_only=True, hint="empty: a generated id"),
        Field("team_alias", "Team alias"),
        *_BUDGET,
        _MODELS,
        *_LIMITS,
    ),
)
END_USERS = Kind(
    "end-users",
    "end user",
    "customer",
    "user_id",
    "user_ids",
    "end_user_id",
    (
        Field("user_id", "End user ID", create_only=True),
        Field("alias", "Alias"),
        *_BUDGET,
        *_LIMITS,
    ),
)
KINDS = {kind.slug: kind for kind in (KEYS, TEAMS, END_USERS)}
NOTICES = {"created", "updated", "deleted", "blocked", "unblocked"}


def _value(field: Field, raw: str) -> Any:
    """A form value as the management API takes it; InvalidRequest naming the label."""
    if field.kind == "money":
        try:
            number = float(raw)
        except ValueError:
            raise InvalidRequest(f"{field.label}: {raw!r} is not a number of dollars") from None
        if not math.isfinite(number):
            raise InvalidRequest(f"{field.label}: {raw!r} is not a number of dollars")
        return number
    if field.kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise InvalidRequest(f"{field.label}: {raw!r} is not a whole number") from None
    if field.kind == "list":
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def form_body(kind: Kind, form: dict[str, str], creating: bool) -> dict[str, Any]:
    """The management API body of a create or edit form. Creating, an empty field is left
    out (the default); editing, it clears the value (no budget, every model), except
    "Expires after", which keeps the expiry when empty."""
    body: dict[str, Any] = {}
    for field in kind.fields:
        if field.create_only and not creating:
            continue
        raw = form.get(field.name, "").strip()
        if not raw:
            if creating or field.name == "duration":
                continue
            body[field.name] = [] if field.kind == "list" else None
            continue
        body[field.name] = _value(field, raw)
    return body


def _state(row: dict[str, Any], now: datetime) -> str:
    if row.get("blocked"):
        return "Blocked"
    expires = row.get("expires")
    if expires and datetime.fromisoformat(expires) <= now:
        return "Expired"
    return "Active"


async def _lists(page: Page) -> dict[str, list[dict[str, Any]]]:
    """Keys, teams and end users, each row with its state (and a key with its team's
    name)."""
    keys = (await page.api("GET", "/key/list"))["keys"]
    teams = await page.api("GET", "/team/list")
    end_users = await page.api("GET", "/customer/list")
    now = datetime.now(UTC)
    names = {t["team_id"]: t["team_alias"] or t["team_id"] for t in teams}
    for row in [*keys, *teams, *end_users]:
        row["state"] = _state(row, now)
    for key in keys:
        key["team_label"] = names.get(key["team_id"], key["team_id"] or "")
    return {"keys": keys, "teams": teams, "end_users": end_users}


async def keys_page(
    page: Page,
    *,
    status: int = 200,
    new_key: dict[str, Any] | None = None,
    open_form: str | None = None,
    error: str | None = None,
) -> Response:
    """The Keys page: a table each of keys, teams and end users, with their forms."""
    notice = page.request.query.get("notice")
    noun = page.request.query.get("kind")
    return page.render(
        "keys.html",
        status,
        page_name="keys",
        kinds=KINDS,
        lists=await _lists(page),
        new_key=new_key,
        open_form=open_form,
        error=error,
        values=page.request.form if open_form else {},
        notice=notice if notice in NOTICES else None,
        notice_kind=KINDS[noun].noun if noun in KINDS else None,
    )


def _done(kind: Kind, what: str) -> Response:
    return redirect(with_query("/ui/keys", {"notice": what, "kind": kind.slug}) + f"#{kind.slug}")


def _create(kind: Kind) -> Callable[[Page], Awaitable[Response]]:
    async def create(page: Page) -> Response:
        try:
            body = form_body(kind, page.request.form, creating=True)
            if kind is END_USERS and "user_id" not in body:
                raise InvalidRequest("End user ID: required")
            created = await page.api("POST", f"/{kind.api}/{_verb(kind, 'new')}", body)
        except GenrouteError as exc:
            status = exc.code if 400 <= exc.code < 500 else 500
            return await keys_page(page, status=status, open_form=kind.slug, error=exc.message)
        if kind is KEYS:
            return await keys_page(page, new_key=created)
        return _done(kind, "created")

    return create


def _verb(kind: Kind, verb: str) -> str:
    """The management route's verb: /key/generate creates a key, /team/new a team."""
    return "generate" if kind is KEYS and verb == "new" else verb


def _edit_page(kind: Kind) -> Callable[[Page], Awaitable[Response]]:
    async def edit(page: Page) -> Response:
        ident = page.request.query.get("id", "")
        row = await _row(page, kind, ident)
        return await _render_edit(page, kind, row, _form_values(kind, row))

    return edit


async def _row(page: Page, kind: Kind, ident: str) -> dict[str, Any]:
    if kind is KEYS:
        return dict((await page.api("GET", "/key/info", key=ident))["info"])
    if kind is TEAMS:
        return dict((await page.api("GET", "/team/info", team_id=ident))["team_info"])
    return dict(await page.api("GET", "/customer/info", end_user_id=ident))


def _form_values(kind: Kind, row: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for field in kind.fields:
        value = row.get(field.name)
        if isinstance(value, list):
            values[field.name] = ", ".join(str(v) for v in value)
        elif value is not None and field.name != "duration":
            values[field.name] = f"{value:g}" if isinstance(value, float) else str(value)
    return values


async def _render_edit(
    page: Page,
    kind: Kind,
    row: dict[str, Any],
    values: dict[str, str],
    error: str | None = None,
    status: int = 200,
) -> Response:
    return page.render(
        "edit.html",
        status,
        page_name="keys",
        kind=kind,
        row=row,
        ident=kind.ident(row),
        values=values,
        error=error,
        teams=await page.api("GET", "/team/list") if kind is KEYS else [],
    )


def _update(kind: Kind) -> Callable[[Page], Awaitable[Response]]:
    async def update(page: Page) -> Response:
        form = page.request.form
        ident = form.get("id", "")
        try:
            body = form_body(kind, form, creating=False)
            await page.api("POST", f"/{kind.api}/update", {kind.id_field: ident, **body})
        except GenrouteError as exc:
            if exc.code == 404:
                raise
            row = await _row(page, kind, ident)
            status = exc.code if 400 <= exc.code < 500 else 500
            return await _render_edit(page, kind, row, dict(form), exc.message, status)
        return _done(kind, "updated")

    return update


def _block(kind: Kind) -> Callable[[Page], Awaitable[Response]]:
    async def block(page: Page) -> Response:
        form = page.request.form
        blocked = form.get("blocked") == "true"
        await page.api(
            "POST", f"/{kind.api}/update", {kind.id_field: form.get("id", ""), "blocked": blocked}
        )
        return _done(kind, "blocked" if blocked else "unblocked")

    return block


def _delete(kind: Kind) -> Callable[[Page], Awaitable[Response]]:
    async def delete(page: Page) -> Response:
        await page.api(
            "POST", f"/{kind.api}/delete", {kind.delete_field: [page.request.form.get("id", "")]}
        )
        return _done(kind, "deleted")

    return delete


async def _keys(page: Page) -> Response:
    return await keys_page(page)


def routes() -> dict[tuple[str, str], Callable[[Page], Awaitable[Response]]]:
    """The Keys page and its forms' routes."""
    table: dict[tuple[str, str], Callable[[Page], Awaitable[Response]]] = {
        ("GET", "/ui/keys"): _keys
    }
    for kind in KINDS.values():
        base = f"/ui/{kind.slug}"
        table[("POST", f"{base}/create")] = _create(kind)
        table[("GET", f"{base}/edit")] = _edit_page(kind)
        table[("POST", f"{base}/edit")] = _update(kind)
        table[("POST", f"{base}/block")] = _block(kind)
        table[("POST", f"{base}/delete")] = _delete(kind)
    return table
