"""Clear answers for the parts of the Gemini and Vertex AI APIs that genroute does not serve.

A client that calls one of them gets a 400 FAILED_PRECONDITION that says what to do
instead, rather than a bare 404: an embedding batch job (`:asyncBatchEmbedContent`),
Vertex AI's batch prediction jobs and cached contents (the `vertexai=True` clients'
`batches` and `caches`), file search stores, and files registered from Cloud Storage.
The edge asks `unsupported` only for a path it has no route for, so a served call pays
nothing for it.
"""

from __future__ import annotations

import re

from genroute.errors import GenrouteError

__all__ = ["UNSUPPORTED", "unsupported"]

_V = r"/(?:v1|v1beta|v1alpha)/"
# Vertex AI's API root: with a project and location, or express mode's (no project).
_VERTEX = r"/(?:v1beta1/|v1/projects/[^/]+/locations/[^/]+/)(?:projects/[^/]+/locations/[^/]+/)?"
UNSUPPORTED: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"/models/.+:asyncBatchEmbedContent$"),
        "Embedding batch jobs (asyncBatchEmbedContent) are not served by genroute: embed many "
        "texts at once with models/{model}:batchEmbedContents (client.models.embed_content "
        "with a list of contents), which answers directly; batch jobs are served for "
        "generateContent (models/{model}:batchGenerateContent).",
    ),
    (
        re.compile(_VERTEX + r"batchPredictionJobs(?:[/:]|$)"),
        "Vertex AI batch prediction jobs are not served by genroute: use the Gemini API's "
        "Batch API on this same gateway (a client without vertexai=True: "
        "client.batches.create(model=..., src=[...] or a file uploaded with "
        "client.files.upload)), which genroute runs for every model group.",
    ),
    (
        re.compile(_VERTEX + r"cachedContents(?:[/:]|$)"),
        "Vertex AI cached contents are not served by genroute: use the Gemini API's "
        "cachedContents on this same gateway (a client without vertexai=True: "
        "client.caches.create(...)); a cache made there works with every model group.",
    ),
    (
        re.compile(_V + r"fileSearchStores(?:[/:]|$)"),
        "File search stores are not served by genroute: upload the file with "
        "client.files.upload and put it in the request's contents, for any model group.",
    ),
    (
        re.compile(_V + r"files:register$"),
        "Registering Cloud Storage files is not served by genroute (it does not read gs:// "
        "URIs): upload the bytes with client.files.upload and name the file it returns.",
    ),
)


def unsupported(method: str, path: str) -> GenrouteError | None:
    """The answer for a path of the Gemini or Vertex AI API that genroute does not serve,
    or None when the path is nothing it knows of."""
    for pattern, message in UNSUPPORTED:
        if pattern.search(path):
            return GenrouteError(
                f"{method} {path}: {message}", code=400, status="FAILED_PRECONDITION"
            )
    return None
