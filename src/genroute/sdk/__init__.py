"""The Python SDK: google-genai call shapes in, `google.genai.types` responses out.

    client.py     `Client`: a long-lived client over a model list and its pipeline
    functions.py  the module-level one-off calls (`agenerate_content`, ...)
    convert.py    google-genai types to and from genroute's wire model
    loop.py       the event-loop thread the blocking calls run on

See docs/sdk.md.
"""

from genroute.sdk.client import COST_ATTRIBUTE, Client, response_cost
from genroute.sdk.functions import (
    agenerate_content,
    agenerate_content_stream,
    generate_content,
    generate_content_stream,
)

__all__ = [
    "COST_ATTRIBUTE",
    "Client",
    "agenerate_content",
    "agenerate_content_stream",
    "generate_content",
    "generate_content_stream",
    "response_cost",
]
