"""The admin UI's pieces without a browser: session and CSRF tokens, the sign-in limit,
cookies, the chart's geometry, the Spend page's choices and form bodies."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from genroute.config import config_from_data
from genroute.errors import ConfigError, InvalidRequest
from genroute.server import create_app
from genroute.ui.chart import nice_ceiling, stacked_bars
from genroute.ui.entities import END_USERS, KEYS, TEAMS, form_body
from genroute.ui.http import Request
from genroute.ui.security import SessionSigner, SignInLimiter, cookie, expired_cookie
from genroute.ui.spend import SpendQuery
from tests.server.asgi_client import asgi_request


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_session_tokens_are_signed_expire_and_can_be_revoked() -> None:
    clock = Clock()
    signer = SessionSigner("sk-master", ttl=60, clock=clock)
    session, token = signer.issue()
    assert signer.check(token) == session
    assert "sk-master" not in token
    sid, expires, mac = token.split(".")
    assert signer.check(f"{sid}.{int(expires) + 9999}.{mac}") is None  # a longer life, forged
    assert signer.check(f"{'0' * 32}.{expires}.{mac}") is None
    assert signer.check(token + "x") is None and signer.check("") is None
    assert SessionSigner("sk-other", ttl=60, clock=clock).check(token) is None  # a new master key
    assert SessionSigner("sk-master", ttl=60, clock=clock).check(token) == session  # any instance
    clock.now += 61
    assert signer.check(token) is None
    clock.now -= 61
    signer.revoke(session)
    assert signer.check(token) is None


def test_csrf_tokens_are_bound_to_their_session() -> None:
    signer = SessionSigner("sk-master", ttl=60)
    one, _ = signer.issue()
    two, _ = signer.issue()
    assert signer.csrf_ok(one.sid, signer.csrf(one.sid))
    assert not signer.csrf_ok(two.sid, signer.csrf(one.sid))
    assert not signer.csrf_ok(one.sid, None) and not signer.csrf_ok(None, signer.csrf(one.sid))
    assert signer.is_master("sk-master") and not signer.is_master("sk-master ")


def test_sign_in_limit_per_client_and_overall() -> None:
    clock = Clock()
    limiter = SignInLimiter(per_client=3, overall=5, window=60, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("a") is None
        limiter.failed("a")
    assert limiter.retry_after("a") == 60
    assert limiter.retry_after("b") is None  # another client still may
    limiter.failed("b")
    limiter.failed("c")
    assert limiter.retry_after("d") == 60  # five failures in all: everyone waits
    clock.now += 30
    assert limiter.retry_after("a") == 30
    clock.now += 31
    assert limiter.retry_after("a") is None and limiter.retry_after("d") is None
    limiter.failed("e")
    limiter.succeeded("e")
    assert limiter._clients.get("e") is None


def test_cookies_are_httponly_strict_and_expire() -> None:
    name, value = cookie("s", "v", 3600, secure=False)
    text = value.decode()
    assert name == b"set-cookie"
    for part in ("s=v", "Path=/ui", "Max-Age=3600", "HttpOnly", "SameSite=Strict", "Expires="):
        assert part in text
    assert "Secure" not in text
    assert cookie("s", "v", 1, secure=True)[1].endswith(b"; Secure")
    assert b"Max-Age=0" in expired_cookie("s", secure=False)[1]


def test_chart_geometry() -> None:
    assert [nice_ceiling(v) for v in (0, 0.3, 1, 1.1, 2.2, 7, 0.00123)] == [
        1.0,
        0.5,
        1.0,
        2.0,
        2.5,
        10.0,
        0.002,
    ]
    chart = stacked_bars(["d1", "d2"], {"a": {"d1": 0.3, "d2": 0.1}, "b": {"d1": 0.1}})
    assert chart.total == pytest.approx(0.5)
    assert [t.label for t in chart.y_ticks] == ["$0.00", "$0.10", "$0.20", "$0.30", "$0.40"]
    assert [b.title.split(",")[0] for b in chart.bars] == ["a", "b", "a"]
    first, second = chart.bars[0], chart.bars[1]
    assert second.y + second.height == pytest.approx(first.y)  # stacked
    assert first.height == pytest.approx(chart.plot_height * 0.3 / 0.4)
    assert chart.legend == [("#2563eb", "a"), ("#f59e0b", "b")]
    many = stacked_bars([f"h{i}" for i in range(168)], {})
    assert not many.bars and len(many.x_ticks) <= 12


def test_spend_choices() -> None:
    today = date(2026, 12, 3)
    default = SpendQuery.parse({}, today)
    assert (default.start, default.end, default.group, default.bucket) == (
        date(2026, 11, 27),
        today,
        "key",
        "day",
    )
    assert len(default.periods()) == 7
    hourly = SpendQuery.parse({"start": "2026-12-03", "bucket": "hour"}, today)
    assert hourly.periods()[:2] == ["2026-12-03 00:00", "2026-12-03 01:00"]
    assert len(hourly.periods()) == 24
    for query, field in [
        ({"start": "yesterday"}, "Start"),
        ({"start": "2026-12-04"}, "Start"),
        ({"start": "2024-01-01"}, "Start"),
        ({"group": "planet"}, "Group by"),
        ({"start": "2026-11-20", "bucket": "hour"}, "Per"),
    ]:
        with pytest.raises(InvalidRequest, match=f"^{field}:"):
            SpendQuery.parse(query, today)


def test_form_bodies() -> None:
    form = {
        "key_alias": " ci ",
        "max_budget": "5",
        "models": "a, b,",
        "rpm_limit": "",
        "team_id": "",
    }
    assert form_body(KEYS, form, creating=True) == {
        "key_alias": "ci",
        "max_budget": 5.0,
        "models": ["a", "b"],
    }
    edited = form_body(KEYS, form, creating=False)
    assert edited["rpm_limit"] is None and edited["team_id"] is None
    assert "duration" not in edited  # an empty "Expires after" keeps the expiry
    assert form_body(TEAMS, {"team_id": "t", "models": ""}, creating=False)["models"] == []
    assert "team_id" not in form_body(TEAMS, {"team_id": "t"}, creating=False)
    assert form_body(END_USERS, {"user_id": "u"}, creating=True) == {"user_id": "u"}
    for field, raw, label in [
        ("max_budget", "lots", "Max budget"),
        ("rpm_limit", "1.5", "Requests"),
    ]:
        with pytest.raises(InvalidRequest, match=f"^{label}"):
            form_body(KEYS, {field: raw}, creating=True)
    with pytest.raises(InvalidRequest, match=r"^Max budget"):
        form_body(KEYS, {"max_budget": "nan"}, creating=True)


def test_same_origin_is_the_host_or_the_forwarded_host() -> None:
    def request(**headers: str) -> Request:
        raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
        return Request({"type": "http", "headers": raw}, receive=None)

    assert request(host="gw:4000").same_origin()  # no Origin: not a cross-site browser POST
    assert request(host="gw:4000", origin="http://gw:4000").same_origin()
    assert request(host="gw:4000", origin="https://gw:4000").same_origin()
    assert not request(host="gw:4000", origin="http://evil.example").same_origin()
    assert not request(host="gw:4000", origin="null").same_origin()
    proxied = request(
        host="127.0.0.1:4000", x_forwarded_host="admin.example", origin="https://admin.example"
    )
    assert proxied.same_origin()


def test_cookies_are_secure_over_https_or_behind_a_tls_proxy() -> None:
    def request(scheme: str, **headers: str) -> Request:
        raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
        return Request({"type": "http", "scheme": scheme, "headers": raw}, receive=None)

    assert request("https").secure
    assert request("http", x_forwarded_proto="https").secure
    assert not request("http").secure
    assert not request("http", x_forwarded_proto="http").secure


async def test_the_session_lasts_ui_session_ttl(tmp_path: Path) -> None:
    config = config_from_data(
        {
            "model_list": [{"model_name": "demo", "params": {"model": "demo/echo"}}],
            "general_settings": {
                "master_key": "sk-m",
                "database_url": f"sqlite:///{tmp_path / 'ttl.db'}",
                "ui_session_ttl": 600,
            },
            "observability": {"logs": {"enabled": False}},
        }
    )
    app = create_app(config)
    await app.pipeline.start()
    try:
        form = await asgi_request(app, "GET", "/ui")
        nonce = form.headers["set-cookie"].split(";")[0]
        csrf = re.search(rb'name="csrf_token" value="([^"]+)"', form.body)
        assert csrf is not None
        body = b"master_key=sk-m&csrf_token=" + csrf.group(1)
        headers = {"cookie": nonce, "content-type": "application/x-www-form-urlencoded"}
        signed_in = await asgi_request(app, "POST", "/ui/login", body, headers)
        assert signed_in.status == 303
        session = [v for k, v in signed_in.raw_headers if v.startswith(b"genroute_ui_session=")]
        assert b"Max-Age=600;" in session[0]
    finally:
        await app.pipeline.aclose()
    with pytest.raises(ConfigError, match="ui_session_ttl"):
        config_from_data({"model_list": [], "general_settings": {"ui_session_ttl": 5}})
