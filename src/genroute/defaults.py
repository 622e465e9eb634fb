"""The embedded default configuration used when `genroute serve` gets no `--config`.

It registers every provider whose key is in the environment (the key variables come from
`genroute.providers.catalog`); with none, the built-in `demo` model, so that a fresh
machine has something that answers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from genroute.config import Config, config_from_data
from genroute.providers.catalog import key_env_present

__all__ = ["default_config", "provider_keys_found"]

# The providers whose keys the embedded default looks for, in the order they are added.
DEFAULT_PROVIDERS = ("gemini", "anthropic", "openai")


def provider_keys_found(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each default provider whose key is set, with the variable that holds it."""
    env = os.environ if environ is None else environ
    found = {}
    for prefix in DEFAULT_PROVIDERS:
        name = key_env_present(prefix, env)
        if name:
            found[prefix] = name
    return found


def _entry(name: str, model: str, key_var: str, **info: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "model_name": name,
        "params": {"model": model, "api_key": f"os.environ/{key_var}"},
    }
    if info:
        entry["model_info"] = info
    return entry


def default_config(environ: Mapping[str, str] | None = None) -> Config:
    """Providers found in the environment, else the demo model."""
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
    if not entries:
        entries.append({"model_name": "demo", "params": {"model": "demo/echo"}})
    return config_from_data({"model_list": entries}, source="<embedded default>", environ=env)
