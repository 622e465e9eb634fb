"""What every page of the admin UI works with: the management API it reads and writes
through (`Management`), the templates (Jinja2, every value escaped), and one request's
context (`Page`): its session, its CSRF token and helpers to call the API and render."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from genroute.ui.http import Request, Response, html
from genroute.ui.security import Session, SessionSigner

__all__ = ["HERE", "Management", "Page", "Templates", "money", "when"]

HERE = Path(__file__).parent


class Management(Protocol):
    """The management API (`genroute.server.management.ManagementAPI`), the UI's only way
    to the store: routes run as over HTTP, for a caller that holds the master key."""

    async def call(
        self, method: str, path: str, body: bytes = b"", query: dict[str, str] | None = None
    ) -> Any:
        """Run one route; GenrouteError (naming the field) when it refuses."""
        ...


def money(value: Any, digits: int = 4) -> str:
    """USD as text: `$0.0123`; empty for None."""
    if value is None:
        return ""
    return f"${float(value):,.{digits}f}"


def when(value: Any, seconds: bool = True) -> str:
    """An ISO time from the store as `2026-12-03 14:05:09` UTC; empty for None."""
    if not value:
        return ""
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return parsed.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


class Templates:
    """The UI's Jinja2 templates, autoescaped: a key alias `<script>` renders as text."""

    def __init__(self, versions: dict[str, str] | None = None) -> None:
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["money"] = money
        self.env.filters["when"] = when
        versions = versions or {}
        self.env.globals["static"] = lambda name: f"/ui/static/{name}?v={versions.get(name, '')}"

    def render(self, name: str, **values: Any) -> str:
        return self.env.get_template(name).render(**values)


@dataclass(slots=True)
class Page:
    """One request to a page: the request, its session and the UI's services."""

    request: Request
    session: Session | None
    signer: SessionSigner
    management: Management
    templates: Templates

    @property
    def csrf(self) -> str:
        """The CSRF token every form of this session carries."""
        return self.signer.csrf(self.session.sid) if self.session else ""

    async def api(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        """Call the management API (GenrouteError when it refuses)."""
        data = orjson.dumps(body) if body is not None else b""
        params = {k: str(v) for k, v in query.items() if v not in (None, "")}
        return await self.management.call(method, path, data, params)

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        """A page of the signed-in UI."""
        text = self.templates.render(
            template,
            csrf=self.csrf,
            signed_in=self.session is not None,
            master_hash=self.signer.master_hash,
            **values,
        )
        return html(text, status)
