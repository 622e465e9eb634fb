"""Readiness says whether new calls can be taken; /metrics shows the ledger's and the
database's own counters."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import InProcessGateway

MASTER = "sk-master-ready"


def get(gw: InProcessGateway, path: str, key: str | None = None) -> tuple[int, bytes]:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    req = urllib.request.Request(f"{gw.base_url}{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_readiness_and_governance_metrics(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "model_list": [{"model_name": "demo", "params": {"model": "demo/echo"}}],
        "general_settings": {
            "master_key": MASTER,
            "database_url": f"sqlite:///{tmp_path / 'ready.db'}",
        },
    }
    gw = InProcessGateway(config, tmp_path)
    try:
        status, body = get(gw, "/health/readiness")
        assert status == 200 and json.loads(body) == {"status": "healthy"}
        status, body = get(gw, "/health", MASTER)
        report = json.loads(body)
        assert status == 200 and report["governance"]["ledger"]["writing"] is True
        status, body = get(gw, "/metrics", MASTER)
        text = body.decode()
        assert status == 200
        assert "genroute_ledger_rows_written_total" in text
        assert "genroute_database_up 1.0" in text
        # A full spend spool makes the instance unready (new calls would be refused).
        governance = gw.app.governance
        assert governance is not None
        governance.ready = lambda: False  # type: ignore[method-assign]
        status, body = get(gw, "/health/readiness")
        assert status == 503
    finally:
        gw.stop()
