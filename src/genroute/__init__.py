"""genroute: call any LLM through Google's Gemini generateContent API.

`Client` and the module-level functions take the `google.genai.types` objects people
already use and return `google.genai.types` responses; `Router` routes wire-model calls
over model groups; every error is a `GenrouteError`. See docs/sdk.md.

`Router` and the SDK's names are imported on first use: every `import genroute.<module>`
runs this file first, and the proxy server (which uses neither the SDK nor google-genai)
starts ~0.4 s sooner, in every worker, for not loading them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from genroute._version import __version__
from genroute.errors import GenrouteError

if TYPE_CHECKING:
    from genroute.routing import Router
    from genroute.sdk import (
        Client,
        agenerate_content,
        agenerate_content_stream,
        generate_content,
        generate_content_stream,
        response_cost,
    )

__all__ = [
    "Client",
    "GenrouteError",
    "Router",
    "__version__",
    "agenerate_content",
    "agenerate_content_stream",
    "generate_content",
    "generate_content_stream",
    "response_cost",
]

# Where each name imported on first use lives.
_LAZY = {
    "Router": "genroute.routing",
    "Client": "genroute.sdk",
    "agenerate_content": "genroute.sdk",
    "agenerate_content_stream": "genroute.sdk",
    "generate_content": "genroute.sdk",
    "generate_content_stream": "genroute.sdk",
    "response_cost": "genroute.sdk",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'genroute' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
