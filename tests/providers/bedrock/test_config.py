"""Bedrock in the configuration: LiteLLM's parameters, the config copied from LiteLLM's
Bedrock documentation (read from docs/provider-bedrock.md) loading unchanged, and the
embedded default picking Bedrock up from the AWS environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from genroute.config import ConfigError, config_from_data
from genroute.defaults import default_config, provider_keys_found
from genroute.providers.bedrock import BedrockProvider
from genroute.routing import Router

DOC = Path(__file__).resolve().parents[3] / "docs" / "provider-bedrock.md"
ENV = {
    "CUSTOM_AWS_ACCESS_KEY_ID": "AKIDCUSTOM", "CUSTOM_AWS_SECRET_ACCESS_KEY": "custom-secret",
    "CUSTOM_AWS_REGION_NAME": "us-west-2", "AWS_ACCESS_KEY_ID": "AKIDENV",
    "AWS_SECRET_ACCESS_KEY": "env-secret", "AWS_REGION_NAME": "eu-central-1",
}  # fmt: skip


def litellm_config() -> str:
    found = re.search(r"<!-- litellm-config -->\n```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert found, "docs/provider-bedrock.md lost its LiteLLM config block"
    return found[1]


def test_the_config_from_litellms_docs_loads_unchanged() -> None:
    config = config_from_data(yaml.safe_load(litellm_config()), source="litellm", environ=ENV)
    first, second = (entry.params for entry in config.model_list)
    assert (first.aws_access_key_id, first.aws_region_name) == ("AKIDCUSTOM", "us-west-2")
    assert second.model == "bedrock/us.anthropic.claude-3-haiku-20240307-v1:0"
    router = Router.from_config(config, allow_ad_hoc_models=False)
    haiku = router.group("bedrock-claude-haiku")[0].provider
    assert isinstance(haiku, BedrockProvider)
    assert haiku.auth.region == "eu-central-1" and haiku.auth.explicit
    assert haiku.converse_url == (
        "https://bedrock-runtime.eu-central-1.amazonaws.com/model/"
        "us.anthropic.claude-3-haiku-20240307-v1:0/converse"
    )
    assert haiku.count_url is not None and "/model/anthropic.claude-3-haiku" in haiku.count_url
    instant = router.group("bedrock-claude-v1")[0].provider
    assert isinstance(instant, BedrockProvider) and instant.profile.claude
    assert "aws_secret_access_key" not in repr(first) and "custom-secret" not in repr(first)


def test_litellms_other_parameters_load_and_unknown_ones_are_named() -> None:
    entry = {"model_name": "b", "litellm_params": {
        "model": "bedrock/amazon.nova-pro-v1:0", "aws_session_token": "t", "aws_profile_name": "p",
        "aws_bedrock_runtime_endpoint": "https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com",
        "aws_region_name": "us-east-1"}}  # fmt: skip
    params = config_from_data({"model_list": [entry]}).model_list[0].params
    assert (params.aws_session_token, params.aws_profile_name) == ("t", "p")
    provider = Router.from_config(config_from_data({"model_list": [entry]})).group("b")[0].provider
    assert isinstance(provider, BedrockProvider)
    assert provider.stream_url.startswith("https://vpce-1.bedrock-runtime")
    assert provider.count_url is None  # Nova: counted locally
    role = {**entry, "litellm_params": {**entry["litellm_params"], "aws_role_name": "arn:x"}}
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.litellm_params\.aws_role_name"):
        config_from_data({"model_list": [role]})


def test_a_deployment_without_a_region_fails_at_start_up() -> None:
    config = config_from_data(
        {"model_list": [{"model_name": "b", "params": {"model": "bedrock/amazon.nova-lite-v1:0"}}]}
    )
    with pytest.raises(Exception, match="no AWS region"):
        Router.from_config(config).group("b")


AWS = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1"}


@pytest.mark.parametrize(
    ("environ", "found"),
    [
        (AWS, True),
        ({**AWS, "AWS_REGION": "", "AWS_DEFAULT_REGION": "eu-west-1"}, True),
        ({k: v for k, v in AWS.items() if k != "AWS_REGION"}, False),
        ({k: v for k, v in AWS.items() if k != "AWS_SECRET_ACCESS_KEY"}, False),
        ({"AWS_PROFILE": "work", "AWS_REGION": "us-east-1"}, False),
    ],
    ids=["keys-and-region", "default-region", "no-region", "no-secret", "profile-only"],
)
def test_the_embedded_default_needs_a_key_its_secret_and_a_region(
    environ: dict[str, str], found: bool
) -> None:
    assert ("bedrock" in provider_keys_found(environ)) is found


def test_the_embedded_default_serves_bedrock_names_and_gemini_names_on_claude() -> None:
    router = Router.from_config(default_config(AWS), allow_ad_hoc_models=False)
    deployment = router.group("bedrock/us.anthropic.claude-sonnet-4-5-20250929-v1:0")[0]
    assert deployment.spec.provider == "bedrock"
    assert deployment.spec.upstream_model == "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    params = deployment.spec.params
    assert params.api_key is None and (params.aws_access_key_id, params.aws_region_name) == (
        "AKID",
        "us-east-1",
    )
    token = default_config({**AWS, "AWS_SESSION_TOKEN": "tok"}).model_list[0].params
    assert token.aws_session_token == "tok" and params.aws_session_token is None
    pro = router.group("gemini-3.1-pro-preview")[0].spec.params.model
    lite = router.group("gemini-3.5-flash-lite")[0].spec.params.model
    assert pro == "bedrock/global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert lite == "bedrock/global.anthropic.claude-haiku-4-5-20251001-v1:0"
    with pytest.raises(Exception):  # noqa: B017 - the demo model is not served
        router.group("demo")


def test_other_providers_keys_come_first_for_gemini_names() -> None:
    router = Router.from_config(default_config({**AWS, "ANTHROPIC_API_KEY": "k"}))
    assert router.group("gemini-2.5-pro")[0].spec.provider == "anthropic"
    assert router.group("bedrock/amazon.nova-pro-v1:0")[0].spec.provider == "bedrock"
