"""The admin UI in a real browser, as an operator uses it: sign in, create and manage
keys, teams and end users, use a key from google-genai, follow its calls live in Logs,
see its spend in the chart, see every deployment's health in Models; and the security
rules (CSP, CSRF, escaping, cookies, the sign-in rate limit). Elements are found by role
and label, as a screen reader finds them."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from google.genai.errors import ClientError
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from playwright.sync_api import expect

from genroute.observability.tracing import Tracing
from genroute.ui.logs import LIVE_SECONDS
from tests.conftest import InProcessGateway, genai_client
from tests.ui.conftest import (
    MASTER,
    PRICED_DEMO,
    Browser,
    Watched,
    broken_group,
    ledgered,
    shot,
    sign_in,
    signed_in,
    watched,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessGateway]:
    """One gateway for the module: SQLite, the priced demo model, a `broken` group (an
    upstream that refuses connections) falling back to it, content logged."""
    tmp = tmp_path_factory.mktemp("ui")
    config = {
        "model_list": [PRICED_DEMO, broken_group()],
        "router_settings": {
            "fallbacks": [{"broken": ["demo"]}],
            "allowed_fails": 0,
            "cooldown_time": 600,
        },
        "general_settings": {
            "master_key": MASTER,
            "spend_flush_interval": 0.1,
            "database_url": f"sqlite:///{tmp / 'ui.db'}",
        },
        "observability": {"logs": {"include_content": True}},
    }
    gateway = InProcessGateway(config, tmp)
    yield gateway
    gateway.stop()


@pytest.fixture
def ui(browser: Browser, gw: InProcessGateway) -> Iterator[Watched]:
    yield from watched(browser, gw)


def _secret(page: Any) -> str:
    text = page.get_by_label("New key secret").inner_text().strip()
    assert re.fullmatch(r"sk-[A-Za-z0-9_-]{20,}", text), text
    return text


def create_key(page: Any, alias: str, budget: str = "") -> str:
    """Create a key from the Keys page's dialog; its secret, read from the page."""
    page.goto("/ui/keys")
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Create key")
    dialog.get_by_label("Key alias").fill(alias)
    if budget:
        dialog.get_by_label("Max budget").fill(budget)
    dialog.get_by_role("button", name="Create").click()
    return _secret(page)


def call(gw: InProcessGateway, key: str, model: str = "demo", end_user: str | None = None) -> Any:
    headers = {"x-genroute-end-user": end_user} if end_user else None
    client = genai_client(gw.base_url, key, headers=headers)
    return client.models.generate_content(model=model, contents="Hello from the UI test")


def reload_until(page: Any, path: str, locator: Any, seconds: float = 5.0) -> None:
    """Open `path` again until `locator` is on it (a page that is not live)."""
    deadline = time.monotonic() + seconds
    page.goto(path)
    while locator.count() == 0:
        assert time.monotonic() < deadline, f"not on {path} after {seconds} s"
        page.wait_for_timeout(50)
        page.goto(path)


def key_row(page: Any, alias: str) -> Any:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=alias, exact=True))


# -- signing in and out ----------------------------------------------------------------------


def test_sign_in_with_the_master_key_and_out(ui: Watched, gw: InProcessGateway) -> None:
    page = ui.page
    page.goto("/ui")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shot(page, "sign-in")
    page.get_by_label("Master key").fill("sk-not-the-master")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That is not the master key.")
    expect(page.get_by_role("link", name="Keys")).to_have_count(0)

    ui.new_page().goto("/ui")  # the form open in a second tab does not spoil this one's
    page.get_by_label("Master key").fill(MASTER)
    page.get_by_role("button", name="Sign in").click()
    for name in ("Keys", "Spend", "Logs", "Models"):
        expect(page.get_by_role("navigation").get_by_role("link", name=name)).to_be_visible()
    assert page.url.endswith("/ui/keys")
    # The key is kept nowhere in the browser: not in storage, not in any URL it loaded.
    storage = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}])")
    assert MASTER not in storage
    assert not any(MASTER in url for url in ui.requests)
    assert MASTER not in page.content()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto("/ui/keys")
    expect(page.get_by_label("Master key")).to_be_visible()  # sent back to sign in
    assert page.url.endswith("/ui")


def test_the_session_cookie_is_httponly_strict_and_expires(ui: Watched) -> None:
    sign_in(ui.page)
    (session,) = [c for c in ui.context.cookies() if c["name"] == "genroute_ui_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/ui"
    lifetime = session["expires"] - time.time()
    assert 7.5 * 3600 < lifetime <= 8 * 3600 + 5  # expires, after eight hours
    assert MASTER not in session["value"]
    # Scripts cannot read it.
    assert "genroute_ui_session" not in ui.page.evaluate("() => document.cookie")


def test_an_expired_or_forged_session_is_sent_back_to_sign_in(
    ui: Watched, gw: InProcessGateway
) -> None:
    ui.page.clock.install()  # the live table's poll brought forward, not waited for
    signed_in(ui, "/ui/logs")
    signer = gw.app.ui.signer
    clock = signer.clock
    signer.clock = lambda: clock() + 8 * 3600 + 1
    try:
        # The live table's next poll finds the session over and takes the page to sign-in.
        ui.page.clock.run_for(LIVE_SECONDS * 1000)
        expect(ui.page.get_by_label("Master key")).to_be_visible()
        ui.page.goto("/ui/spend")
        expect(ui.page.get_by_label("Master key")).to_be_visible()
    finally:
        signer.clock = clock
    forged = {"name": "genroute_ui_session", "value": "0" * 32 + ".9999999999.AAAA"}
    ui.context.add_cookies([{**forged, "url": gw.base_url + "/ui"}])
    ui.page.goto("/ui/logs")
    expect(ui.page.get_by_label("Master key")).to_be_visible()


def test_sign_in_is_rate_limited(ui: Watched, gw: InProcessGateway) -> None:
    page, limiter = ui.page, gw.app.ui.limiter
    page.goto("/ui")
    for _ in range(limiter.per_client):
        page.get_by_label("Master key").fill("sk-guess")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("That is not the master key.")
    page.get_by_label("Master key").fill(MASTER)  # even the right key, for now
    with page.expect_response(lambda r: r.url.endswith("/ui/login")) as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 429
    assert answer.value.headers["retry-after"].isdigit()
    expect(page.get_by_role("alert")).to_contain_text("Too many sign-in attempts")
    clock = limiter.clock
    limiter.clock = lambda: clock() + limiter.window + 1
    try:
        sign_in(page)
    finally:
        limiter.clock = clock


# -- security headers, CSRF, escaping ----------------------------------------------------------


def test_every_page_has_a_strict_csp_and_cannot_be_framed(ui: Watched) -> None:
    signed_in(ui)
    for path in ("/ui", "/ui/keys", "/ui/spend", "/ui/logs", "/ui/models", "/ui/static/app.js"):
        response = ui.page.request.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
    # Framed by another page, the browser refuses to show it.
    framing = ui.new_page()
    framing.set_content(f'<iframe src="{ui.gateway.base_url}/ui/keys"></iframe>')
    frame = framing.frames[-1]
    framing.wait_for_timeout(50)
    try:
        content = frame.content()
    except Exception:  # the frame was torn down
        content = ""
    assert "Virtual keys" not in content


def test_a_form_without_its_csrf_token_is_refused(ui: Watched, gw: InProcessGateway) -> None:
    signed_in(ui)
    for token in ("", "forged"):
        answer = ui.page.request.post(
            "/ui/keys/create", form={"csrf_token": token, "key_alias": "csrf-victim"}
        )
        assert answer.status == 403
        assert "CSRF" in answer.text()
    # The right token, but posted from another origin.
    ui.page.goto("/ui/keys")
    token = ui.page.locator("input[name=csrf_token]").first.get_attribute("value")
    answer = ui.page.request.post(
        "/ui/keys/create",
        form={"csrf_token": token, "key_alias": "csrf-victim"},
        headers={"origin": "http://evil.example"},
    )
    assert answer.status == 403
    # A sign-in form from elsewhere (no pre-session cookie) is refused too.
    fresh = requests.post(
        gw.base_url + "/ui/login", data={"master_key": MASTER, "csrf_token": "x"}, timeout=10
    )
    assert fresh.status_code == 403 and "genroute_ui_session" not in fresh.headers.get(
        "set-cookie", ""
    )
    ui.page.goto("/ui/keys")
    expect(ui.page.get_by_role("cell", name="csrf-victim")).to_have_count(0)


def test_aliases_and_end_user_ids_show_as_text(ui: Watched, gw: InProcessGateway) -> None:
    page = ui.page
    hostile = "<script>window.pwned=1</script>"
    signed_in(ui)
    secret = create_key(page, hostile)
    hostile_user = '<img src=x onerror="window.pwned=2">'
    call(gw, secret, end_user=hostile_user)
    page.goto("/ui/keys")
    expect(page.get_by_role("cell", name=hostile, exact=True)).to_be_visible()
    ledgered(gw, end_user=hostile_user)
    page.goto("/ui/logs")
    expect(page.get_by_role("cell", name=hostile_user, exact=True)).to_be_visible()
    page.goto("/ui/keys")
    expect(page.get_by_role("cell", name=hostile_user, exact=True)).to_be_visible()
    reload_until(page, "/ui/spend", page.get_by_role("cell", name=hostile, exact=True))
    assert page.evaluate("() => window.pwned") is None


# -- keys ----------------------------------------------------------------------------------------


def test_create_a_key_copy_it_once_and_use_it(ui: Watched, gw: InProcessGateway) -> None:
    page = ui.page
    signed_in(ui)
    secret = create_key(page, "ci-pipeline", budget="5")
    shot(page, "keys-new-secret")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("status").filter(has_text="Copied")).to_be_visible()
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    row = key_row(page, "ci-pipeline")
    expect(row).to_contain_text("$5.00")
    expect(row).to_contain_text("Active")
    page.reload()  # shown once: not on the page again
    expect(page.get_by_label("New key secret")).to_have_count(0)
    assert secret not in page.content()

    answer = call(gw, secret)
    assert "You said: Hello from the UI test" in answer.text


def test_block_unblock_edit_and_delete_a_key(ui: Watched, gw: InProcessGateway) -> None:
    page = ui.page
    page.on("dialog", lambda dialog: dialog.accept())  # "Delete key ...?"
    signed_in(ui)
    secret = create_key(page, "to-manage")
    key_row(page, "to-manage").get_by_role("button", name="Block").click()
    expect(page.get_by_role("status")).to_have_text("The key was blocked.")
    expect(key_row(page, "to-manage")).to_contain_text("Blocked")
    with pytest.raises(ClientError) as refused:
        call(gw, secret)
    assert refused.value.code == 403

    key_row(page, "to-manage").get_by_role("button", name="Unblock").click()
    expect(key_row(page, "to-manage")).to_contain_text("Active")
    key_row(page, "to-manage").get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", name="Edit key to-manage")).to_be_visible()
    shot(page, "keys-edit")
    page.get_by_label("Max budget").fill("not money")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("Max budget")
    page.get_by_label("Max budget").fill("2.5")
    page.get_by_label("Requests per minute").fill("60")
    page.get_by_label("Models").fill("demo")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("The key was updated.")
    row = key_row(page, "to-manage")
    expect(row).to_contain_text("$2.50")
    expect(row).to_contain_text("60 rpm")
    expect(row).to_contain_text("demo")
    assert call(gw, secret).text

    key_row(page, "to-manage").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_have_text("The key was deleted.")
    expect(key_row(page, "to-manage")).to_have_count(0)


def test_a_refused_form_says_which_field(ui: Watched) -> None:
    page = ui.page
    signed_in(ui)
    page.goto("/ui/keys")
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Create key")
    dialog.get_by_label("Key alias").fill("bad-budget")
    dialog.get_by_label("Max budget").fill("-1")
    dialog.get_by_role("button", name="Create").click()
    dialog = page.get_by_role("dialog", name="Create key")
    expect(dialog.get_by_role("alert")).to_contain_text("max_budget")
    expect(dialog.get_by_label("Key alias")).to_have_value("bad-budget")  # kept
    expect(page.get_by_label("New key secret")).to_have_count(0)


def test_teams_and_end_users(ui: Watched, gw: InProcessGateway) -> None:
    page = ui.page
    page.on("dialog", lambda dialog: dialog.accept())
    signed_in(ui)
    page.get_by_role("button", name="Create team").click()
    dialog = page.get_by_role("dialog", name="Create team")
    dialog.get_by_label("Team ID").fill("research")
    dialog.get_by_label("Team alias").fill("Research")
    dialog.get_by_label("Max budget").fill("100")
    dialog.get_by_label("Budget period").fill("30d")
    dialog.get_by_role("button", name="Create").click()
    expect(page.get_by_role("status")).to_have_text("The team was created.")
    teams = page.get_by_role("region", name="Teams")
    expect(teams.get_by_role("row", name=re.compile("Research"))).to_contain_text("$100.00 per 30d")

    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Create key")
    dialog.get_by_label("Key alias").fill("research-key")
    dialog.get_by_label("Team").select_option(label="Research")
    dialog.get_by_role("button", name="Create").click()
    secret = _secret(page)
    expect(key_row(page, "research-key")).to_contain_text("Research")
    call(gw, secret, end_user="customer-42")

    page.goto("/ui/keys")
    users = page.get_by_role("region", name="End users")
    expect(users.get_by_role("row", name=re.compile("customer-42"))).to_be_visible()
    users.get_by_role("row", name=re.compile("customer-42")).get_by_role(
        "button", name="Block"
    ).click()
    users = page.get_by_role("region", name="End users")
    expect(users.get_by_role("row", name=re.compile("customer-42"))).to_contain_text("Blocked")
    with pytest.raises(ClientError) as refused:
        call(gw, secret, end_user="customer-42")
    assert refused.value.code == 403

    page.get_by_role("button", name="Create end user").click()
    dialog = page.get_by_role("dialog", name="Create end user")
    dialog.get_by_label("End user ID").fill("vip")
    dialog.get_by_label("Requests per minute").fill("10")
    dialog.get_by_role("button", name="Create").click()
    users = page.get_by_role("region", name="End users")
    expect(users.get_by_role("row", name=re.compile("vip"))).to_contain_text("10 rpm")
    shot(page, "keys")

    teams = page.get_by_role("region", name="Teams")
    teams.get_by_role("row", name=re.compile("Research")).get_by_role(
        "button", name="Delete"
    ).click()
    expect(page.get_by_role("status")).to_have_text("The team was deleted.")


# -- logs, spend, models ---------------------------------------------------------------------


def test_a_call_shows_in_logs_within_five_seconds(ui: Watched, gw: InProcessGateway) -> None:
    page = ui.page
    signed_in(ui)
    secret = create_key(page, "live-logs")
    # The page's timers run on Playwright's clock: its poll (every LIVE_SECONDS) is brought
    # forward instead of waited for; the page must show the call after that much of its time.
    page.clock.install()
    page.goto("/ui/logs")
    headers = [h.inner_text() for h in page.get_by_role("columnheader").all()]
    assert headers == ["Time", "Model", "Key", "End user", "Status", "Cost", "Latency"]
    call(gw, secret, end_user="live-user")  # the page is not reloaded: it updates itself
    ledgered(gw, end_user="live-user")
    page.clock.run_for(LIVE_SECONDS * 1000)
    row = page.get_by_role("row").filter(has_text="live-user")
    expect(row).to_be_visible(timeout=5000)
    expect(row).to_contain_text("live-logs")
    expect(row).to_contain_text("demo")
    expect(row).to_contain_text("200")
    first = page.get_by_role("row").nth(1)  # newest first
    expect(first).to_contain_text("live-user")
    call(gw, MASTER, end_user="by-the-master")
    ledgered(gw, end_user="by-the-master")
    page.clock.run_for(LIVE_SECONDS * 1000)
    master = page.get_by_role("row").filter(has_text="by-the-master")
    expect(master).to_contain_text("master key", timeout=5000)
    shot(page, "logs")


def test_logs_filter_by_key_model_and_status(ui: Watched, gw: InProcessGateway) -> None:
    page = ui.page
    signed_in(ui)
    mine = create_key(page, "filtered-key")
    other = create_key(page, "other-key")
    call(gw, mine, end_user="filter-a")
    call(gw, other, end_user="filter-b")
    with pytest.raises(ClientError):
        call(gw, mine, model="no-such-model")  # refused before routing: not a ledger row
    reload_until(page, "/ui/logs", page.get_by_role("row").filter(has_text="filter-b"))
    page.get_by_label("Key").select_option(label="filtered-key")
    page.get_by_label("Model").select_option("demo")
    page.get_by_label("Status").select_option("success")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("row").filter(has_text="filter-a")).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="filter-b")).to_have_count(0)
    assert "key=" in page.url and "status=success" in page.url
    page.get_by_label("Status").select_option("error")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("cell", name="No calls yet.")).to_be_visible()


def test_a_refused_call_shows_in_logs_with_its_status(ui: Watched, gw: InProcessGateway) -> None:
    """A known key refused for its model list is a ledger row (cost 0): Logs shows it, the
    status filter finds it, its detail says why. An unknown key leaves no row."""
    page = ui.page
    signed_in(ui)
    made = requests.post(
        gw.base_url + "/key/generate",
        json={"key_alias": "refused-key", "models": ["broken"]},
        headers={"x-goog-api-key": MASTER},
        timeout=10,
    )
    narrow = made.json()["key"]
    client = genai_client(gw.base_url, narrow, headers={"x-request-id": "req-refused"})
    with pytest.raises(ClientError):
        client.models.generate_content(model="demo", contents="May I?")
    with pytest.raises(ClientError):
        call(gw, "sk-unknown-key-refused", end_user="junk-user")
    ledgered(gw, request_id="req-refused")
    page.goto("/ui/logs")
    expect(page.get_by_role("row").filter(has_text="refused-key")).to_be_visible(timeout=5000)
    expect(page.get_by_role("row").filter(has_text="junk-user")).to_have_count(0)  # written before
    page.get_by_label("Status").select_option("403")
    page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("row").filter(has_text="refused-key")
    expect(row).to_contain_text("403")
    expect(row).to_contain_text("demo")
    row.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Call req-refused")).to_be_visible()
    routing = page.get_by_role("region", name="Routing")
    expect(routing).to_contain_text("RefusedMODEL_NOT_ALLOWED")
    expect(routing).to_contain_text("may not use model 'demo'")
    expect(routing.get_by_role("table", name="Attempts")).to_contain_text("Not routed")
    shot(page, "log-detail-refused")


def test_one_calls_detail_with_its_routing_and_content(ui: Watched, gw: InProcessGateway) -> None:
    page = ui.page
    signed_in(ui)
    secret = create_key(page, "detail-key")
    spans = InMemorySpanExporter()
    observability = gw.app.observability
    assert observability is not None
    observability.tracing = Tracing(processor=SimpleSpanProcessor(spans))  # tracing on
    try:
        client = genai_client(gw.base_url, secret, headers={"x-request-id": "req-detail-1"})
        client.models.generate_content(model="broken", contents="Route me somewhere")
    finally:
        observability.tracing = None
    (trace_id,) = {f"{s.context.trace_id:032x}" for s in spans.get_finished_spans()}
    ledgered(gw, request_id="req-detail-1")
    page.goto("/ui/logs")
    page.get_by_role("row").filter(has_text="detail-key").first.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Call req-detail-1")).to_be_visible()
    facts = page.get_by_role("region", name="Ledger row")
    expect(facts).to_contain_text("req-detail-1")
    expect(facts).to_contain_text("prompt")  # tokens
    routing = page.get_by_role("region", name="Routing")
    expect(routing).to_contain_text("Fallbacks")
    expect(routing).to_contain_text("demo")
    attempts = routing.get_by_role("table", name="Attempts")
    expect(attempts.get_by_role("row")).to_have_count(3)  # the header, broken, demo
    expect(attempts.get_by_role("row").nth(1)).to_contain_text("broken")
    expect(attempts.get_by_role("row").nth(1)).to_contain_text("UNAVAILABLE")
    expect(attempts.get_by_role("row").nth(2)).to_contain_text("served")
    expect(routing).to_contain_text(f"Trace ID{trace_id}")
    expect(page.get_by_text("user: Route me somewhere")).to_be_visible()  # content is logged
    shot(page, "log-detail")


def test_spend_chart_table_range_and_csv(ui: Watched, gw: InProcessGateway) -> None:
    page = ui.page
    signed_in(ui)
    secret = create_key(page, "spender")
    for _ in range(2):
        call(gw, secret, end_user="spend-user")
    spender = page.get_by_role("cell", name="spender", exact=True)
    reload_until(page, "/ui/spend", spender)  # the ledger writes its rows every 0.1 s
    chart = page.get_by_role("img", name=re.compile("Spend"))
    expect(chart).to_be_visible()
    expect(chart).to_have_attribute("aria-label", re.compile(r"Spend by key per day"))
    row = page.get_by_role("row").filter(has=page.get_by_role("cell", name="spender", exact=True))
    expect(row).to_contain_text("2")  # requests
    assert page.locator("svg[role=img] rect title").filter(has_text="spender").count() >= 1
    assert "spender" in page.get_by_role("list").last.inner_text()  # the legend
    shot(page, "spend")

    page.get_by_label("Group by", exact=True).select_option("end_user")
    page.get_by_label("Per", exact=True).select_option("hour")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("img", name=re.compile("Spend by end user per hour"))).to_be_visible()
    expect(page.get_by_role("cell", name="spend-user", exact=True)).to_be_visible()

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    text = Path(download.value.path()).read_text()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        "hour",
        "end_user",
        "requests",
        "refused",
        "prompt_tokens",
        "output_tokens",
        "spend_usd",
    ]
    assert any(r[1] == "spend-user" and int(r[2]) >= 2 and float(r[6]) > 0 for r in rows[1:])

    page.get_by_label("Start", exact=True).fill("2020-01-01")
    page.get_by_label("End", exact=True).fill("2020-01-07")
    page.get_by_label("Per", exact=True).select_option("day")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("cell", name="No calls in this range.")).to_be_visible()
    page.get_by_label("Start", exact=True).fill("2020-01-10")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("alert")).to_contain_text("Start")


def test_models_show_health_cooldown_latency_and_error_rate(
    ui: Watched, gw: InProcessGateway
) -> None:
    page = ui.page
    signed_in(ui)
    secret = create_key(page, "models-key")
    call(gw, secret)
    call(gw, secret, model="broken")  # the broken deployment fails and cools down
    page.goto("/ui/models")
    demo = page.get_by_role("table", name="demo")
    expect(demo.get_by_role("cell", name="demo", exact=True)).to_be_visible()  # provider
    expect(demo).to_contain_text("Healthy")
    expect(demo).to_contain_text(" ms")
    expect(demo).to_contain_text("0.0 %")
    broken = page.get_by_role("table", name="broken")
    expect(broken.get_by_role("cell", name="openai", exact=True)).to_be_visible()
    expect(broken).to_contain_text("Cooling down")
    expect(broken).to_contain_text("s left")
    shot(page, "models")
