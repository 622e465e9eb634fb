"""The embedded default configuration used when `genroute serve` gets no `--config`.

It registers every provider whose key is in the environment; with none, the built-in
`demo` model, so that a fresh machine has something that answers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from genroute.config import Config, config_from_data
from genroute.providers.anthropic.transport import KEY_ENV_VARS as ANTHROPIC_KEY_ENV_VARS
from genroute.providers.gemini.transport import KEY_ENV_VARS
from genroute.providers.openai.prefixes import SERVERS as OPENAI_SERVERS


def default_config(environ: Mapping[str, str] | None = None) -> Config:
    """Providers found in the environment, else the demo model."""
    env = os.environ if environ is None else environ
    entries: list[dict[str, object]] = []
    gemini_key = next((name for name in KEY_ENV_VARS if env.get(name)), None)
    if gemini_key:
        entries.append(
            {
                "model_name": "gemini-*",
                "params": {"model": "gemini/gemini-*", "api_key": f"os.environ/{gemini_key}"},
            }
        )
        entries.append(
            {
                "model_name": "text-embedding-*",
                "params": {
                    "model": "gemini/text-embedding-*",
                    "api_key": f"os.environ/{gemini_key}",
                },
                "model_info": {"mode": "embedding"},
            }
        )
    anthropic_key = next((name for name in ANTHROPIC_KEY_ENV_VARS if env.get(name)), None)
    if anthropic_key:
        entries.append(
            {
                "model_name": "claude-*",
                "params": {"model": "anthropic/claude-*", "api_key": f"os.environ/{anthropic_key}"},
            }
        )
    openai_key = next((name for name in OPENAI_SERVERS["openai"].key_env if env.get(name)), None)
    if openai_key:
        key = f"os.environ/{openai_key}"
        for name in ("openai/*", "gpt-*", "chatgpt-*", "o1*", "o3*", "o4*"):
            model = name if name.startswith("openai/") else f"openai/{name}"
            entries.append({"model_name": name, "params": {"model": model, "api_key": key}})
        # Ahead of Gemini's `text-embedding-*`, which would otherwise take these names.
        for name in ("text-embedding-3-*", "text-embedding-ada-*"):
            entries.insert(
                0,
                {
                    "model_name": name,
                    "params": {"model": f"openai/{name}", "api_key": key},
                    "model_info": {"mode": "embedding"},
                },
            )
    if not entries:
        entries.append({"model_name": "demo", "params": {"model": "demo/echo"}})
    return config_from_data({"model_list": entries}, source="<embedded default>", environ=env)
