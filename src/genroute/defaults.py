"""The embedded default configuration used when `genroute serve` gets no `--config`.

It registers every provider whose key is in the environment; with none, the built-in
`demo` model, so that a fresh machine has something that answers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from genroute.config import Config, config_from_data
from genroute.providers.gemini.transport import KEY_ENV_VARS


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
    if not entries:
        entries.append({"model_name": "demo", "params": {"model": "demo/echo"}})
    return config_from_data({"model_list": entries}, source="<embedded default>", environ=env)
