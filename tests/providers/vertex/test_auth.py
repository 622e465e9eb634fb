"""Vertex AI credentials and tokens, against the fake Vertex's own token endpoint: the
JWT-bearer flow of a service account (signature and claims checked by the fake), caching
and refreshing before expiry on an injected clock, one refresh at a time, an event loop
that keeps running while google-auth blocks a thread, tokens shared between deployments,
and failures that say what failed without a secret in sight."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from genroute.call import Call, Operation
from genroute.errors import FailureReason, UpstreamError, UpstreamUnavailable
from genroute.providers.http11 import Http11Transport
from genroute.providers.registry import build_provider
from genroute.providers.vertex import auth
from genroute.providers.vertex.auth import (
    CLOUD_PLATFORM,
    REFRESH_MARGIN,
    CredentialsRef,
    TokenSource,
    load_credentials,
    token_source,
)
from genroute.wire import GenerateContentRequest
from tests.conftest import refused_port
from tests.fakes.vertex_upstream import GOOGLE_TOKEN_URI, FakeVertex
from tests.providers.vertex.mock import vertex_spec

REQUEST = GenerateContentRequest.model_validate({"contents": [{"parts": [{"text": "hi"}]}]})


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeVertex]:
    with FakeVertex() as upstream:
        yield upstream


@pytest.fixture
def account(fake: FakeVertex) -> dict[str, Any]:
    """A fresh service account (fresh key id: its own cache entry) the fake trusts."""
    return fake.service_account()


def source_of(account: dict[str, Any], **kw: Any) -> TokenSource:
    return TokenSource(CredentialsRef.parse(account), **kw)


async def test_a_service_account_gets_a_token_by_the_jwt_bearer_flow(
    fake: FakeVertex, account: dict[str, Any]
) -> None:
    before = len(fake.token_requests)
    source = source_of(account)
    token = await source.token()
    assert token in fake.issued() and token.startswith("ya29.")
    claims = fake.token_requests[before]  # the fake verified the RS256 signature
    assert claims["iss"] == account["client_email"] and claims["aud"] == GOOGLE_TOKEN_URI
    assert claims["scope"] == CLOUD_PLATFORM and claims["exp"] - claims["iat"] == 3600
    assert source.project_id == fake.project and source.refreshes == 1
    assert await source.token() == token and len(fake.token_requests) == before + 1


async def test_a_token_is_refreshed_before_it_expires(
    fake: FakeVertex, account: dict[str, Any]
) -> None:
    """On a clock of the test's: a token with fewer than REFRESH_MARGIN seconds left is
    replaced; one with more is kept (the margins leave room for a slow machine)."""
    start = time.time()
    fake.token_lifetime = int(REFRESH_MARGIN) + 200
    try:
        source = source_of(account, clock=lambda: start)
        first = await source.token()  # 425 s left
        source.clock = lambda: start + 100  # about 325 s left: kept
        assert await source.token() == first and source.refreshes == 1
        fake.token_lifetime = 3600
        source.clock = lambda: start + 250  # about 175 s left: refreshed
        second = await source.token()
        assert second != first and source.refreshes == 2
        source.clock = lambda: start + 3000  # about 600 s left: kept
        assert await source.token() == second
        source.clock = lambda: start + 10**6  # long expired
        assert await source.token() not in (first, second) and source.refreshes == 3
    finally:
        fake.token_lifetime = 3600


async def test_callers_that_find_the_token_stale_share_one_refresh(
    fake: FakeVertex, account: dict[str, Any]
) -> None:
    before = len(fake.token_requests)
    source = source_of(account)
    tokens = await asyncio.gather(*(source.token() for _ in range(20)))
    assert len(set(tokens)) == 1 and len(fake.token_requests) == before + 1


def _gated(gate: threading.Event, entered: threading.Event) -> Any:
    """A google-auth transport that waits for `gate` before each request."""
    inner = auth._requests_transport()

    def request(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert gate.wait(5)
        return inner(*args, **kwargs)

    return request


async def test_the_event_loop_runs_while_google_auth_blocks_a_thread(
    account: dict[str, Any],
) -> None:
    gate, entered = threading.Event(), threading.Event()
    source = source_of(account, request=lambda: _gated(gate, entered))
    task = asyncio.create_task(source.token())
    ticks = 0
    while not entered.is_set():  # the refresh thread reaches its request
        await asyncio.sleep(0.001)
        ticks += 1
    for _ in range(5):  # ... and this loop keeps running meanwhile
        await asyncio.sleep(0)
        ticks += 1
    assert not task.done() and ticks >= 5
    gate.set()
    assert await task


async def test_a_caller_that_leaves_does_not_cancel_the_refresh(
    fake: FakeVertex, account: dict[str, Any]
) -> None:
    gate, entered = threading.Event(), threading.Event()
    before = len(fake.token_requests)
    source = source_of(account, request=lambda: _gated(gate, entered))
    leaving = asyncio.create_task(source.token())
    staying = asyncio.create_task(source.token())
    while not entered.is_set():  # noqa: ASYNC110 (a thread sets it)
        await asyncio.sleep(0.001)
    leaving.cancel()
    gate.set()
    token = await staying
    assert leaving.cancelled() and await source.token() == token
    assert len(fake.token_requests) == before + 1


async def test_deployments_with_the_same_credentials_share_their_token(
    fake: FakeVertex, account: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "sa.json"
    path.write_text(json.dumps(account))
    text, mapping = json.dumps(account, indent=2), dict(account)
    transport = Http11Transport()
    try:
        inline = [
            build_provider(vertex_spec(m, vertex_credentials=c, api_base=fake.base_url,
                                       vertex_project=fake.project), transport)
            for m, c in (("gemini-2.5-flash", text), ("claude-haiku-4-5@20251001", mapping))
        ]  # fmt: skip
        from_file = build_provider(
            vertex_spec("gemini-2.5-pro", vertex_credentials=str(path)), transport
        )
        assert inline[0].auth is inline[1].auth  # type: ignore[attr-defined]
        assert from_file.auth is not inline[0].auth  # type: ignore[attr-defined]
        before = len(fake.token_requests)
        for provider in inline:
            await provider.generate(Call(Operation.GENERATE, "m"), REQUEST)
        assert len(fake.token_requests) == before + 1
    finally:
        await transport.aclose()


async def test_a_token_vertex_no_longer_takes_is_replaced(
    fake: FakeVertex, account: dict[str, Any]
) -> None:
    transport = Http11Transport()
    spec = vertex_spec("gemini-2.5-flash", vertex_credentials=account, api_base=fake.base_url,
                       vertex_project=fake.project)  # fmt: skip
    provider = build_provider(spec, transport)
    try:
        await provider.generate(Call(Operation.GENERATE, "m"), REQUEST)
        fake.revoke_all()
        with pytest.raises(UpstreamError) as info:
            await provider.generate(Call(Operation.GENERATE, "m"), REQUEST)
        assert (info.value.code, info.value.reason) == (401, FailureReason.AUTH)
        answer = await provider.generate(Call(Operation.GENERATE, "m"), REQUEST)
        assert answer.text == "Echo: hi"
        assert provider.auth.refreshes == 2  # type: ignore[attr-defined]
    finally:
        await transport.aclose()


# -- failures --------------------------------------------------------------------------------


async def test_credentials_the_token_endpoint_refuses_are_401_auth(
    fake: FakeVertex, account: dict[str, Any]
) -> None:
    fake.script("token_error")
    source = source_of(account)
    with pytest.raises(UpstreamError) as info:
        await source.token()
    error = info.value
    assert (error.code, error.status, error.reason) == (401, "UNAUTHENTICATED", FailureReason.AUTH)
    assert error.provider == "vertex_ai" and "invalid_grant" in error.message
    assert "PRIVATE KEY" not in error.message and account["private_key_id"] not in error.message
    assert await source.token()  # the next call tries again


async def test_a_jwt_signed_with_another_key_is_refused(
    fake: FakeVertex, account: dict[str, Any]
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    forged = {**account, "private_key": pem.decode()}
    with pytest.raises(UpstreamError, match="Invalid JWT Signature") as info:
        await source_of(forged).token()
    assert info.value.reason is FailureReason.AUTH


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("/nonexistent/genroute-sa.json", "the vertex_credentials file '/nonexistent/genroute-sa.json' cannot be read"),
        ('{"type": "service_account", "private_key": "SECRET-SENTINEL"', "the vertex_credentials JSON is not JSON"),
        ('["SECRET-SENTINEL"]', "the vertex_credentials JSON is not a JSON object"),
        ('{"type": "service_account", "private_key": "SECRET-SENTINEL"}', "the vertex_credentials JSON are not usable credentials"),
    ],
)  # fmt: skip
async def test_credentials_that_cannot_be_loaded_say_where_never_what(
    given: str, says: str
) -> None:
    with pytest.raises(UpstreamError) as info:
        await TokenSource(CredentialsRef.parse(given)).token()
    assert info.value.message.startswith(says) and "SECRET-SENTINEL" not in info.value.message
    assert (info.value.code, info.value.reason) == (401, FailureReason.AUTH)


async def test_a_token_endpoint_that_cannot_be_reached_is_unreachable(
    account: dict[str, Any],
) -> None:
    elsewhere = {**account, "token_uri": f"http://127.0.0.1:{refused_port()}/token"}
    with pytest.raises(UpstreamUnavailable) as info:
        await source_of(elsewhere).token()
    assert info.value.reason is FailureReason.UNREACHABLE


async def test_tokens_and_keys_are_never_logged(
    fake: FakeVertex, account: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    source = source_of(account)
    token = await source.token()
    fake.script("token_error")
    source.invalidate(token)
    with pytest.raises(UpstreamError):
        await source.token()
    assert "new access token" in caplog.text
    for secret in (token, account["private_key"].splitlines()[1], account["private_key_id"]):
        assert secret not in caplog.text
    assert "vertex_credentials" not in repr(vertex_spec("m", vertex_credentials=account).params)
    assert "PRIVATE" not in repr(CredentialsRef.parse(account))


# -- where credentials come from ---------------------------------------------------------------


def test_credentials_refs() -> None:
    assert CredentialsRef.parse(None).kind == CredentialsRef.parse("  ").kind == "adc"
    assert CredentialsRef.parse("~/sa.json").value.endswith("/sa.json")
    assert CredentialsRef.parse("~/sa.json").kind == "file"
    same = CredentialsRef.parse({"b": 1, "a": 2}), CredentialsRef.parse('{"a": 2, "b": 1}')
    assert same[0].key == same[1].key and same[0].kind == "json"
    assert token_source(same[0]) is token_source(same[1])
    assert token_source(CredentialsRef.parse("x.json")) is token_source(
        CredentialsRef.parse("./x.json")
    )


def test_application_default_credentials_read_google_application_credentials(
    account: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "adc.json"
    path.write_text(json.dumps(account))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    credentials, project = load_credentials(CredentialsRef.parse(None))
    assert credentials.service_account_email == account["client_email"]
    assert project == account["project_id"]


def test_without_them_google_auths_default_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    import google.auth

    asked: list[Any] = []

    def default(scopes: Any = None, **_: Any) -> tuple[str, str]:
        asked.append(scopes)
        return "metadata-server-credentials", "adc-project"

    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setattr(google.auth, "default", default)
    assert load_credentials(CredentialsRef.parse(None)) == (
        "metadata-server-credentials",
        "adc-project",
    )
    assert asked == [[CLOUD_PLATFORM]]


def test_a_gcloud_user_login_loads_with_its_quota_project() -> None:
    user = {"type": "authorized_user", "client_id": "c", "client_secret": "s",
            "refresh_token": "r", "quota_project_id": "billing-project"}  # fmt: skip
    credentials, project = load_credentials(CredentialsRef.parse(user))
    assert credentials.quota_project_id == project == "billing-project"
