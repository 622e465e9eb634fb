"""Credentials, region, endpoint and SigV4 for Bedrock deployments (providers/bedrock/auth.py).

Signatures are botocore's; these tests check that what is signed is exactly what is sent
(the URL path an HTTP client puts on the wire included), and that the fake Bedrock, which
recomputes the signature from the raw request, accepts it and refuses any tampering.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from genroute.config import DeploymentParams
from genroute.errors import FailureReason, InvalidRequest, Unauthenticated
from genroute.providers.bedrock.auth import AwsAuth, endpoint, model_path, region_for
from genroute.providers.http11 import _Target
from tests.fakes.bedrock_upstream import KEY_ID, REGION, SECRET, signature_problem

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"


def params(**values: Any) -> DeploymentParams:
    return DeploymentParams(model=f"bedrock/{SONNET}", **values)


KEYS = {"aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET, "aws_region_name": REGION}


# -- region and endpoint ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "env", "region"),
    [
        ({"aws_region_name": "eu-west-3"}, {"AWS_REGION": "us-west-2"}, "eu-west-3"),
        ({}, {"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-west-1"}, "us-west-2"),
        ({}, {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION_NAME": "ap-south-1"}, "eu-west-1"),
        ({}, {"AWS_REGION_NAME": " ap-south-1 "}, "ap-south-1"),
        ({"aws_region_name": "us-gov-west-1"}, {}, "us-gov-west-1"),
    ],
)
def test_the_region_comes_from_config_then_the_environment(
    config: dict[str, str], env: dict[str, str], region: str
) -> None:
    assert region_for(params(**config), SONNET, env) == region


def test_the_region_of_the_profile_is_the_last_resort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = eu-central-1\n[profile work]\nregion = ap-northeast-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    assert region_for(params(), SONNET, {}) == "eu-central-1"
    assert region_for(params(aws_profile_name="work"), SONNET, {}) == "ap-northeast-1"
    with pytest.raises(InvalidRequest, match="cannot read the AWS config"):
        region_for(params(aws_profile_name="nope"), SONNET, {})


@pytest.mark.parametrize(
    ("region", "message"), [(None, "no AWS region"), ("evil.com/x", "not an AWS region")]
)
def test_a_missing_or_odd_region_is_refused_at_start_up(region: str | None, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message) as info:
        region_for(params(aws_region_name=region), SONNET, {})
    assert "bedrock/" in info.value.message


@pytest.mark.parametrize(
    ("config", "env", "base"),
    [
        ({}, {}, "https://bedrock-runtime.eu-west-1.amazonaws.com"),
        (
            {"api_base": "http://proxy:8080/"},
            {"AWS_BEDROCK_RUNTIME_ENDPOINT": "http://x"},
            "http://proxy:8080",
        ),
        ({"aws_bedrock_runtime_endpoint": "https://vpce.example"}, {}, "https://vpce.example"),
        ({}, {"AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "https://fips.example/"}, "https://fips.example"),
    ],
)
def test_the_endpoint(config: dict[str, str], env: dict[str, str], base: str) -> None:
    assert endpoint(params(**config), "eu-west-1", env) == base


def test_the_endpoint_in_china_ends_in_com_cn() -> None:
    assert (
        endpoint(params(), "cn-north-1", {})
        == "https://bedrock-runtime.cn-north-1.amazonaws.com.cn"
    )


# -- the path that is signed is the path that is sent ------------------------------------


@pytest.mark.parametrize(
    "model", [SONNET, ARN, "anthropic.claude-v2:1", "my model+x(1)", "a?b#c%d"]
)
def test_the_url_path_is_what_an_http_client_sends(model: str) -> None:
    url = f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{model_path(model)}/converse"
    sent = _Target(url).request_target  # genroute's HTTP client sends the path as it is
    assert sent == urlsplit(url).path
    assert sent.count("/") == 3  # one segment, whatever the id holds
    assert unquote(sent.split("/")[2]) == model


def test_a_colon_is_kept_in_the_path_as_aws_and_every_client_read_it() -> None:
    """AWS signs the path it receives and reads `:` and `%3A` alike; some clients (aiohttp's
    yarl) rewrite `%3A` to `:` on the wire, so `model_path` keeps `:` and the path signed is
    the path sent by any client."""
    assert model_path(SONNET) == SONNET
    assert model_path(ARN).endswith("inference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1:0")
    for bad in ("", ".", ".."):
        with pytest.raises(InvalidRequest):
            model_path(bad)


# -- credentials and signing ------------------------------------------------------------------


def test_half_a_key_pair_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="aws_secret_access_key is missing"):
        AwsAuth(params(aws_access_key_id="AKID", aws_region_name=REGION), SONNET)
    with pytest.raises(InvalidRequest, match="aws_access_key_id is missing"):
        AwsAuth(params(aws_secret_access_key="s", aws_region_name=REGION), SONNET)


def headers_of(signed: dict[str, str], url: str) -> dict[str, str]:
    lowered = {k.lower(): v for k, v in signed.items()}
    lowered["host"] = urlsplit(url).netloc
    return lowered


@pytest.mark.parametrize("model", [SONNET, ARN])
async def test_a_signature_the_fake_bedrock_recomputes_and_accepts(model: str) -> None:
    auth = AwsAuth(params(**KEYS), model)
    url = f"http://127.0.0.1:9/model/{model_path(model)}/converse-stream"
    body = b'{"messages": []}'
    base = {"content-type": "application/json", "accept": "application/vnd.amazon.eventstream"}
    signed = await auth.sign(url, body, base)
    found = re.fullmatch(
        rf"AWS4-HMAC-SHA256 Credential={KEY_ID}/\d{{8}}/{REGION}/bedrock/aws4_request, "
        r"SignedHeaders=accept;content-type;host;x-amz-date, Signature=[0-9a-f]{64}",
        signed["Authorization"],
    )
    assert found, signed["Authorization"]
    secrets = {KEY_ID: (SECRET, None)}
    path = urlsplit(url).path
    assert signature_problem(path, headers_of(signed, url), body, secrets) is None
    assert signature_problem(path, headers_of(signed, url), body + b" ", secrets) is not None
    assert signature_problem(path.replace("stream", "x"), headers_of(signed, url), body, secrets)
    other = {**headers_of(signed, url), "accept": "*/*"}
    assert signature_problem(path, other, body, secrets) is not None
    wrong = {KEY_ID: ("another secret", None)}
    assert signature_problem(path, headers_of(signed, url), body, wrong) is not None


async def test_a_session_token_is_signed_and_sent() -> None:
    auth = AwsAuth(params(**KEYS, aws_session_token="FwoGZXIvYXdzE"), SONNET)
    url = f"http://127.0.0.1:9/model/{SONNET}/converse"
    signed = await auth.sign(url, b"{}", {"content-type": "application/json"})
    assert signed["X-Amz-Security-Token"] == "FwoGZXIvYXdzE"
    assert "x-amz-security-token" in signed["Authorization"]
    secrets = {KEY_ID: (SECRET, "FwoGZXIvYXdzE")}
    assert signature_problem(urlsplit(url).path, headers_of(signed, url), b"{}", secrets) is None
    assert auth.explicit


async def test_the_credential_chain_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token")
    auth = AwsAuth(params(aws_region_name=REGION), SONNET)
    assert not auth.explicit
    frozen = await auth.credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        "AKIDENV",
        "env-secret",
        "env-token",
    )


async def test_the_credential_chain_reads_a_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "aws-credentials"
    credentials.write_text("[work]\naws_access_key_id = AKIDWORK\naws_secret_access_key = w\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    auth = AwsAuth(params(aws_region_name=REGION, aws_profile_name="work"), SONNET)
    assert (await auth.credentials()).access_key == "AKIDWORK"


async def test_no_credentials_anywhere_is_an_auth_failure_at_call_time() -> None:
    auth = AwsAuth(params(aws_region_name=REGION), SONNET)  # start-up is fine
    with pytest.raises(Unauthenticated) as info:
        await auth.sign("http://h/model/m/converse", b"", {})
    assert info.value.reason is FailureReason.AUTH and info.value.provider == "bedrock"
    assert "AWS_ACCESS_KEY_ID" in info.value.message
    missing = AwsAuth(params(aws_region_name=REGION, aws_profile_name="nope"), SONNET)
    with pytest.raises(Unauthenticated, match="nope"):
        await missing.credentials()


class _Expiring:
    """Credentials that say they need refreshing, as botocore's RefreshableCredentials do."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.threads: list[str] = []

    def refresh_needed(self) -> bool:
        return True

    def get_frozen_credentials(self) -> Any:
        import threading

        from botocore.credentials import ReadOnlyCredentials

        self.threads.append(threading.current_thread().name)
        if self.fail:
            raise RuntimeError("the SSO token expired")
        return ReadOnlyCredentials("AKIDNEW", "new", None)


async def test_refreshing_credentials_happens_off_the_event_loop() -> None:
    import threading

    auth = AwsAuth(params(aws_region_name=REGION), SONNET)
    expiring = _Expiring()
    auth._credentials = expiring
    assert (await auth.credentials()).access_key == "AKIDNEW"
    assert expiring.threads and expiring.threads[0] != threading.current_thread().name
    auth._credentials = _Expiring(fail=True)
    with pytest.raises(Unauthenticated, match="refreshing them failed"):
        await auth.credentials()
