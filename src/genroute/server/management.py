"""The management API (LiteLLM's shapes), for the master key only.

    POST /key/generate   GET /key/info?key=   POST /key/update   POST /key/delete   GET /key/list
    POST /team/new       GET /team/info?team_id=   POST /team/update   POST /team/delete
    GET  /team/list
    POST /customer/new   GET /customer/info?end_user_id=   POST /customer/update
    POST /customer/delete   GET /customer/list
    GET  /spend/logs     GET /global/spend/report

Bodies are checked strictly: a wrong type, a negative budget, a bad duration or an unknown
field is a 400 naming the field. Successful answers are LiteLLM-shaped JSON; errors are
Google's error JSON like everywhere else.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from genroute.errors import GenrouteError, InvalidRequest, NotFound, PermissionDenied
from genroute.governance import Governance
from genroute.server import asgi
from genroute.server.asgi import Receive, Scope, Send
from genroute.server.auth import presented_key, query_params
from genroute.store import StoreError, hash_key, parse_duration
from genroute.store.spend import GROUPS, SpendFilter, spend_logs, spend_report
from genroute.wire import format_validation_error

__all__ = [
    "BODY_LIMIT",
    "CustomerDelete",
    "CustomerFields",
    "KeyDelete",
    "KeyFields",
    "KeyUpdate",
    "ManagementAPI",
    "TeamDelete",
    "TeamFields",
]

BODY_LIMIT = 1024 * 1024
M = TypeVar("M", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


def _duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


class _Limits(_Body):
    max_budget: float | None = Field(default=None, ge=0)
    budget_duration: str | None = None
    rpm_limit: int | None = Field(default=None, ge=0)
    tpm_limit: int | None = Field(default=None, ge=0)
    max_parallel_requests: int | None = Field(default=None, ge=1)
    blocked: bool | None = None
    metadata: dict[str, Any] | None = None

    _check_duration = field_validator("budget_duration")(_duration)


class KeyFields(_Limits):
    """What /key/generate and /key/update take."""

    models: list[str] | None = None
    key_alias: str | None = Field(default=None, min_length=1, max_length=256)
    team_id: str | None = None
    user_id: str | None = None
    duration: str | None = None

    _check_key_duration = field_validator("duration")(_duration)


class KeyUpdate(KeyFields):
    """/key/update: the key (secret or hash) and the fields to change."""

    key: str = Field(min_length=1)


class KeyDelete(_Body):
    """/key/delete."""

    keys: list[str] = Field(min_length=1)


class TeamFields(_Limits):
    """/team/new and /team/update."""

    team_id: str | None = Field(default=None, min_length=1, max_length=256)
    team_alias: str | None = None
    models: list[str] | None = None


class TeamDelete(_Body):
    """/team/delete."""

    team_ids: list[str] = Field(min_length=1)


class CustomerFields(_Limits):
    """/customer/new and /customer/update (LiteLLM names the id `user_id`)."""

    user_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        validation_alias=AliasChoices("user_id", "end_user_id"),
    )
    alias: str | None = None


class CustomerDelete(_Body):
    """/customer/delete."""

    user_ids: list[str] = Field(
        min_length=1, validation_alias=AliasChoices("user_ids", "end_user_ids")
    )


def _fields(body: BaseModel, *drop: str) -> dict[str, Any]:
    return {k: v for k, v in body.model_dump(exclude_unset=True).items() if k not in drop}


def _when(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name}: {value!r} is not an ISO date or date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _token(key: str) -> str:
    """A key's hash, given the secret or the hash itself."""
    key = key.strip()
    if len(key) == 64 and all(c in "0123456789abcdef" for c in key):
        return key
    return hash_key(key)


class ManagementAPI:
    """Routes the management paths to the store, behind the master key."""

    def __init__(self, governance: Governance) -> None:
        self.gov = governance
        self.store = governance.store
        self.routes: dict[tuple[str, str], Any] = {
            ("POST", "/key/generate"): self.key_generate,
            ("GET", "/key/info"): self.key_info,
            ("POST", "/key/update"): self.key_update,
            ("POST", "/key/delete"): self.key_delete,
            ("GET", "/key/list"): self.key_list,
            ("POST", "/team/new"): self.team_new,
            ("GET", "/team/info"): self.team_info,
            ("POST", "/team/update"): self.team_update,
            ("POST", "/team/delete"): self.team_delete,
            ("GET", "/team/list"): self.team_list,
            ("POST", "/customer/new"): self.customer_new,
            ("GET", "/customer/info"): self.customer_info,
            ("POST", "/customer/update"): self.customer_update,
            ("POST", "/customer/delete"): self.customer_delete,
            ("GET", "/customer/list"): self.customer_list,
            ("GET", "/spend/logs"): self.spend_logs,
            ("GET", "/global/spend/report"): self.spend_report,
        }
        self.paths = {path for _, path in self.routes}

    def handles(self, path: str) -> bool:
        """Whether a path is a management route."""
        return path.rstrip("/") in self.paths

    async def handle(
        self, scope: Scope, receive: Receive, send: Send, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """Authenticate as the master key, run the route, send its JSON. The caller's key
        comes from the headers: `?key=` is the key a route looks up, as in LiteLLM."""
        query = query_params(scope)
        key = presented_key(scope, None)
        if not self.gov.authenticated_master(key):
            if self.gov.has_master:
                await self.gov.authenticate(key)  # 401/403 for a missing or unknown key
            raise PermissionDenied(
                "The management API needs the master key (general_settings.master_key)."
            )
        path = scope["path"].rstrip("/")
        route = self.routes.get((scope["method"], path))
        if route is None:
            raise GenrouteError(
                f"{scope['method']} is not allowed on {path}", code=405, status="UNIMPLEMENTED"
            )
        body = b""
        if scope["method"] == "POST":
            body = await asgi.read_body(scope, receive, BODY_LIMIT)
        try:
            result = await route(body, query)
        except StoreError as exc:
            raise GenrouteError(exc.message, code=exc.code) from None
        await asgi.send_json(send, 200, result, headers)

    @staticmethod
    def _parse(body: bytes, model: type[M]) -> M:
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"Invalid JSON payload received: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidRequest("Invalid JSON payload received: the body must be a JSON object")
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequest(
                f"Invalid request: {format_validation_error(exc, camel=False)}"
            ) from None

    async def _team_exists(self, team_id: str | None) -> None:
        if team_id and await self.store.get("team", team_id) is None:
            raise InvalidRequest(f"team_id: no team {team_id!r} (create it with /team/new)")

    # -- keys ----------------------------------------------------------------------------------

    async def key_generate(self, body: bytes, query: dict[str, str]) -> Any:
        fields = _fields(self._parse(body, KeyFields))
        await self._team_exists(fields.get("team_id"))
        data = await self.store.create_key(fields)
        return {**data, "token": data["key_hash"]}

    async def _key(self, key: str | None) -> dict[str, Any]:
        if not key:
            raise InvalidRequest("key: required (the key or its hash)")
        row = await self.store.get("key", _token(key))
        if row is None:
            raise NotFound("key not found")
        return row

    async def key_info(self, body: bytes, query: dict[str, str]) -> Any:
        row = await self._key(query.get("key"))
        return {"key": row["key_hash"], "info": row}

    async def key_update(self, body: bytes, query: dict[str, str]) -> Any:
        parsed = self._parse(body, KeyUpdate)
        fields = _fields(parsed, "key")
        await self._team_exists(fields.get("team_id"))
        if "duration" in fields:
            duration = fields.pop("duration")
            fields["expires"] = datetime.now(UTC) + parse_duration(duration) if duration else None
        token = _token(parsed.key)
        row = await self.store.update("key", token, fields)
        await self.gov.cache.invalidate("key", token)
        return row

    async def key_delete(self, body: bytes, query: dict[str, str]) -> Any:
        tokens = [_token(k) for k in self._parse(body, KeyDelete).keys]
        deleted = await self.store.delete("key", tokens)
        for token in tokens:
            await self.gov.cache.invalidate("key", token)
        return {"deleted_keys": deleted}

    async def key_list(self, body: bytes, query: dict[str, str]) -> Any:
        keys = await self.store.list("key", team_id=query.get("team_id"))
        return {"keys": keys, "total_count": len(keys)}

    # -- teams and customers -------------------------------------------------------------------

    async def team_new(self, body: bytes, query: dict[str, str]) -> Any:
        fields = _fields(self._parse(body, TeamFields))
        fields.setdefault("team_id", str(uuid.uuid4()))
        return await self.store.create("team", fields)

    async def team_info(self, body: bytes, query: dict[str, str]) -> Any:
        team_id = query.get("team_id")
        row = await self.store.get("team", team_id) if team_id else None
        if row is None:
            raise NotFound(f"team {team_id!r} not found")
        return {"team_id": team_id, "team_info": row}

    async def _update(self, kind: str, ident: str | None, fields: dict[str, Any]) -> Any:
        if not ident:
            raise InvalidRequest(f"{'team_id' if kind == 'team' else 'user_id'}: required")
        row = await self.store.update(kind, ident, fields)
        await self.gov.cache.invalidate(kind, ident)
        return row

    async def team_update(self, body: bytes, query: dict[str, str]) -> Any:
        fields = _fields(self._parse(body, TeamFields))
        return await self._update("team", fields.pop("team_id", None), fields)

    async def team_delete(self, body: bytes, query: dict[str, str]) -> Any:
        ids = self._parse(body, TeamDelete).team_ids
        deleted = await self.store.delete("team", ids)
        for ident in ids:
            await self.gov.cache.invalidate("team", ident)
        return {"deleted_teams": deleted}

    async def team_list(self, body: bytes, query: dict[str, str]) -> Any:
        return await self.store.list("team")

    async def customer_new(self, body: bytes, query: dict[str, str]) -> Any:
        fields = _fields(self._parse(body, CustomerFields))
        if not fields.get("user_id"):
            raise InvalidRequest("user_id: required field is missing")
        fields["end_user_id"] = fields.pop("user_id")
        row = await self.store.create("end_user", fields)
        await self.gov.cache.invalidate("end_user", row["end_user_id"])
        return {**row, "user_id": row["end_user_id"]}

    async def customer_info(self, body: bytes, query: dict[str, str]) -> Any:
        ident = query.get("end_user_id") or query.get("user_id")
        row = await self.store.get("end_user", ident) if ident else None
        if row is None:
            raise NotFound(f"end user {ident!r} not found")
        return {**row, "user_id": row["end_user_id"]}

    async def customer_update(self, body: bytes, query: dict[str, str]) -> Any:
        fields = _fields(self._parse(body, CustomerFields))
        return await self._update("end_user", fields.pop("user_id", None), fields)

    async def customer_delete(self, body: bytes, query: dict[str, str]) -> Any:
        ids = self._parse(body, CustomerDelete).user_ids
        deleted = await self.store.delete("end_user", ids)
        for ident in ids:
            await self.gov.cache.invalidate("end_user", ident)
        return {"deleted_customers": deleted}

    async def customer_list(self, body: bytes, query: dict[str, str]) -> Any:
        return await self.store.list("end_user")

    # -- spend ---------------------------------------------------------------------------------

    @staticmethod
    def _filter(query: dict[str, str]) -> SpendFilter:
        key = query.get("api_key") or query.get("key")
        return SpendFilter(
            key_hash=_token(key) if key else None,
            end_user=query.get("end_user") or query.get("end_user_id") or None,
            team_id=query.get("team_id") or None,
            model=query.get("model") or None,
            start=_when(query.get("start_date"), "start_date"),
            end=_when(query.get("end_date"), "end_date"),
        )

    async def spend_logs(self, body: bytes, query: dict[str, str]) -> Any:
        try:
            limit = int(query.get("limit") or 1000)
            offset = int(query.get("offset") or 0)
        except ValueError:
            raise InvalidRequest("limit and offset must be whole numbers") from None
        return await spend_logs(self.store, self._filter(query), limit, offset)

    async def spend_report(self, body: bytes, query: dict[str, str]) -> Any:
        group_by = (query.get("group_by") or "model").replace("-", "_")
        if group_by not in GROUPS:
            raise InvalidRequest(f"group_by: one of {', '.join(GROUPS)}, not {group_by!r}")
        return await spend_report(self.store, group_by, self._filter(query))
