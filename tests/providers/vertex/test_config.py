"""Vertex AI in configs: LiteLLM's parameter names, the configs of LiteLLM's Vertex page
as docs/provider-vertex.md quotes them, and the embedded default picking Vertex up from
the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from genroute.config import config_from_data
from genroute.defaults import default_config
from genroute.errors import ConfigError
from genroute.providers.vertex import VertexClaudeProvider, VertexGeminiProvider
from genroute.routing import Router

DOC = Path(__file__).resolve().parents[3] / "docs" / "provider-vertex.md"


def litellm_blocks() -> list[str]:
    """The YAML blocks of the doc's "A config from LiteLLM's docs" section."""
    text = DOC.read_text()
    section = text.split("## A config from LiteLLM's docs", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, re.S)


def test_the_doc_quotes_three_litellm_configs() -> None:
    assert len(litellm_blocks()) == 3


@pytest.mark.parametrize("block", litellm_blocks(), ids=["gemini", "claude", "two-projects"])
async def test_the_configs_from_litellms_docs_load_unchanged(block: str) -> None:
    config = config_from_data(yaml.safe_load(block), source="docs/provider-vertex.md")
    async with Router.from_config(config) as router:
        for name in router.model_names:
            for deployment in router.group(name):  # built, credentials not read yet
                provider = deployment.provider
                assert isinstance(provider, VertexGeminiProvider | VertexClaudeProvider)
                params = deployment.entry.params
                assert provider.place.project == params.vertex_project
                assert provider.place.location == params.vertex_location
                assert params.vertex_credentials in (None, "/path/to/service_account.json")
    assert "vertex_credentials" not in repr(config)


def test_a_mapping_or_a_json_string_is_credentials_too() -> None:
    entry = {"model_name": "g", "params": {"model": "vertex_ai/gemini-2.5-flash",
             "vertex_credentials": {"type": "service_account", "private_key": "k"}}}  # fmt: skip
    assert config_from_data({"model_list": [entry]}).model_list[0].params.vertex_credentials
    with pytest.raises(ConfigError, match="vertex_projekt"):
        config_from_data({"model_list": [{**entry, "params": {**entry["params"], "vertex_projekt": "p"}}]})  # fmt: skip


CREDENTIALS = {"GOOGLE_APPLICATION_CREDENTIALS": "/secrets/sa.json"}


def served(environ: dict[str, str]) -> dict[str, dict[str, object]]:
    config = default_config(environ)
    return {e.model_name: e.params.model_dump(exclude_none=True) for e in config.model_list}


def test_the_embedded_default_serves_vertex_with_google_application_credentials() -> None:
    env = {**CREDENTIALS, "VERTEXAI_PROJECT": "acme-prod", "VERTEXAI_LOCATION": "europe-west4"}
    names = served(env)
    assert list(names) == ["vertex_ai/*", "gemini-*", "text-embedding-*", "claude-*"]
    assert names["gemini-*"] == {
        "model": "vertex_ai/gemini-*",
        "vertex_project": "acme-prod",
        "vertex_location": "europe-west4",
        "vertex_credentials": "/secrets/sa.json",
    }
    assert names["claude-*"]["model"] == "vertex_ai/claude-*"
    alone = served(CREDENTIALS)["gemini-*"]  # project and location: the account's, us-central1
    assert "vertex_project" not in alone and "vertex_location" not in alone


def test_keys_of_the_models_own_providers_keep_their_names() -> None:
    names = served({**CREDENTIALS, "GEMINI_API_KEY": "g", "ANTHROPIC_API_KEY": "a"})
    assert names["gemini-*"]["model"] == "gemini/gemini-*"
    assert names["claude-*"]["model"] == "anthropic/claude-*"
    assert names["vertex_ai/*"]["model"] == "vertex_ai/*"
    assert "demo" not in names


def test_without_credentials_the_default_has_no_vertex() -> None:
    names = served({"VERTEXAI_PROJECT": "acme-prod"})
    assert not any(str(p["model"]).startswith("vertex_ai/") for p in names.values())
    assert names["demo"]["model"] == "demo/echo"
