"""The management API (LiteLLM's shapes), for the master key only.

    POST /key/generate   GET /key/info?key=   POST /key/update   POST /key/delete   GET /key/list
    POST /team/new       GET /team/info?team_id=   POST /team/update   POST /team/delete
    GET  /team/list
    POST /customer/new   GET /customer/info?end_user_id=   POST /customer/update
    POST /customer/delete   GET /customer/list
    GET  /spend/logs (?batch=)   GET /global/spend/report
    GET  /model/health   GET /request/info?request_id=
    GET  /files/list     GET /cached_contents/list   GET /batches/list   (resource_admin.py)

Bodies and query parameters are checked strictly, at the edge, against what the columns
hold on SQLite and PostgreSQL alike: a wrong type, a negative budget, a limit over 2^31-1
(PostgreSQL's INTEGER), an id over 256 characters or with a control character (NUL, which
PostgreSQL cannot store), a duration over 100 years, an unknown field, a bad date or a bad
limit/offset is a 400 naming the field. Successful answers are LiteLLM-shaped JSON; errors
are Google's error JSON like everywhere else.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import orjson
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
)

from genroute.errors import GenrouteError, InvalidRequest, NotFound, PermissionDenied
from genroute.governance import Governance
from genroute.observability.recent import RecentCalls
from genroute.routing import Router
from genroute.server import asgi
from genroute.server.asgi import Receive, Scope, Send
from genroute.server.auth import presented_key, query_params
from genroute.store import StoreError, hash_key, parse_duration
from genroute.store.repo import utcnow
from genroute.store.routing import call_details
from genroute.store.spend import (
    BUCKETS,
    GROUPS,
    SpendFilter,
    deployment_stats,
    spend_logs,
    spend_report,
)
from genroute.wire import format_validation_error

__all__ = [
    "BODY_LIMIT",
    "INT_MAX",
    "MAX_DURATION",
    "MAX_ID",
    "MAX_ITEMS",
    "MAX_OFFSET",
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
INT_MAX = 2**31 - 1  # PostgreSQL's INTEGER (SQLite's is 64-bit): the bound on both
MAX_OFFSET = 2**63 - 1  # OFFSET is a 64-bit integer on both
MAX_ID = 256  # the String(256) id and alias columns
MAX_KEY = 1024  # a key (or its hash) to look up: hashed, never stored as given
MAX_ITEMS = 1000  # ids in one delete, models in one list
MAX_DURATION = timedelta(days=36_500)
HEALTH_WINDOW = "15m"  # /model/health: the ledger window of its requests and error rates
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
M = TypeVar("M", bound=BaseModel)


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (NUL, CR, LF, ...)")
    return value


def _duration(value: str) -> str:
    """A duration the store can add to now: `1h`, `30d`, ..., at most 100 years."""
    try:
        length = parse_duration(value)
    except (ValueError, OverflowError):
        raise ValueError(f"{value!r} is not a duration such as 1h, 1d, 7d or 30d") from None
    if length > MAX_DURATION:
        raise ValueError(f"{value!r} is over the longest duration, 36500d (100 years)")
    return value


Id = Annotated[str, Field(max_length=MAX_ID), AfterValidator(_no_control)]
Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY), AfterValidator(_no_control)]
Count = Annotated[int, Field(ge=0, le=INT_MAX)]
Duration = Annotated[str, Field(max_length=16), AfterValidator(_duration)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class _Limits(_Body):
    max_budget: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    budget_duration: Duration | None = None
    rpm_limit: Count | None = None
    tpm_limit: Count | None = None
    max_parallel_requests: Annotated[int, Field(ge=1, le=INT_MAX)] | None = None
    blocked: bool | None = None
    metadata: dict[str, Any] | None = None


class KeyFields(_Limits):
    """What /key/generate and /key/update take."""

    models: list[Id] | None = Field(default=None, max_length=MAX_ITEMS)
    key_alias: Annotated[Id, Field(min_length=1)] | None = None
    team_id: Id | None = None
    user_id: Id | None = None
    duration: Duration | None = None


class KeyUpdate(KeyFields):
    """/key/update: the key (secret or hash) and the fields to change."""

    key: Key


class KeyDelete(_Body):
    """/key/delete: keys (secrets or hashes) and/or key aliases, as LiteLLM takes them
    (its own client sends both fields, one of them null)."""

    keys: list[Key] | None = Field(default=None, max_length=MAX_ITEMS)
    key_aliases: list[Id] | None = Field(default=None, max_length=MAX_ITEMS)


class TeamFields(_Limits):
    """/team/new and /team/update."""

    team_id: Annotated[Id, Field(min_length=1)] | None = None
    team_alias: Id | None = None
    models: list[Id] | None = Field(default=None, max_length=MAX_ITEMS)


class TeamDelete(_Body):
    """/team/delete."""

    team_ids: list[Id] = Field(min_length=1, max_length=MAX_ITEMS)


class CustomerFields(_Limits):
    """/customer/new and /customer/update (LiteLLM names the id `user_id`)."""

    user_id: Annotated[Id, Field(min_length=1)] | None = Field(
        default=None, validation_alias=AliasChoices("user_id", "end_user_id")
    )
    alias: Id | None = None


class CustomerDelete(_Body):
    """/customer/delete."""

    user_ids: list[Id] = Field(
        min_length=1,
        max_length=MAX_ITEMS,
        validation_alias=AliasChoices("user_ids", "end_user_ids"),
    )


# The response cache's switches in a key's or team's metadata (LiteLLM's names).
_CACHE_SWITCHES: dict[str, tuple[tuple[type, ...], str]] = {
    "no-cache": ((bool,), "true or false"),
    "no-store": ((bool,), "true or false"),
    "ttl": ((int, float), "a number of seconds over 0"),
    "s-maxage": ((int, float), "a number of seconds over 0"),
    "namespace": ((str,), "a string of 1 to 128 characters"),
}


def _check_cache_switches(metadata: dict[str, Any] | None) -> None:
    """InvalidRequest naming the field for a `metadata.cache` the cache cannot use."""
    if not metadata or "cache" not in metadata:
        return
    switches = metadata["cache"]
    if not isinstance(switches, dict):
        raise InvalidRequest(
            "metadata.cache: an object of no-cache, no-store, ttl, s-maxage, namespace"
        )
    for name, value in switches.items():
        kinds, what = _CACHE_SWITCHES.get(name, ((), ""))
        if not kinds:
            raise InvalidRequest(
                f"metadata.cache.{name}: unknown (no-cache, no-store, ttl, s-maxage, namespace)"
            )
        ok = isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))
        if ok and isinstance(value, (int, float)) and not isinstance(value, bool):
            ok = 0 < value <= 366 * 86_400
        if ok and isinstance(value, str):
            ok = 0 < len(value) <= 128 and not _CONTROL.search(value)
        if not ok:
            raise InvalidRequest(f"metadata.cache.{name}: must be {what}")


def _fields(body: BaseModel, *drop: str) -> dict[str, Any]:
    return {k: v for k, v in body.model_dump(exclude_unset=True).items() if k not in drop}


def _when(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(f"{name}: {value!r} is not an ISO date or date-time") from None
    except OverflowError:
        raise InvalidRequest(f"{name}: {value!r} is out of range in UTC") from None


def _param(query: Mapping[str, str], *names: str, limit: int = MAX_ID) -> str | None:
    """The first of the query parameters `names` given (not empty), checked like an id:
    InvalidRequest naming it when it is over `limit` characters or has a control character."""
    for name in names:
        value = query.get(name)
        if not value:
            continue
        if len(value) > limit:
            raise InvalidRequest(f"{name}: {len(value)} characters, over the limit of {limit}")
        if _CONTROL.search(value):
            raise InvalidRequest(f"{name}: must not contain control characters (NUL, CR, LF, ...)")
        return value
    return None


def _whole(query: Mapping[str, str], name: str, default: int) -> int:
    """A whole-number query parameter from 0 to MAX_OFFSET; InvalidRequest naming it."""
    raw = query.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name}: {raw[:40]!r} is not a whole number") from None
    if not 0 <= value <= MAX_OFFSET:
        raise InvalidRequest(f"{name}: must be from 0 to {MAX_OFFSET}")
    return value


def _status(value: str | None) -> str | int | None:
    """`status=`: success, error or an HTTP status code; InvalidRequest otherwise."""
    if not value:
        return None
    if value in ("success", "error"):
        return value
    if value.isdigit() and len(value) == 3:
        return int(value)
    raise InvalidRequest(f"status: success, error or an HTTP status code, not {value[:40]!r}")


def _batch_name(value: str | None) -> str | None:
    """`batches/{id}` from a batch's name or id."""
    return None if not value else f"batches/{value.removeprefix('batches/')}"


def _token(key: str) -> str:
    """A key's hash, given the secret or the hash itself."""
    key = key.strip()
    if len(key) == 64 and all(c in "0123456789abcdef" for c in key):
        return key
    return hash_key(key)


class ManagementAPI:
    """Routes the management paths to the store, behind the master key."""

    def __init__(
        self,
        governance: Governance,
        body_timeout: float | None = None,
        *,
        router: Router | None = None,
        recent: RecentCalls | None = None,
    ) -> None:
        self.gov = governance
        self.body_timeout = body_timeout
        self.store = governance.store
        self.router = router
        self.recent = recent
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
            ("GET", "/request/info"): self.request_info,
        }
        if router is not None:
            self.routes[("GET", "/model/health")] = self.model_health
        self.paths = {path for _, path in self.routes}

    def add_routes(self, routes: dict[tuple[str, str], Any]) -> None:
        """Serve more routes (`(method, path)` → handler), behind the same master key."""
        self.routes.update(routes)
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
            body = await asgi.read_body(scope, receive, BODY_LIMIT, self.body_timeout)
        result = await self.call(scope["method"], path, body, query)
        await asgi.send_json(send, 200, result, headers)

    async def call(
        self, method: str, path: str, body: bytes = b"", query: Mapping[str, str] | None = None
    ) -> Any:
        """Run a route for a caller already known to hold the master key (the admin UI's
        way in): the same validation and answers as over HTTP; GenrouteError otherwise."""
        route = self.routes.get((method, path))
        if route is None:
            raise NotFound(f"no management route {method} {path}")
        try:
            return await route(body, query or {})
        except StoreError as exc:
            raise GenrouteError(exc.message, code=exc.code) from None

    @staticmethod
    def _parse(body: bytes, model: type[M]) -> M:
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"Invalid JSON payload received: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidRequest("Invalid JSON payload received: the body must be a JSON object")
        try:
            parsed = model.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequest(
                f"Invalid request: {format_validation_error(exc, camel=False)}"
            ) from None
        _check_cache_switches(getattr(parsed, "metadata", None))
        return parsed

    async def _team_exists(self, team_id: str | None) -> None:
        if team_id and await self.store.get("team", team_id) is None:
            raise InvalidRequest(f"team_id: no team {team_id!r} (create it with /team/new)")

    # -- keys ----------------------------------------------------------------------------------

    async def key_generate(self, body: bytes, query: Mapping[str, str]) -> Any:
        fields = _fields(self._parse(body, KeyFields))
        await self._team_exists(fields.get("team_id"))
        try:
            data = await self.store.create_key(fields)
        except StoreError:
            raise InvalidRequest("key_alias: that key_alias is taken") from None
        return {**data, "token": data["key_hash"]}

    async def _key(self, key: str | None) -> dict[str, Any]:
        if not key:
            raise InvalidRequest("key: required (the key or its hash)")
        row = await self.store.get("key", _token(key))
        if row is None:
            raise NotFound("key not found")
        return row

    async def key_info(self, body: bytes, query: Mapping[str, str]) -> Any:
        row = await self._key(_param(query, "key", limit=MAX_KEY))
        return {"key": row["key_hash"], "info": row}

    async def key_update(self, body: bytes, query: Mapping[str, str]) -> Any:
        parsed = self._parse(body, KeyUpdate)
        fields = _fields(parsed, "key")
        await self._team_exists(fields.get("team_id"))
        if "duration" in fields:
            duration = fields.pop("duration")
            fields["expires"] = datetime.now(UTC) + parse_duration(duration) if duration else None
        token = _token(parsed.key)
        try:
            row = await self.store.update("key", token, fields)
        except StoreError as exc:
            if exc.code != 400:
                raise
            raise InvalidRequest("key_alias: that key_alias is taken") from None
        await self.gov.cache.invalidate("key", token)
        return row

    async def key_delete(self, body: bytes, query: Mapping[str, str]) -> Any:
        request = self._parse(body, KeyDelete)
        if not request.keys and not request.key_aliases:
            raise InvalidRequest("keys: give the keys to delete (keys or key_aliases)")
        tokens = [_token(k) for k in request.keys or []]
        if request.key_aliases:
            tokens += await self.store.key_tokens(request.key_aliases)
        deleted = await self.store.delete("key", tokens)
        for token in tokens:
            await self.gov.cache.invalidate("key", token)
        return {"deleted_keys": deleted}

    async def key_list(self, body: bytes, query: Mapping[str, str]) -> Any:
        keys = await self.store.list("key", team_id=_param(query, "team_id"))
        return {"keys": keys, "total_count": len(keys)}

    # -- teams and customers -------------------------------------------------------------------

    async def team_new(self, body: bytes, query: Mapping[str, str]) -> Any:
        fields = _fields(self._parse(body, TeamFields))
        if fields.get("team_id") is None:  # absent or null: genroute names the team
            fields["team_id"] = str(uuid.uuid4())
        try:
            return await self.store.create("team", fields)
        except StoreError as exc:
            raise InvalidRequest(f"team_id: {exc.message}") from None

    async def team_info(self, body: bytes, query: Mapping[str, str]) -> Any:
        team_id = _param(query, "team_id")
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

    async def team_update(self, body: bytes, query: Mapping[str, str]) -> Any:
        fields = _fields(self._parse(body, TeamFields))
        return await self._update("team", fields.pop("team_id", None), fields)

    async def team_delete(self, body: bytes, query: Mapping[str, str]) -> Any:
        ids = self._parse(body, TeamDelete).team_ids
        deleted = await self.store.delete("team", ids)
        for ident in ids:
            await self.gov.cache.invalidate("team", ident)
        return {"deleted_teams": deleted}

    async def team_list(self, body: bytes, query: Mapping[str, str]) -> Any:
        return await self.store.list("team")

    async def customer_new(self, body: bytes, query: Mapping[str, str]) -> Any:
        fields = _fields(self._parse(body, CustomerFields))
        if not fields.get("user_id"):
            raise InvalidRequest("user_id: required field is missing")
        fields["end_user_id"] = fields.pop("user_id")
        try:
            row = await self.store.create("end_user", fields)
        except StoreError as exc:
            raise InvalidRequest(f"user_id: {exc.message}") from None
        await self.gov.cache.invalidate("end_user", row["end_user_id"])
        return {**row, "user_id": row["end_user_id"]}

    async def customer_info(self, body: bytes, query: Mapping[str, str]) -> Any:
        ident = _param(query, "end_user_id", "user_id")
        row = await self.store.get("end_user", ident) if ident else None
        if row is None:
            raise NotFound(f"end user {ident!r} not found")
        return {**row, "user_id": row["end_user_id"]}

    async def customer_update(self, body: bytes, query: Mapping[str, str]) -> Any:
        fields = _fields(self._parse(body, CustomerFields))
        return await self._update("end_user", fields.pop("user_id", None), fields)

    async def customer_delete(self, body: bytes, query: Mapping[str, str]) -> Any:
        ids = self._parse(body, CustomerDelete).user_ids
        deleted = await self.store.delete("end_user", ids)
        for ident in ids:
            await self.gov.cache.invalidate("end_user", ident)
        return {"deleted_customers": deleted}

    async def customer_list(self, body: bytes, query: Mapping[str, str]) -> Any:
        return await self.store.list("end_user")

    # -- spend ---------------------------------------------------------------------------------

    @staticmethod
    def _filter(query: Mapping[str, str]) -> SpendFilter:
        key = _param(query, "api_key", "key", limit=MAX_KEY)
        return SpendFilter(
            key_hash=_token(key) if key else None,
            end_user=_param(query, "end_user", "end_user_id"),
            team_id=_param(query, "team_id"),
            model=_param(query, "model"),
            start=_when(query.get("start_date"), "start_date"),
            end=_when(query.get("end_date"), "end_date"),
            status=_status(query.get("status")),
            request_id=_param(query, "request_id", limit=128),
            batch=_batch_name(_param(query, "batch", "batch_id", limit=64)),
        )

    async def spend_logs(self, body: bytes, query: Mapping[str, str]) -> Any:
        limit = _whole(query, "limit", 1000)
        offset = _whole(query, "offset", 0)
        order = query.get("order") or "asc"
        if order not in ("asc", "desc"):
            raise InvalidRequest(f"order: asc or desc, not {order[:40]!r}")
        where = self._filter(query)
        return await spend_logs(self.store, where, limit, offset, newest_first=order == "desc")

    async def spend_report(self, body: bytes, query: Mapping[str, str]) -> Any:
        group_by = (query.get("group_by") or "model").replace("-", "_")
        if group_by not in GROUPS:
            raise InvalidRequest(f"group_by: one of {', '.join(GROUPS)}, not {group_by!r}")
        bucket = query.get("bucket") or "day"
        if bucket not in BUCKETS:
            raise InvalidRequest(f"bucket: one of {', '.join(BUCKETS)}, not {bucket[:40]!r}")
        return await spend_report(self.store, group_by, self._filter(query), bucket=bucket)

    # -- what the admin UI shows besides the store ----------------------------------------------

    async def model_health(self, body: bytes, query: Mapping[str, str]) -> Any:
        """Every deployment's state in the Router (cooldown, load, moving latency) and its
        calls in the ledger over `window` (default 15m): requests, errors, error rate and
        mean latency."""
        assert self.router is not None
        window = query.get("window") or HEALTH_WINDOW
        try:
            length = parse_duration(_duration(window))
        except ValueError as exc:
            raise InvalidRequest(f"window: {exc}") from None
        report = await self.router.health()
        stats = await deployment_stats(self.store, utcnow() - length)
        deployments = [*report["healthy_endpoints"], *report["unhealthy_endpoints"]]
        for item in deployments:
            item.update(stats.get(item["deployment"], {"requests": 0, "errors": 0}))
        deployments.sort(key=lambda d: (d["model_group"], d["deployment"]))
        return {
            "window": window,
            "router_state": report["router_state"],
            "deployments": deployments,
            "wildcard_deployments_omitted": report.get("wildcard_deployments_omitted", 0),
        }

    async def request_info(self, body: bytes, query: Mapping[str, str]) -> Any:
        """One request id's ledger rows and, for each, how it was routed (its attempts,
        fallbacks and trace id, which the ledger keeps: the same on every instance). Where
        content is logged, this instance adds the content of the calls it served among the
        last ones it keeps; a call whose row is not written yet is shown from those."""
        request_id = _param(query, "request_id", limit=128)
        if not request_id:
            raise InvalidRequest("request_id: required")
        rows = await spend_logs(self.store, SpendFilter(request_id=request_id), 100)
        recent = self.recent.find(request_id) if self.recent is not None else []
        if not rows and not recent:
            raise NotFound(f"no call with request id {request_id!r}")
        content_logged = self.recent is not None and self.recent.content_logged
        return {
            "request_id": request_id,
            "ledger": rows,
            "calls": call_details(rows, recent, content_logged),
            "content_logged": content_logged,
        }
