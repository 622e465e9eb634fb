"""genroute: call any LLM through Google's Gemini generateContent API.

The SDK functions take the `google.genai.types` objects people already use and return
`google.genai.types.GenerateContentResponse`; `Router` serves several model groups.
"""

from genroute._version import __version__
from genroute.errors import GenrouteError
from genroute.router import Router
from genroute.sdk import (
    agenerate_content,
    agenerate_content_stream,
    generate_content,
    generate_content_stream,
    response_cost,
)

__all__ = [
    "GenrouteError",
    "Router",
    "__version__",
    "agenerate_content",
    "agenerate_content_stream",
    "generate_content",
    "generate_content_stream",
    "response_cost",
]
