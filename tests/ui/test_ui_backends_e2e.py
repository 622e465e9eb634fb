"""The admin UI on each way of running genroute: the embedded default (no config file, a
master key from $GENROUTE_MASTER_KEY, SQLite in the working directory) and PostgreSQL.
An operator with only a browser signs in, creates a key, sees its calls in Logs and its
spend by key, and sees the deployments; without a master key, /ui says what to set."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from genroute.ui.logs import LIVE_SECONDS
from tests.conftest import POSTGRES_URL, InProcessGateway, require_service
from tests.dbs import _database, _give_back, _url
from tests.ui.conftest import (
    MASTER,
    Browser,
    Watched,
    ledgered,
    shot,
    sign_in,
    ui_config,
    watched,
)
from tests.ui.test_ui_e2e import call, create_key, reload_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["embedded-default", "postgres"])
def gw(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "embedded-default":
        with pytest.MonkeyPatch.context() as env:
            env.setenv("GENROUTE_MASTER_KEY", MASTER)
            env.chdir(tmp)  # where the embedded default keeps genroute.db
            gateway = InProcessGateway(None, tmp)
            assert (tmp / "genroute.db").exists()
            yield gateway
            gateway.stop()
        return
    require_service("PostgreSQL", "127.0.0.1", 5432)
    base = POSTGRES_URL
    name = _database(base)
    gateway = InProcessGateway(ui_config(database_url=_url(base, name)), tmp)
    try:
        yield gateway
    finally:
        gateway.stop()
        _give_back(base, name)


@pytest.fixture
def ui(browser: Browser, gw: InProcessGateway) -> Iterator[Watched]:
    yield from watched(browser, gw)


def test_an_operator_with_only_a_browser(
    ui: Watched, gw: InProcessGateway, request: pytest.FixtureRequest
) -> None:
    backend = request.node.callspec.params["gw"]
    page = ui.page
    sign_in(page)
    secret = create_key(page, f"ops-{backend}", budget="10")
    page.clock.install()  # the logs' poll brought forward, not waited for (test_ui_e2e.py)
    page.goto("/ui/logs")
    call(gw, secret, end_user="ops-user")
    ledgered(gw, end_user="ops-user")
    page.clock.run_for(LIVE_SECONDS * 1000)
    expect(page.get_by_role("row").filter(has_text="ops-user")).to_be_visible(timeout=5000)
    row = page.get_by_role("row").filter(has_text="ops-user")
    expect(row).to_contain_text(f"ops-{backend}")
    row.get_by_role("link").click()
    expect(page.get_by_role("region", name="Ledger row")).to_contain_text(f"ops-{backend}")
    expect(page.get_by_text("Content is not logged")).to_be_visible()

    label = page.get_by_role("cell", name=f"ops-{backend}", exact=True)
    reload_until(page, "/ui/spend", label)
    expect(page.get_by_role("img", name=re.compile("Spend by key"))).to_be_visible()
    spend_row = page.get_by_role("row").filter(has=label)
    expect(spend_row).to_contain_text("1")
    shot(page, f"spend-{backend}")

    page.goto("/ui/models")
    expect(page.get_by_role("table", name="demo")).to_contain_text("Healthy")
    page.goto("/ui/keys")
    expect(page.get_by_role("row").filter(has=page.get_by_role("cell", name=f"ops-{backend}")))
    shot(page, f"keys-{backend}")


def test_without_a_master_key_the_ui_says_what_to_set(tmp_path: Path) -> None:
    gateway = InProcessGateway(
        {"model_list": [{"model_name": "demo", "params": {"model": "demo/echo"}}]}, tmp_path
    )
    try:
        answer = requests.get(gateway.base_url + "/ui", timeout=10)
        assert answer.status_code == 503
        assert "needs a master key" in answer.text
        assert "GENROUTE_MASTER_KEY" in answer.text
        assert answer.headers["x-frame-options"] == "DENY"
        css = requests.get(gateway.base_url + "/ui/static/app.css", timeout=10)
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    finally:
        gateway.stop()


def test_every_instance_serves_the_ui_and_takes_its_sessions(
    ui: Watched, gw: InProcessGateway, tmp_path: Path
) -> None:
    """A second instance on the same database: the browser's session from the first works
    there (sessions are signed, not stored), and it shows the keys the first created."""
    url = gw.app.config.general_settings.database_url
    config = None if url is None else ui_config(database_url=url)  # else: the embedded default
    twin = InProcessGateway(config, tmp_path)
    try:
        page = ui.page
        sign_in(page)
        create_key(page, "made-on-the-first")
        (session,) = [c for c in ui.context.cookies() if c["name"] == "genroute_ui_session"]
        other = requests.get(
            twin.base_url + "/ui/keys",
            cookies={"genroute_ui_session": session["value"]},
            allow_redirects=False,
            timeout=10,
        )
        assert other.status_code == 200, other.text[:300]
        assert "made-on-the-first" in other.text
        signed_out = requests.get(twin.base_url + "/ui/keys", allow_redirects=False, timeout=10)
        assert signed_out.status_code == 303 and signed_out.headers["location"] == "/ui"
    finally:
        twin.stop()
