"""The admin web UI the gateway serves at /ui: keys, spend, logs and models.

    app.py        AdminUI: routes, the sign-in form, sessions and CSRF checks
    security.py   signed session and CSRF tokens, the sign-in rate limit, headers (CSP)
    http.py       one request (query, cookies, form) and the responses the UI sends
    context.py    Page: what a page handler works with; the Jinja2 templates
    entities.py   the Keys page: keys, teams and end users
    spend.py      the Spend page (chart.py draws its SVG chart) and its CSV
    logs.py       the Logs page, live, and one call's detail
    models.py     the Models page
    templates/    Jinja2 templates (autoescaped)
    static/       app.css, app.js and htmx (vendored: README.md)

Server-rendered HTML: no build step, nothing from another host. It reads and writes only
through the management API (`genroute.server.management`), handed to it by the server;
the import contracts keep it away from the store. See docs/ui.md.
"""

from __future__ import annotations

from genroute.ui.app import DEFAULT_SESSION_TTL, AdminUI
from genroute.ui.context import Management

__all__ = ["DEFAULT_SESSION_TTL", "AdminUI", "Management"]
