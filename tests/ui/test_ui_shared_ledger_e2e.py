"""Two gateways sharing one database (a SQLite file, PostgreSQL): a call that one of them
served shows its routing (every attempt, the fallback, the trace id) in the other's
`GET /request/info` and in the other's admin UI call detail, from the spend ledger; the
content stays with the instance that served the call (it is kept in memory only)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from playwright.sync_api import expect

from genroute.observability.tracing import Tracing
from tests.conftest import (
    POSTGRES_URL,
    InProcessGateway,
    eventually,
    genai_client,
    require_service,
)
from tests.dbs import _database, _give_back, _url
from tests.ui.conftest import (
    MASTER,
    PRICED_DEMO,
    Browser,
    Watched,
    broken_group,
    shot,
    signed_in,
    watched,
)

pytestmark = pytest.mark.e2e


def _config(database_url: str) -> dict[str, Any]:
    return {
        "model_list": [PRICED_DEMO, broken_group()],
        "router_settings": {"fallbacks": [{"broken": ["demo"]}], "allowed_fails": 0},
        "general_settings": {
            "master_key": MASTER,
            "spend_flush_interval": 0.1,
            "database_url": database_url,
        },
        "observability": {"logs": {"include_content": True}},
    }


@pytest.fixture(scope="module", params=["sqlite-file", "postgres"])
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[InProcessGateway, InProcessGateway]]:
    tmp = tmp_path_factory.mktemp(request.param)
    name = None
    if request.param == "sqlite-file":
        url = f"sqlite:///{tmp / 'shared.db'}"
    else:
        require_service("PostgreSQL", "127.0.0.1", 5432)
        name = _database(POSTGRES_URL)
        url = _url(POSTGRES_URL, name)
    first = InProcessGateway(_config(url), tmp)
    second = InProcessGateway(_config(url), tmp)
    try:
        yield first, second
    finally:
        second.stop()
        first.stop()
        if name is not None:
            _give_back(POSTGRES_URL, name)


@pytest.fixture
def ui(browser: Browser, pair: tuple[InProcessGateway, InProcessGateway]) -> Iterator[Watched]:
    yield from watched(browser, pair[1])  # the browser is on B


def _served_by(gateway: InProcessGateway, request_id: str) -> str:
    """A call on `broken` (refused upstream, falls back to `demo`) served by `gateway`
    with tracing on; its trace id."""
    spans = InMemorySpanExporter()
    observability = gateway.app.observability
    assert observability is not None
    observability.tracing = Tracing(processor=SimpleSpanProcessor(spans))
    try:
        client = genai_client(gateway.base_url, MASTER, headers={"x-request-id": request_id})
        client.models.generate_content(model="broken", contents="Route me on A")
    finally:
        observability.tracing = None
    (trace_id,) = {f"{s.context.trace_id:032x}" for s in spans.get_finished_spans()}
    return trace_id


def _info(gateway: InProcessGateway, request_id: str) -> dict[str, Any]:
    reply = requests.get(
        gateway.base_url + "/request/info",
        params={"request_id": request_id},
        headers={"x-goog-api-key": MASTER},
        timeout=10,
    )
    assert reply.status_code in (200, 404), reply.text[:300]
    return dict(reply.json()) if reply.status_code == 200 else {}


def test_a_call_served_by_a_shows_its_routing_on_b(
    ui: Watched, pair: tuple[InProcessGateway, InProcessGateway], request: pytest.FixtureRequest
) -> None:
    first, second = pair
    backend = request.node.callspec.params["pair"]
    request_id = f"req-shared-{backend}"
    trace_id = _served_by(first, request_id)

    eventually(lambda: bool(_info(second, request_id).get("ledger")), seconds=5.0)
    info = _info(second, request_id)
    (row,) = info["ledger"]
    assert row["trace_id"] == trace_id and row["model_group"] == "demo"
    assert row["routing"]["fallbacks"] == ["demo"]
    (call,) = info["calls"]  # from the ledger: B never saw the call
    assert call["source"] == "ledger" and call["trace_id"] == trace_id
    assert call["fallbacks"] == ["demo"]
    failed, served = call["attempt_log"]
    assert (failed["model_group"], failed["ok"], failed["error_status"]) == (
        "broken",
        False,
        "UNAVAILABLE",
    )
    assert failed["provider"] == "openai" and failed["error_code"] == 503
    assert failed["duration_ms"] is not None and failed["duration_ms"] >= 0
    assert (served["model_group"], served["ok"], served["provider"]) == ("demo", True, "demo")
    assert served["deployment"] == row["deployment_id"]
    assert call["content_kept"] is False and call["request_contents"] is None
    # A adds the content it keeps in memory to the same detail.
    (on_a,) = _info(first, request_id)["calls"]
    assert on_a["attempt_log"] == call["attempt_log"] and on_a["content_kept"] is True
    assert "Route me on A" in (on_a["request_contents"] or "")

    page = ui.page
    signed_in(ui, f"/ui/logs/detail?request_id={request_id}")
    expect(page.get_by_role("heading", name=f"Call {request_id}")).to_be_visible()
    routing = page.get_by_role("region", name="Routing")
    expect(routing).to_contain_text(f"Trace ID{trace_id}")
    expect(routing).to_contain_text("Fallbacksdemo")
    attempts = routing.get_by_role("table", name="Attempts")
    expect(attempts.get_by_role("row")).to_have_count(3)  # the header, broken, demo
    expect(attempts.get_by_role("row").nth(1)).to_contain_text("broken")
    expect(attempts.get_by_role("row").nth(1)).to_contain_text("503 UNAVAILABLE")
    expect(attempts.get_by_role("row").nth(2)).to_contain_text("served")
    expect(page.get_by_text("this instance does not have it for this call")).to_be_visible()
    shot(page, f"log-detail-on-b-{backend}")


def test_a_call_without_tracing_keeps_its_attempts_and_no_trace_id(
    pair: tuple[InProcessGateway, InProcessGateway],
) -> None:
    first, second = pair
    client = genai_client(first.base_url, MASTER, headers={"x-request-id": "req-untraced"})
    client.models.generate_content(model="demo", contents="Hello")
    eventually(lambda: bool(_info(second, "req-untraced").get("ledger")), seconds=5.0)
    (row,) = _info(second, "req-untraced")["ledger"]
    assert row["trace_id"] is None
    (attempt,) = row["routing"]["attempts"]
    assert attempt["status"] == 200 and "reason" not in attempt
    assert "fallbacks" not in row["routing"]
