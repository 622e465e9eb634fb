"""genroute: call any LLM through Google's Gemini generateContent API.

`Client` and the module-level functions take the `google.genai.types` objects people
already use and return `google.genai.types` responses; `Router` routes wire-model calls
over model groups; every error is a `GenrouteError`. See docs/sdk.md.
"""

from genroute._version import __version__
from genroute.errors import GenrouteError
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
