"""AWS credentials, region, endpoint and SigV4 signing for one Bedrock deployment, all
through botocore (never a hand-written signer).

- Credentials: `params.aws_access_key_id` + `aws_secret_access_key` (+ `aws_session_token`)
  when given; else botocore's credential chain (the AWS_* variables, the shared credentials
  and config files with `aws_profile_name` or $AWS_PROFILE, SSO, container and instance
  roles), resolved on first use in a worker thread (it may read files or ask the instance
  metadata service) and refreshed by botocore when it expires.
- Region: `params.aws_region_name`, else $AWS_REGION, $AWS_DEFAULT_REGION, $AWS_REGION_NAME
  (LiteLLM's), else the profile's `region`; none is a 400 at start-up naming the setting.
- Endpoint: `params.api_base`, else `params.aws_bedrock_runtime_endpoint`, else
  $AWS_BEDROCK_RUNTIME_ENDPOINT / $AWS_ENDPOINT_URL_BEDROCK_RUNTIME, else
  `https://bedrock-runtime.{region}.amazonaws.com` (`.com.cn` in China).
- Signing: `botocore.auth.SigV4Auth` (service `bedrock`) over a
  `botocore.awsrequest.AWSRequest` holding the exact URL, headers and body that are sent.

botocore is imported on first use, so that genroute starts as fast without Bedrock
deployments.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from genroute.config import DeploymentParams
from genroute.errors import FailureReason, InvalidRequest, Unauthenticated
from genroute.providers.catalog import CATALOG, first_env

__all__ = [
    "REGION_ENV",
    "SERVICE",
    "AwsAuth",
    "endpoint",
    "model_path",
    "region_for",
]

SERVICE = "bedrock"  # the SigV4 signing name of bedrock-runtime
REGION_ENV = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_REGION_NAME")
FACTS = CATALOG["bedrock"]
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
# Characters a model id keeps unescaped in the path: what every HTTP client sends as it is
# (genroute's sends the path verbatim; aiohttp's would rewrite %3A to `:`), so the path
# signed is always the path on the wire.
_PATH_SAFE = ":@!$&'()*+,;="


def _botocore_session(profile: str | None) -> Any:
    import botocore.session

    return botocore.session.Session(profile=profile or None)


def region_for(
    params: DeploymentParams, model: str, environ: Mapping[str, str] | None = None
) -> str:
    """The deployment's region (module docstring); InvalidRequest naming what to set."""
    env = os.environ if environ is None else environ
    region = (params.aws_region_name or "").strip() or first_env(REGION_ENV, env)
    if not region:
        try:
            found = _botocore_session(params.aws_profile_name).get_config_variable("region")
        except Exception as exc:  # botocore's ProfileNotFound, a broken config file...
            raise InvalidRequest(
                f"model bedrock/{model}: cannot read the AWS config ({exc})"
            ) from None
        region = str(found or "").strip()
    if not region:
        raise InvalidRequest(
            f"model bedrock/{model}: no AWS region; set params.aws_region_name in the config "
            f"or the {' or '.join(REGION_ENV)} environment variable"
        )
    if not _REGION.fullmatch(region):
        raise InvalidRequest(f"model bedrock/{model}: {region!r} is not an AWS region name")
    return region


def endpoint(
    params: DeploymentParams, region: str, environ: Mapping[str, str] | None = None
) -> str:
    """The bedrock-runtime base URL, without a trailing `/`."""
    env = os.environ if environ is None else environ
    base = (
        (params.api_base or "").strip()
        or (params.aws_bedrock_runtime_endpoint or "").strip()
        or first_env(FACTS.base_env, env)
    )
    if not base:
        template = FACTS.default_base or ""
        base = template.format(region=region)
        if region.startswith("cn-"):
            base += ".cn"
    return base.rstrip("/")


def model_path(model: str) -> str:
    """A model id (or inference profile ARN) as one URL path segment: `/` and anything else
    that is not a path character escaped, `:` kept (AWS reads `%3A` and `:` alike and signs
    what arrives)."""
    if model in ("", ".", ".."):
        raise InvalidRequest(f"model bedrock/{model}: not a model id")
    return quote(model, safe=_PATH_SAFE)


class AwsAuth:
    """Credentials and SigV4 for one deployment; see the module docstring."""

    def __init__(
        self, params: DeploymentParams, model: str, environ: Mapping[str, str] | None = None
    ) -> None:
        self.model = model
        self.region = region_for(params, model, environ)
        self._profile = params.aws_profile_name
        key = (params.aws_access_key_id or "").strip()
        secret = (params.aws_secret_access_key or "").strip()
        if bool(key) != bool(secret):
            missing = "aws_secret_access_key" if key else "aws_access_key_id"
            raise InvalidRequest(
                f"model bedrock/{model}: params.{missing} is missing; give both "
                "aws_access_key_id and aws_secret_access_key, or neither (botocore's "
                "credential chain)"
            )
        self._credentials: Any = None
        if key:
            from botocore.credentials import Credentials

            token = (params.aws_session_token or "").strip() or None
            self._credentials = Credentials(key, secret, token, method="explicit")
        self._lock: asyncio.Lock | None = None

    @property
    def explicit(self) -> bool:
        """Whether the config gave the keys (else botocore's chain finds them)."""
        return self._credentials is not None and self._credentials.method == "explicit"

    def _unauthenticated(self, why: str) -> Unauthenticated:
        return Unauthenticated(
            f"no AWS credentials for bedrock/{self.model}: {why}; set params.aws_access_key_id "
            "and aws_secret_access_key, the AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "variables, or an AWS profile",
            provider="bedrock",
            reason=FailureReason.AUTH,
        )

    def _from_chain(self) -> Any:
        try:
            found = _botocore_session(self._profile).get_credentials()
        except Exception as exc:  # ProfileNotFound, an SSO token expired, ...
            raise self._unauthenticated(str(exc)) from None
        if found is None:
            raise self._unauthenticated("botocore's credential chain found none")
        return found

    async def credentials(self) -> Any:
        """Frozen credentials (access key, secret, token) to sign one request with."""
        if self._credentials is None:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if self._credentials is None:
                    self._credentials = await asyncio.to_thread(self._from_chain)
        credentials = self._credentials
        refresh_needed = getattr(credentials, "refresh_needed", None)
        try:
            if refresh_needed is not None and refresh_needed():
                return await asyncio.to_thread(credentials.get_frozen_credentials)
            return credentials.get_frozen_credentials()
        except Unauthenticated:
            raise
        except Exception as exc:  # a refresh that failed
            raise self._unauthenticated(f"refreshing them failed ({exc})") from None

    async def sign(self, url: str, body: bytes, headers: Mapping[str, str]) -> dict[str, str]:
        """The headers to POST `body` to `url` with: `headers` plus X-Amz-Date, the session
        token when there is one, and Authorization (SigV4, service `bedrock`)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        frozen = await self.credentials()
        request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
        SigV4Auth(frozen, SERVICE, self.region).add_auth(request)
        return {str(name): str(value) for name, value in request.headers.items()}
