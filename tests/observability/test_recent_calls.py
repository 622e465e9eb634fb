"""The recent calls a gateway with a master key keeps for the admin UI's call detail:
bounded, newest first, with each routing attempt; nothing kept without a master key."""

from __future__ import annotations

import time

from genroute.call import Attempt, Call, Operation
from genroute.config import config_from_data
from genroute.errors import ServiceUnavailable
from genroute.observability import Observability
from genroute.observability.recent import RecentCalls


def _call(request_id: str) -> Call:
    call = Call(Operation.GENERATE, "demo", request_id=request_id)
    started = time.perf_counter()
    call.route.attempts.extend(
        [
            Attempt(
                "broken", "broken#1", "openai", started, started + 0.002, 503, "UNAVAILABLE", "down"
            ),
            Attempt("demo", "demo#1", "demo", started + 0.002, started + 0.003),
        ]
    )
    call.route.fallbacks.append("demo")
    return call


def test_bounded_newest_first_with_attempts() -> None:
    recent = RecentCalls(3)
    obs = Observability(recent=recent)
    for i in range(5):
        obs.finish(_call(f"r{i % 4}"), None, finished=time.perf_counter())
    assert len(recent) == 3
    assert recent.find("r1") == []  # dropped: the oldest
    assert recent.find("r0") and len(recent.find("r0")) == 1  # the fifth call, r0 again
    (kept,) = recent.find("r3")
    assert kept["fallbacks"] == ["demo"] and kept["attempts"] == 2
    failed, served = kept["attempt_log"]
    assert failed["ok"] is False and failed["error_code"] == 503 and failed["duration_ms"] == 2.0
    assert served["ok"] is True and served["deployment"] == "demo#1"


def test_an_error_is_kept_too() -> None:
    recent = RecentCalls(10)
    Observability(recent=recent).finish(
        _call("e"), ServiceUnavailable("down"), finished=time.perf_counter()
    )
    (kept,) = recent.find("e")
    assert kept["status_code"] == 503 and kept["error_message"] == "down"


def test_kept_only_by_a_gateway_with_a_master_key() -> None:
    demo = {"model_list": [{"model_name": "demo", "params": {"model": "demo/echo"}}]}
    assert Observability.from_config(config_from_data(demo)).recent is None
    keyed = config_from_data({**demo, "general_settings": {"master_key": "sk-m"}})
    assert Observability.from_config(keyed).recent is not None
    assert Observability.from_config(keyed, server=False).recent is None
    content = config_from_data(
        {
            **demo,
            "general_settings": {"master_key": "sk-m"},
            "observability": {"logs": {"include_content": True}},
        }
    )
    recent = Observability.from_config(content).recent
    assert recent is not None and recent.content_logged
