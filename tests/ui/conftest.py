"""The admin UI's browser tests: Debian's Chromium (its headless shell, package
chromium-headless-shell; GENROUTE_TEST_CHROMIUM names another build, such as
/usr/bin/chromium) driven by Playwright, one browser per test session (per xdist worker),
a fresh context (cookies, storage) per test, and a screenshot of each page kept in
test-artifacts/ui/.

Every page a test opens is watched: a request to any host but the gateway's, or a
console error (a Content-Security-Policy violation is one), fails the test.

Playwright's sync API runs an asyncio loop of its own in a greenlet, and between its calls
it leaves that loop marked as this thread's running loop, so that no other loop can run
here while it lives (pytest-asyncio's would refuse to). The session's Playwright is
therefore *parked* between browser tests: the mark is set while a test uses the browser
(`Watched`) and cleared after it, so the async tests of other modules that the same
xdist worker runs in between are not affected.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import ROOT, InProcessGateway, eventually, in_ci, refused_port

CHROMIUM = os.environ.get("GENROUTE_TEST_CHROMIUM", "/usr/bin/chromium-headless-shell")
ARTIFACTS = Path(os.environ.get("GENROUTE_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "ui"
MASTER = "sk-master-ui-test"
PRICED_DEMO = {
    "model_name": "demo",
    "params": {"model": "demo/echo"},
    # Prices of its own, so that its calls cost something to chart.
    "model_info": {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002},
}


def broken_group() -> dict[str, Any]:
    """A `broken` model group: an OpenAI deployment whose upstream refuses connections."""
    return {
        "model_name": "broken",
        "params": {
            "model": "openai/gpt-4o-mini",
            "api_key": "sk-upstream",
            "api_base": f"http://127.0.0.1:{refused_port()}/v1",
        },
    }


def ui_config(**general: Any) -> dict[str, Any]:
    """A gateway config with a master key and the priced demo model; ledger rows are
    written every 0.1 s."""
    return {
        "model_list": [PRICED_DEMO],
        "general_settings": {"master_key": MASTER, "spend_flush_interval": 0.1, **general},
    }


class Browser:
    """The session's Chromium and the loop of the Playwright that drives it (parked)."""

    def __init__(self, chromium: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.chromium = chromium
        self.loop = loop

    def unpark(self) -> None:
        asyncio.events._set_running_loop(self.loop)

    @staticmethod
    def park() -> None:
        asyncio.events._set_running_loop(None)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session (skipped without it, except in CI)."""
    if not Path(CHROMIUM).exists():
        message = (
            f"{CHROMIUM} is missing: `apt-get install chromium-headless-shell` (scripts/test does)"
        )
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    loop = asyncio.events._get_running_loop()
    assert loop is not None
    chromium = playwright.chromium.launch(executable_path=CHROMIUM)
    Browser.park()
    try:
        yield Browser(chromium, loop)
    finally:
        asyncio.events._set_running_loop(loop)
        chromium.close()
        playwright.stop()


class Watched:
    """A browser context on one gateway, recording every request and console error."""

    def __init__(self, browser: Browser, gateway: InProcessGateway) -> None:
        self.gateway = gateway
        self.context = browser.chromium.new_context(base_url=gateway.base_url)
        self.context.grant_permissions(["clipboard-read", "clipboard-write"])
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.page = self.new_page()

    def new_page(self) -> Any:
        page = self.context.new_page()
        page.set_default_timeout(10_000)
        page.on(
            "console",
            lambda msg: self.errors.append(msg.text) if msg.type == "error" else None,
        )
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        return page

    def check(self) -> None:
        """No request left for another host; nothing went wrong in a page."""
        ours = urlsplit(self.gateway.base_url).netloc
        foreign = [u for u in self.requests if urlsplit(u).netloc not in (ours, "")]
        assert not foreign, f"requests to other hosts: {foreign}"
        unexpected = [e for e in self.errors if not _expected_error(e)]
        assert not unexpected, f"errors in the page: {unexpected}"
        self.context.close()


def _expected_error(text: str) -> bool:
    """Console errors a test causes on purpose: a refused form or sign-in (4xx pages), a
    page framed against its CSP."""
    return bool(re.search(r"status of (401|403|404|429|400)|Framing .* violates", text))


def watched(browser: Browser, gateway: InProcessGateway) -> Iterator[Watched]:
    """A fixture body: a watched context, checked when the test ends; Playwright is
    unparked for the test only."""
    browser.unpark()
    try:
        context = Watched(browser, gateway)
        try:
            yield context
        finally:
            context.check()
    finally:
        browser.park()


def ledgered(gw: InProcessGateway, **query: str) -> None:
    """Wait, polling every 10 ms, until the ledger holds a call that `query` finds
    (/spend/logs filters): a page opened, or a live table polled, next shows it. (The ledger
    writes its rows every 0.1 s; a page that looked before then would show the call only at
    its next poll, LIVE_SECONDS later.)"""

    def there() -> bool:
        reply = requests.get(
            gw.base_url + "/spend/logs",
            params={**query, "limit": "1"},
            headers={"x-goog-api-key": MASTER},
            timeout=10,
        )
        reply.raise_for_status()
        return bool(reply.json())

    eventually(there)


def shot(page: Any, name: str) -> Path:
    """A full-page screenshot kept as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


_TOKENS: dict[str, str] = {}  # a session token per gateway, for tests about other things


def signed_in(ui: Watched, path: str = "/ui/keys") -> Any:
    """Open `path` signed in, with a session the form gave once per gateway (the tests of
    signing in itself use `sign_in`)."""
    base = ui.gateway.base_url
    if base not in _TOKENS:
        with requests.Session() as browser:
            form = browser.get(base + "/ui", timeout=10).text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert csrf is not None
            reply = browser.post(
                base + "/ui/login",
                data={"master_key": MASTER, "csrf_token": csrf.group(1)},
                headers={"origin": base},
                allow_redirects=False,
                timeout=10,
            )
            assert reply.status_code == 303, reply.text
            _TOKENS[base] = browser.cookies["genroute_ui_session"]
    cookie = {"name": "genroute_ui_session", "value": _TOKENS[base], "url": base + "/ui"}
    ui.context.add_cookies([{**cookie, "httpOnly": True, "sameSite": "Strict"}])
    ui.page.goto(path)
    return ui.page


def sign_in(page: Any, key: str = MASTER) -> None:
    """Sign in through the form, as a person would."""
    from playwright.sync_api import expect

    page.goto("/ui")
    page.get_by_label("Master key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("link", name="Keys")).to_be_visible()
