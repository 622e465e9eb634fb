"""How a call was routed, as its spend-ledger row keeps it: compact JSON made once per call
off nothing but the Router's record, and read back as the admin UI's call detail.

`routing_json` writes `{"attempts": [...], "fallbacks": [...]}`: per attempt its model
group, deployment, provider, status (200 when it served the call), reason (the error's
status) and message (clipped), and milliseconds; the fallback groups when there were any.
A call that tried no deployment keeps nothing (None), except a call refused before it
reached a model, which keeps why (`refusal_json`).
`routing_detail` turns a ledger row back into the detail `GET /request/info` answers, in
the shape of the in-memory record of the last calls (`genroute.observability.recent`);
`call_details` adds that record's content, where content is logged.
"""

from __future__ import annotations

from typing import Any

import orjson

from genroute.call import RouteRecord

__all__ = [
    "MESSAGE_CHARS",
    "call_details",
    "parse_routing",
    "refusal_json",
    "routing_detail",
    "routing_json",
]

MESSAGE_CHARS = 200  # an attempt's error message, clipped: enough to read why it failed


def routing_json(route: RouteRecord) -> str | None:
    """The route's attempts and fallbacks as compact JSON, or None when nothing was tried."""
    attempts = route.attempts
    if not attempts:
        return None
    entries = []
    for attempt in attempts:
        ended = attempt.ended
        entry: dict[str, Any] = {
            "group": attempt.model_group,
            "deployment": attempt.deployment_id,
            "provider": attempt.provider,
            "status": attempt.error_code or 200,
            "ms": None if ended is None else round((ended - attempt.started) * 1000, 1),
        }
        if attempt.error_code is not None:
            entry["reason"] = attempt.error_status
            if attempt.error_message:
                entry["message"] = attempt.error_message[:MESSAGE_CHARS]
        entries.append(entry)
    data: dict[str, Any] = {"attempts": entries}
    if route.fallbacks:
        data["fallbacks"] = route.fallbacks
    return orjson.dumps(data).decode()


def refusal_json(reason: str | None, message: str) -> str:
    """Why a call was refused before it reached a model (`{"refused": {...}}`): the error's
    reason (`API_KEY_BLOCKED`, `BUDGET_EXCEEDED`, `MODEL_NOT_ALLOWED`; None for a rate
    limit) and its message, clipped."""
    return orjson.dumps(
        {"refused": {"reason": reason, "message": message[:MESSAGE_CHARS]}}
    ).decode()


def parse_routing(text: Any) -> dict[str, Any] | None:
    """A ledger row's `routing` column read back (None when empty or not a JSON object)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def routing_detail(row: dict[str, Any]) -> dict[str, Any]:
    """A ledger row (as `genroute.store.spend.spend_logs` reads it, `routing` parsed)
    as its call's detail: its trace id, fallbacks and `attempt_log` (each attempt as
    `genroute.observability.recent.attempt_summary` makes it), with the row's model group,
    deployment, status and error status."""
    routing = row.get("routing")
    data = routing if isinstance(routing, dict) else parse_routing(routing) or {}
    attempts = data.get("attempts")
    fallbacks = data.get("fallbacks")
    refused = data.get("refused")
    refused = refused if isinstance(refused, dict) else None
    log = []
    for entry in attempts if isinstance(attempts, list) else []:
        if not isinstance(entry, dict):
            continue
        status = entry.get("status")
        ok = status == 200
        log.append(
            {
                "model_group": entry.get("group"),
                "deployment": entry.get("deployment"),
                "provider": entry.get("provider"),
                "ok": ok,
                "error_code": None if ok else status,
                "error_status": entry.get("reason"),
                "error_message": entry.get("message"),
                "duration_ms": entry.get("ms"),
            }
        )
    return {
        "request_id": row.get("request_id"),
        "operation": row.get("operation"),
        "model_group": row.get("model_group"),
        "deployment_id": row.get("deployment_id"),
        "status_code": row.get("status_code"),
        "error_status": row.get("error_status"),
        "trace_id": row.get("trace_id"),
        "fallbacks": fallbacks if isinstance(fallbacks, list) else [],
        "attempt_log": log,
        "refused": None if refused is None else refused.get("reason") or row.get("error_status"),
        "finish_reason": None,  # what the ledger does not keep (the in-memory record does)
        "error_message": None if refused is None else refused.get("message"),
        "upstream_ms": None,
        "overhead_ms": None,
        "request_contents": None,  # added by `call_details` where content is logged
        "response_text": None,
        "content_kept": False,
        "source": "ledger",
    }


def call_details(
    rows: list[dict[str, Any]], recent: list[dict[str, Any]], content_logged: bool
) -> list[dict[str, Any]]:
    """The detail of each of a request id's ledger `rows` (`routing_detail`), with the
    content of this instance's `recent` record of the same call (same operation and model
    group) where content is logged. Recent records left over (calls whose rows are not
    written yet) follow as they are."""
    calls = [routing_detail(row) for row in rows]
    unmatched = list(recent)
    for call in calls:
        key = (call["operation"], call["model_group"])
        record = next(
            (r for r in unmatched if (r.get("operation"), r.get("model_group")) == key), None
        )
        if record is None:
            continue
        unmatched.remove(record)
        if content_logged:
            call["request_contents"] = record.get("request_contents")
            call["response_text"] = record.get("response_text")
            call["content_kept"] = True
    if len(recent) > len(rows):  # rows still to be written
        calls += [dict(r, source="memory", content_kept=content_logged) for r in unmatched]
    return calls
