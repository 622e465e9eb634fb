"""The embedded default configuration used when `genroute serve` gets no `--config`.

It registers every provider whose key is in the environment (the key variables come from
`genroute.providers.catalog`; for Vertex AI, $GOOGLE_APPLICATION_CREDENTIALS; for AWS
Bedrock, $AWS_ACCESS_KEY_ID with $AWS_SECRET_ACCESS_KEY and $AWS_REGION or
$AWS_DEFAULT_REGION, serving `bedrock/<model id>`); with none, the built-in `demo` model,
so that a fresh machine has something that answers.

Clients send Gemini model names of their own: gemini-cli in its default `auto` mode calls
a classifier (`gemini-3.5-flash-lite`), then the model it picks (`gemini-3.1-pro-preview`
or `gemini-3.8-flash`), and other names with `-m`. The default serves every `gemini-*` name: with a Gemini key on
Gemini itself; without one on Vertex AI when its credentials are set, else on the first
other provider found (`*pro*` names on its larger model, the rest on its smaller one), or
on the demo model.

With $GENROUTE_MASTER_KEY set, that is its master key: callers must send it or a virtual
key, the spend ledger is a SQLite file `genroute.db` in the working directory, and the
admin UI (/ui) signs in with it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from genroute.config import Config, config_from_data
from genroute.providers.catalog import key_env_present

__all__ = [
    "DEFAULT_PROVIDERS",
    "GEMINI_CLI_MODELS",
    "MASTER_KEY_ENV",
    "STAND_INS",
    "default_config",
    "provider_keys_found",
]

# The providers whose keys the embedded default looks for, in the order they are added.
DEFAULT_PROVIDERS = ("gemini", "anthropic", "openai", "vertex_ai", "bedrock")
# The names gemini-cli (0.61) calls without `-m` (its `auto` mode's classifier, and the pro
# or flash model the classifier picks), and its documented defaults with `-m`;
# `check-config` warns about unserved ones.
GEMINI_CLI_MODELS = (
    "gemini-3.5-flash-lite",
    "gemini-3.1-pro-preview",
    "gemini-3.8-flash",
    "gemini-3-flash-preview",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
)
# Without a Gemini key, `gemini-*` names go to another provider: (pro model, other model).
STAND_INS = {
    "anthropic": ("anthropic/claude-sonnet-4-5", "anthropic/claude-haiku-4-5"),
    "openai": ("openai/gpt-4.1", "openai/gpt-4.1-mini"),
    # Global cross-region inference profiles: callable from any commercial region.
    "bedrock": (
        "bedrock/global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "bedrock/global.anthropic.claude-haiku-4-5-20251001-v1:0",
    ),
}
# The master key of the embedded default, when set: virtual keys, the spend ledger in a
# SQLite file in the working directory, the admin UI.
MASTER_KEY_ENV = "GENROUTE_MASTER_KEY"
# Bedrock is picked up when all of these are set (the region: either of the last two).
AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", ("AWS_REGION", "AWS_DEFAULT_REGION"))


def provider_keys_found(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each default provider whose key is set, with the variable that holds it."""
    env = os.environ if environ is None else environ
    found = {}
    for prefix in DEFAULT_PROVIDERS:
        name = key_env_present(prefix, env)
        if name and (prefix != "bedrock" or _aws_ready(env)):
            found[prefix] = name
    return found


def _aws_ready(env: Mapping[str, str]) -> bool:
    """Whether the AWS environment gives a key, its secret and a region (AWS_ENV)."""
    names = [n if isinstance(n, tuple) else (n,) for n in AWS_ENV]
    return all(any(env.get(n, "").strip() for n in group) for group in names)


def _aws_params(env: Mapping[str, str]) -> dict[str, str]:
    """A Bedrock deployment's credentials and region, read from the AWS environment."""
    region = next(n for n in AWS_ENV[2] if env.get(n, "").strip())
    params = {"aws_access_key_id": "os.environ/AWS_ACCESS_KEY_ID",
              "aws_secret_access_key": "os.environ/AWS_SECRET_ACCESS_KEY",
              "aws_region_name": f"os.environ/{region}"}  # fmt: skip
    if env.get("AWS_SESSION_TOKEN", "").strip():
        params["aws_session_token"] = "os.environ/AWS_SESSION_TOKEN"
    return params


def _entry(name: str, model: str, key_var: str, **info: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "model_name": name,
        "params": {"model": model, "api_key": f"os.environ/{key_var}"},
    }
    if info:
        entry["model_info"] = info
    return entry


def default_config(environ: Mapping[str, str] | None = None) -> Config:
    """Providers found in the environment, else the demo model; the master key from
    $GENROUTE_MASTER_KEY when it is set."""
    env = os.environ if environ is None else environ
    keys = provider_keys_found(env)
    entries: list[dict[str, Any]] = []
    if "gemini" in keys:
        var = keys["gemini"]
        entries.append(_entry("gemini-*", "gemini/gemini-*", var))
        entries.append(_entry("text-embedding-*", "gemini/text-embedding-*", var, mode="embedding"))
    if "anthropic" in keys:
        entries.append(_entry("claude-*", "anthropic/claude-*", keys["anthropic"]))
    if "openai" in keys:
        var = keys["openai"]
        for name in ("openai/*", "gpt-*", "chatgpt-*", "o1*", "o3*", "o4*"):
            model = name if name.startswith("openai/") else f"openai/{name}"
            entries.append(_entry(name, model, var))
        # Ahead of Gemini's `text-embedding-*`, which would otherwise take these names.
        for name in ("text-embedding-3-*", "text-embedding-ada-*"):
            entries.insert(0, _entry(name, f"openai/{name}", var, mode="embedding"))
    if "vertex_ai" in keys:
        entries += _vertex_entries(env, keys)
    if "bedrock" in keys:
        entries.append(_entry("bedrock/*", "bedrock/*", keys["bedrock"]))
    if "gemini" not in keys and "vertex_ai" not in keys:
        entries += _gemini_names_elsewhere(keys)
    for entry in entries:  # Bedrock: AWS credentials and region instead of a key
        if entry["params"]["model"].startswith("bedrock/"):
            entry["params"] = {"model": entry["params"]["model"], **_aws_params(env)}
    data: dict[str, Any] = {"model_list": entries}
    if env.get(MASTER_KEY_ENV, "").strip():
        data["general_settings"] = {"master_key": f"os.environ/{MASTER_KEY_ENV}"}
    return config_from_data(data, source="<embedded default>", environ=env)


def _vertex_entries(env: Mapping[str, str], keys: Mapping[str, str]) -> list[dict[str, Any]]:
    """Vertex AI with the service account in $GOOGLE_APPLICATION_CREDENTIALS (and
    $VERTEXAI_PROJECT / $VERTEXAI_LOCATION when set): `vertex_ai/*`, and the Gemini and
    Claude names that no Gemini or Anthropic key serves."""
    params = {"vertex_credentials": f"os.environ/{keys['vertex_ai']}"}
    for param, var in (
        ("vertex_project", "VERTEXAI_PROJECT"),
        ("vertex_location", "VERTEXAI_LOCATION"),
    ):
        if env.get(var, "").strip():
            params[param] = f"os.environ/{var}"

    def entry(name: str, model: str, **info: Any) -> dict[str, Any]:
        found: dict[str, Any] = {"model_name": name, "params": {"model": model, **params}}
        return {**found, "model_info": info} if info else found

    entries = [entry("vertex_ai/*", "vertex_ai/*")]
    if "gemini" not in keys:
        entries.append(entry("gemini-*", "vertex_ai/gemini-*"))
        entries.append(entry("text-embedding-*", "vertex_ai/text-embedding-*", mode="embedding"))
    if "anthropic" not in keys:
        entries.append(entry("claude-*", "vertex_ai/claude-*"))
    return entries


def _gemini_names_elsewhere(keys: Mapping[str, str]) -> list[dict[str, Any]]:
    """Entries serving the `gemini-*` names clients send, without a Gemini key."""
    for prefix, (pro, other) in STAND_INS.items():
        if prefix in keys:
            return [
                _entry("gemini-*pro*", pro, keys[prefix]),
                _entry("gemini-*", other, keys[prefix]),
            ]
    demo = {"model": "demo/echo"}
    return [
        {"model_name": "demo", "params": demo},
        {"model_name": "gemini-*", "params": demo},
    ]
