"""Records from SDK calls (a Client with observability), content opt-in, text format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from genroute import Client
from genroute.call import Attempt, Call, Caller, Operation
from genroute.config.observability import LogSettings
from genroute.observability import Observability, logs
from genroute.observability.logs import RequestLog, format_text
from genroute.observability.metrics import BoundedLabel
from genroute.observability.records import build_record
from genroute.wire import UsageMetadata
from tests.fakes.gemini_upstream import FakeGemini
from tests.server.conftest import UPSTREAM_KEY


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_sdk_call_record(fake: FakeGemini, tmp_path: Path) -> None:
    log = tmp_path / "sdk.log"
    obs = Observability.from_settings({"logs": {"destination": str(log), "format": "json"}})
    client = Client(
        [
            {
                "model_name": "fast",
                "params": {
                    "model": "gemini/gemini-2.5-flash",
                    "api_key": UPSTREAM_KEY,
                    "api_base": fake.base_url,
                },
            }
        ],
        observability=obs,
    )
    response = await client.agenerate_content(
        model="fast", contents="hello sdk", user="carol", metadata={"job": "nightly"}
    )
    await client.aclose()
    (rec,) = read(log)
    usage = response.usage_metadata
    assert usage is not None
    assert rec["model_group"] == "fast" and rec["provider"] == "gemini"
    assert rec["provider_model"] == "gemini-2.5-flash" and rec["status_code"] == 200
    assert rec["end_user"] == "carol" and rec["metadata"] == {"job": "nightly"}
    assert rec["input_tokens"] == usage.prompt_token_count
    assert rec["total_tokens"] == usage.total_token_count
    assert rec["upstream_ms"] > 0 and 0 <= rec["overhead_ms"] < rec["latency_ms"]
    assert rec["attempts"] == 1 and len(rec["request_id"]) == 32
    assert UPSTREAM_KEY not in log.read_text()
    metrics = obs.metrics
    assert metrics is not None
    families = {f.name: f for f in text_string_to_metric_families(metrics.render()[0].decode())}
    (sample,) = [s for s in families["genroute_requests"].samples if s.name.endswith("_total")]
    assert sample.labels["model_group"] == "fast" and sample.value == 1


async def test_content_is_opt_in_and_redacted(tmp_path: Path) -> None:
    log = tmp_path / "content.log"
    obs = Observability.from_settings(
        {
            "logs": {
                "destination": str(log),
                "format": "json",
                "include_content": True,
                "redact_patterns": [r"sk-[A-Za-z0-9]+", r"\d{3}-\d{2}-\d{4}"],
            },
            "metrics": {"enabled": False},
        }
    )
    client = Client([{"model_name": "demo", "params": {"model": "demo/echo"}}], observability=obs)
    await client.agenerate_content(
        model="demo",
        contents="my key is sk-abc123 and my ssn 123-45-6789",
        config={"system_instruction": "be nice"},
    )
    await client.aclose()
    (rec,) = read(log)
    text = rec["request_contents"]
    assert "sk-abc123" not in text and "123-45-6789" not in text
    assert text == "system: be nice\nuser: my key is [REDACTED] and my ssn [REDACTED]"
    # The demo model echoes the prompt: the logged answer is redacted too.
    assert "sk-abc123" not in rec["response_text"] and "[REDACTED]" in rec["response_text"]


async def test_turn_off_message_logging_wins(tmp_path: Path) -> None:
    from genroute.config import LitellmSettings

    obs = Observability.from_settings(
        {"logs": {"destination": str(tmp_path / "x.log"), "include_content": True}},
        litellm_settings=LitellmSettings(turn_off_message_logging=True),
    )
    assert obs.redactor is None
    await obs.aclose()


def test_text_format_is_readable() -> None:
    call = Call(Operation.GENERATE, "fast", Caller(end_user="dave"), request_id="abc")
    route = call.route
    route.group, route.provider, route.provider_model = "fast", "gemini", "gemini-2.5-flash"
    route.attempts = [Attempt("fast", "a", "gemini", 0.0), Attempt("backup", "b", "demo", 0.0)]
    route.fallbacks = ["backup"]
    route.upstream_seconds = 0.2
    call.meter.usage = UsageMetadata(prompt_token_count=3, candidates_token_count=5)
    call.meter.cost = 0.000123
    line = format_text(build_record(call, None, call.started + 0.25))
    assert "200 fast -> gemini/gemini-2.5-flash 250.0ms (overhead 50.00ms)" in line
    assert "tokens 3->5" in line and "$0.000123" in line and "fallbacks backup" in line
    assert "end_user=dave" in line and line.endswith("rid=abc")


def test_a_flush_writes_at_once_without_waiting_out_the_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shutting down (flush) wakes the writer thread: with an interval longer than flush's
    10 s bound, the line is written only if the flush woke it."""
    monkeypatch.setattr(logs, "WRITE_INTERVAL", 60.0)
    path = tmp_path / "requests.log"
    request_log = RequestLog(LogSettings(destination=str(path), format="json"))
    call = Call(Operation.GENERATE, "fast", Caller(), request_id="flushed")
    request_log.write(build_record(call, None, call.started + 0.01))
    request_log.close()
    assert [row["request_id"] for row in read(path)] == ["flushed"]


def test_bounded_label() -> None:
    label = BoundedLabel(2)
    assert [label(v) for v in ("a", "b", "c", "a", None, "d")] == [
        "a",
        "b",
        "other",
        "a",
        "",
        "other",
    ]
