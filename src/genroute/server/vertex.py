"""Vertex AI's embedding bodies, as the edge reads and writes them.

`vertexai=True` clients embed in two shapes the Gemini API does not use:

- `:predict` (text-embedding and multimodal models):
      {"instances": [{"content": "text", "task_type"?, "title"?, "mimeType"?}],
       "parameters": {"outputDimensionality"?, "autoTruncate"?}}
  answered with
      {"predictions": [{"embeddings": {"values": [...],
                                       "statistics": {"token_count": n, "truncated": false}}}],
       "metadata": {"billableCharacterCount": n}}
- `:embedContent` with the options in `embedContentConfig` ({taskType, title,
  outputDimensionality, autoTruncate}) rather than beside `content`.

Both become the wire model's batch/single embed requests, so every provider serves them.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from genroute.cost import text_tokens
from genroute.errors import InvalidRequest
from genroute.wire import (
    BatchEmbedContentsRequest,
    BatchEmbedContentsResponse,
    format_validation_error,
)

__all__ = ["EMBED_CONFIG_FIELDS", "lift_embed_config", "predict_reply", "predict_request"]

_REQUESTS = re.compile(r"(^|; )requests\[")

EMBED_CONFIG_FIELDS = {
    "taskType": "taskType",
    "task_type": "taskType",
    "title": "title",
    "outputDimensionality": "outputDimensionality",
    "output_dimensionality": "outputDimensionality",
}


def lift_embed_config(body: dict[str, Any]) -> dict[str, Any]:
    """A Vertex embedContent body with `embedContentConfig`, as the Gemini API's shape."""
    config = body.get("embedContentConfig", body.get("embed_content_config"))
    if config is None:
        return body
    if not isinstance(config, dict):
        raise InvalidRequest("embedContentConfig: must be an object")
    out = {k: v for k, v in body.items() if k not in ("embedContentConfig", "embed_content_config")}
    for key, value in config.items():
        if key in EMBED_CONFIG_FIELDS:
            out.setdefault(EMBED_CONFIG_FIELDS[key], value)
        # autoTruncate has no Gemini API equivalent: inputs are truncated there anyway.
    return out


def _content(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"parts": [{"text": value}]}
    if isinstance(value, dict):
        return value if "parts" in value else {"parts": [value]}
    raise InvalidRequest(f"{where}: must be a string or a Content")


def predict_request(body: Any, model: str) -> BatchEmbedContentsRequest:
    """A `:predict` body as one embed request per instance."""
    if not isinstance(body, dict):
        raise InvalidRequest("Invalid JSON payload received: the body must be a JSON object")
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise InvalidRequest("instances: at least one instance is needed")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidRequest("parameters: must be an object")
    dimensions = parameters.get("outputDimensionality")
    requests = []
    for i, instance in enumerate(instances):
        if not isinstance(instance, dict) or "content" not in instance:
            raise InvalidRequest(f"instances[{i}].content: required")
        request: dict[str, Any] = {
            "model": f"models/{model}",
            "content": _content(instance["content"], f"instances[{i}].content"),
        }
        task = instance.get("task_type", instance.get("taskType"))
        if task is not None:
            request["taskType"] = task
        if instance.get("title") is not None:
            request["title"] = instance["title"]
        if dimensions is not None:
            request["outputDimensionality"] = dimensions
        requests.append(request)
    try:
        return BatchEmbedContentsRequest.model_validate({"requests": requests})
    except ValidationError as exc:
        # Named by the instance the client sent: requests[i] is instances[i].
        problems = _REQUESTS.sub(r"\1instances[", format_validation_error(exc))
        raise InvalidRequest(f"Invalid request: {problems}") from None


def predict_reply(
    request: BatchEmbedContentsRequest, response: BatchEmbedContentsResponse
) -> dict[str, Any]:
    """The `:predict` answer: one prediction per instance, with its (estimated) token count,
    and the characters embedded."""
    predictions = []
    characters = 0
    for inner, embedding in zip(request.requests, response.embeddings, strict=False):
        characters += sum(len(p.text or "") for p in inner.content.parts or ())
        statistics = {"token_count": text_tokens([inner.content]), "truncated": False}
        predictions.append({"embeddings": {"values": embedding.values, "statistics": statistics}})
    return {"predictions": predictions, "metadata": {"billableCharacterCount": characters}}
