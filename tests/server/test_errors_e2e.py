"""End to end: every error case reaches google-genai as the right ClientError/ServerError."""

from __future__ import annotations

import json

import pytest
from google.genai import errors

from tests.conftest import Gateway
from tests.fakes.gemini_upstream import FakeGemini
from tests.server.conftest import client_for
from tests.server.test_gemini_e2e import BODY, post

pytestmark = pytest.mark.e2e
VERSIONS = ["v1", "v1beta"]


def sdk_error(
    gateway: Gateway, version: str, model: str = "gemini-2.5-flash", key: str | None = None
) -> errors.APIError:
    client = client_for(gateway, version) if key is None else client_for(gateway, version, key)
    with pytest.raises(errors.APIError) as info:
        client.models.generate_content(model=model, contents="hi")
    return info.value


@pytest.mark.parametrize("version", VERSIONS)
def test_wrong_key_is_unauthenticated(gateway: Gateway, version: str) -> None:
    err = sdk_error(gateway, version, key="sk-wrong")
    assert isinstance(err, errors.ClientError) and (err.code, err.status) == (
        401,
        "UNAUTHENTICATED",
    )


def test_missing_key_is_permission_denied(gateway: Gateway) -> None:
    status, headers, raw = post(
        gateway, "/v1beta/models/gemini-2.5-flash:generateContent", BODY, {"x-goog-api-key": ""}
    )
    assert status == 403 and headers["content-type"].startswith("application/json")
    assert json.loads(raw)["error"]["status"] == "PERMISSION_DENIED"


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_model_is_not_found(gateway: Gateway, version: str) -> None:
    err = sdk_error(gateway, version, model="no-such-model")
    assert isinstance(err, errors.ClientError) and (err.code, err.status) == (404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"contents": [', "Invalid JSON payload"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"contents": [{"parts": [{"text": 5}]}]}', "contents[0].parts[0].text"),
        (b'{"contents": []}', "contents"),
        (
            b'{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"maxOutputTokens": "many"}}',
            "generationConfig.maxOutputTokens",
        ),
        (
            b'{"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"topK": 1.5}}',
            "generationConfig.topK",
        ),
    ],
)
def test_malformed_requests_are_400_naming_the_field(
    gateway: Gateway, body: bytes, field: str
) -> None:
    status, _, raw = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", body)
    error = json.loads(raw)["error"]
    assert (status, error["code"], error["status"]) == (400, 400, "INVALID_ARGUMENT")
    assert field in error["message"]


def test_body_over_the_limit_is_413(gateway: Gateway) -> None:
    big = {"contents": [{"parts": [{"text": "x" * 200_000}]}]}
    status, _, raw = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", big)
    assert status == 413 and "max_request_size_mb" in json.loads(raw)["error"]["message"]


@pytest.mark.parametrize(
    ("script", "code", "status", "kind"),
    [
        ({"code": 429}, 429, "RESOURCE_EXHAUSTED", errors.ClientError),
        ({"code": 500}, 500, "INTERNAL", errors.ServerError),
        ({"code": 503}, 503, "UNAVAILABLE", errors.ServerError),
        (
            {"code": 400, "status": "FAILED_PRECONDITION", "message": "not in your region"},
            400,
            "FAILED_PRECONDITION",
            errors.ClientError,
        ),
    ],
)
@pytest.mark.parametrize("version", VERSIONS)
def test_upstream_errors_pass_through(
    gateway: Gateway,
    fake: FakeGemini,
    version: str,
    script: dict[str, object],
    code: int,
    status: str,
    kind: type,
) -> None:
    fake.script("error", **script)
    err = sdk_error(gateway, version)
    assert isinstance(err, kind) and (err.code, err.status) == (code, status)
    if code == 429:
        details = err.details["error"]["details"]
        assert any(d["@type"].endswith("RetryInfo") and d["retryDelay"] for d in details)
        assert err.response.headers.get("retry-after")


def test_upstream_rejecting_our_key_passes_through(gateway: Gateway) -> None:
    err = sdk_error(gateway, "v1beta", model="wrong-upstream-key")
    assert (err.code, err.status) == (400, "INVALID_ARGUMENT")
    assert "API_KEY_INVALID" in json.dumps(err.details)


def test_upstream_timeout_is_504(gateway: Gateway, fake: FakeGemini) -> None:
    fake.script("delay", seconds=0.3)
    err = sdk_error(gateway, "v1beta", model="impatient")
    assert isinstance(err, errors.ServerError) and (err.code, err.status) == (
        504,
        "DEADLINE_EXCEEDED",
    )


def test_unreachable_upstream_is_503(gateway: Gateway) -> None:
    err = sdk_error(gateway, "v1beta", model="unreachable")
    assert isinstance(err, errors.ServerError) and (err.code, err.status) == (503, "UNAVAILABLE")


def test_non_json_upstream_error(gateway: Gateway, fake: FakeGemini) -> None:
    fake.script("raw", status=502, body="<html>bad gateway</html>")
    err = sdk_error(gateway, "v1beta")
    assert isinstance(err, errors.ServerError) and err.code == 502 and err.status == "UNAVAILABLE"


def test_error_before_the_first_chunk_is_a_plain_http_error(
    gateway: Gateway, fake: FakeGemini
) -> None:
    fake.script("error", code=429)
    with pytest.raises(errors.ClientError) as info:
        client = client_for(gateway)
        list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="x"))
    assert info.value.code == 429


@pytest.mark.parametrize("version", VERSIONS)
def test_error_mid_stream_arrives_as_a_final_event(
    gateway: Gateway, fake: FakeGemini, version: str
) -> None:
    fake.script("stream_error", after=1, code=429)
    received = []
    with pytest.raises(errors.ClientError) as info:
        client = client_for(gateway, version)
        for chunk in client.models.generate_content_stream(model="gemini-2.5-flash", contents="x"):
            received.append(chunk)
    assert len(received) == 1
    assert (info.value.code, info.value.status) == (429, "RESOURCE_EXHAUSTED")


def test_dropped_upstream_mid_stream_ends_with_an_error_event(
    gateway: Gateway, fake: FakeGemini
) -> None:
    fake.script("drop", after=2)
    status, _, raw = post(
        gateway, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", BODY
    )
    assert status == 200
    events = [e for e in raw.split(b"\r\n\r\n") if e]
    assert len(events) == 3
    last = json.loads(events[-1][6:])
    assert last["error"]["code"] == 503 and last["error"]["status"] == "UNAVAILABLE"
    with pytest.raises(errors.ServerError):
        fake.script("drop", after=1)
        client = client_for(gateway)
        list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="x"))


def test_wrong_method_and_unknown_route(gateway: Gateway) -> None:
    status, _, raw = post(gateway, "/v1beta/models", BODY)
    assert status == 405 and json.loads(raw)["error"]["code"] == 405
    status, _, raw = post(gateway, "/nothing/here", BODY)
    assert status == 404 and json.loads(raw)["error"]["status"] == "NOT_FOUND"


def test_sdk_sees_413_and_403_too(gateway: Gateway) -> None:
    with client_for(gateway) as client, pytest.raises(errors.ClientError) as info:
        client.models.generate_content(model="gemini-2.5-flash", contents="x" * 200_000)
    assert info.value.code == 413
    with client_for(gateway, key=" ") as blank, pytest.raises(errors.ClientError) as info:
        blank.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert (info.value.code, info.value.status) == (403, "PERMISSION_DENIED")
