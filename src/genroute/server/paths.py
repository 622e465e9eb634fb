"""The model paths genroute serves, in every shape real clients send them.

    {prefix}/{v}/models/{model}:{method}          Gemini API (v1, v1beta, v1alpha)
    {prefix}/models/{model}:{method}              no version (LiteLLM's `gemini/` provider
                                                  with `api_base` set to genroute)
    {prefix}/{v}/tunedModels/{model}:{method}     google-genai for names `tunedModels/...`
    {prefix}/{v}/projects/{p}/locations/{l}/publishers/{pub}/models/{model}:{method}
    {prefix}/{v}/publishers/{pub}/models/{model}:{method}
                                                  Vertex AI (v1, v1beta1), and its
                                                  express mode; `vertexai=True` clients

`{prefix}` is any base path the client keeps in its base URL. Vertex paths also take
`:predict`, with which Vertex clients embed (see `genroute.server.vertex`). Without `:{method}` the
path names a model (GET) or, without a model, the models list. A model id may contain
`/` (`models/org/model-x`).

Vertex names a model by its publisher: google-genai sends a model id `a/b` as
`publishers/a/models/b`. `publishers/google/models/{m}` is the name `{m}`, and
`publishers/{pub}/models/{m}` is `{pub}/{m}`, or `{m}` where that is a served name and
`{pub}/{m}` is not (`publishers/anthropic/models/claude-x` reaches a `claude-x` group).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ACTIONS", "VERTEX_ACTIONS", "ModelPath", "parse_model_path"]

ACTIONS = frozenset(
    {
        "generateContent",
        "streamGenerateContent",
        "countTokens",
        "embedContent",
        "batchEmbedContents",
    }
)
VERTEX_ACTIONS = ACTIONS | {"predict"}  # Vertex embeds text-embedding models with :predict
_PATH = re.compile(
    r"^(?:.*?/)??"
    r"(?:(?P<version>v1|v1beta|v1alpha|v1beta1)/)?"
    r"(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/)?"
    r"(?:publishers/(?P<publisher>[^/]+)/)?"
    r"(?P<collection>models|tunedModels)(?:/(?P<rest>.*))?$",
    re.DOTALL,  # a name with a newline is still a model path (refused by name, not 404)
)


@dataclass(frozen=True, slots=True)
class ModelPath:
    """What a model path asks for."""

    model: str | None  # None: the models list
    action: str | None  # None: GET the model (or the list)
    publisher: str | None = None  # a Vertex path's publisher
    collection: str = "models"
    vertex: bool = False

    def name(self, served: Callable[[str], bool]) -> str | None:
        """The model name to route: publisher and tuned-model prefixes resolved, using
        `served(name)` to prefer a name the gateway serves."""
        model = self.model
        if model is None:
            return None
        if self.collection == "tunedModels":
            tuned = f"tunedModels/{model}"
            return tuned if served(tuned) or not served(model) else model
        publisher = self.publisher
        if publisher is None or publisher == "google":
            return model
        qualified = f"{publisher}/{model}"
        return model if served(model) and not served(qualified) else qualified


def parse_model_path(path: str) -> ModelPath | None:
    """The model and method a path names, or None when it is not a model path."""
    match = _PATH.match(path.lstrip("/"))
    if match is None:
        return None
    vertex = match["project"] is not None or match["publisher"] is not None
    if vertex and match["version"] not in ("v1", "v1beta1"):
        return None
    if match["collection"] == "tunedModels" and match["version"] is None:
        return None
    rest: str | None = match["rest"]
    model: str | None = rest or None
    action: str | None = None
    if rest:
        head, sep, tail = rest.rpartition(":")
        if sep and tail in (VERTEX_ACTIONS if vertex else ACTIONS) and head:
            model, action = head, tail
    return ModelPath(model, action, match["publisher"], match["collection"], vertex)
