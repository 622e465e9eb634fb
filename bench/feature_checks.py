"""What the feature groups of bench/run.py check besides speed: which deployment served each
call (the router group), and once a group's load is done, that the ledger, the request log,
/metrics and the span exporter account for the calls served (keys, production,
observability)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from feature_report import Group
from harness import LOGS, WORK, Target, request, upstream_paths

if TYPE_CHECKING:
    from features import Ctx

__all__ = ["after_measuring", "deployments_used", "ledger_rows"]


def deployments_used(target: Target, tries: int = 30) -> dict[str, int]:
    """Which `x-genroute-deployment` served each of `tries` calls."""
    seen: dict[str, int] = {}
    for _ in range(tries):
        status, headers, _ = request(
            target.port, "POST", target.path("generate"), target.headers(), target.body("generate")
        )
        dep = headers.get("x-genroute-deployment", "?") if status == 200 else f"HTTP {status}"
        seen[dep] = seen.get(dep, 0) + 1
    return seen


def ledger_rows(target: Target, master: str) -> int | None:
    """Calls in the spend ledger (GET /global/spend/report), None if it cannot be read."""
    status, _, data = request(
        target.port, "GET", "/global/spend/report?group_by=model", {"x-goog-api-key": master}
    )
    if status != 200:
        return None
    return sum(int(row.get("requests", 0)) for row in json.loads(data))


def after_measuring(ctx: Ctx, group: Group, targets: list[Target], served: dict[str, int]) -> None:
    """What each group checks once its load is done (every target is running again)."""
    by_name = {t.name: t for t in targets}
    if group.name == "keys":
        time.sleep(2.5)  # the ledger is flushed every second
        for name in ("keys-master-sqlite", "keys-vkey-sqlite", "keys-vkey-postgres"):
            if name in by_name:
                rows = ledger_rows(by_name[name], ctx.key)
                group.notes.append(
                    f"{name}: {rows if rows is not None else '?'} ledger rows for "
                    f"{served.get(name, 0)} calls completed (by wrk, warm-ups included, and "
                    "the checks; wrk does not count the calls it cuts off at the end of a run)"
                )
    if group.name == "production":
        time.sleep(6)  # the ledger flushes every second, the span processor every 5 s
        for name in ("genroute-production", "genroute-production-10pct"):
            if name in by_name:
                rows = ledger_rows(by_name[name], ctx.key)
                log_file = WORK / "features" / f"{name}.requests.log"
                lines = log_file.read_bytes().count(b"\n") if log_file.exists() else 0
                group.notes.append(
                    f"{name}: {rows if rows is not None else '?'} ledger rows and {lines} "
                    f"request-log lines for {served.get(name, 0)} calls completed"
                )
        exports = upstream_paths(ctx.ports[0]).get("POST /v1/traces", 0)
        group.notes.append(f"OTLP exports received by the sink (both tracing targets): {exports}")
    if group.name == "observability" and "obs-all-on" in by_name:
        on = by_name["obs-all-on"]
        time.sleep(6)  # the span processor exports every 5 s
        exports = upstream_paths(ctx.ports[0]).get("POST /v1/traces", 0)
        status, _, data = request(on.port, "GET", "/metrics")
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in data.decode(errors="replace").splitlines()
            if line.startswith("genroute_requests_total{")
        )
        lines = (LOGS / "obs-all-on.log").read_bytes().count(b"\n")
        group.notes.append(
            f"obs-all-on: {exports} OTLP exports received by the sink, /metrics ({status}) "
            f"counted {counted:.0f} requests, {lines} log lines, for {served.get('obs-all-on', 0)} "
            "calls completed"
        )
