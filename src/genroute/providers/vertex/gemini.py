"""Gemini models on Vertex AI: pure translation between the Gemini API and Vertex. No I/O.

Vertex speaks the Gemini wire format, so a request passes as it came (unknown fields,
thought signatures, `labels` and the other fields only Vertex takes included), less the
client's `model` and what only the Gemini API (generativelanguage.googleapis.com) takes.
Those follow the translation rule (docs/provider-vertex.md): left out and noted where the
answer means the same without them, else refused with 400 naming the field (left out
with `drop_params`):

    store, part partMetadata, functionResponse.willContinue           left out
    generationConfig.enableEnhancedCivicAnswers                       refused
    parts toolCall / toolResponse (server-side tool invocations)      refused
    toolConfig.includeServerSideToolInvocations, tools[].fileSearch   refused
    fileData naming a Gemini API file (generativelanguage…/files/…)   refused
    cachedContent `cachedContents/x`                                  → the deployment's
                                                                        projects/p/locations/l/…

Replies are Vertex's JSON as it came (`createTime`, `usageMetadata.trafficType`, safety
scores pass through), except a candidate's `citationMetadata.citations`, which the Gemini
API calls `citationSources`. countTokens takes `contents`, `systemInstruction`, `tools` and
`generationConfig` at the top (no `generateContentRequest`). Embeddings, as google-genai
sends them to Vertex: models named `*gemini*` / `*maas*` take `:embedContent` (one content)
and `:batchEmbedContents`, with `embedContentConfig`; the others (text-embedding-*,
text-multilingual-embedding-*) take `:predict` with text `instances` and `parameters`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from genroute.errors import InvalidRequest
from genroute.providers.drops import Drops
from genroute.providers.shapes import Reader, malformed
from genroute.providers.vertex.auth import PROVIDER
from genroute.providers.vertex.errors import map_error
from genroute.wire import (
    BatchEmbedContentsResponse,
    CitationSource,
    ContentEmbedding,
    CountTokensRequest,
    EmbedContentRequest,
    EmbedContentResponse,
    GenerateContentRequest,
    GenerateContentResponse,
    WireModel,
    format_validation_error,
)

__all__ = [
    "COUNT_FIELDS",
    "batch_embed_body",
    "count_to_wire",
    "decode_event",
    "embed_content_body",
    "embed_reply",
    "embeds_by_content",
    "from_wire",
    "needs_location",
    "one_embedding",
    "parse_reply",
    "predict_body",
    "predict_reply",
    "to_wire",
]

T = TypeVar("T", bound=WireModel)

#: What Vertex's countTokens takes of a generateContent request.
COUNT_FIELDS = ("contents", "systemInstruction", "tools", "generationConfig")
_DATA = frozenset(
    {"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode"}
    | {"codeExecutionResult", "toolCall", "toolResponse"}
)
_GEMINI_FILES = ("https://generativelanguage.googleapis.com/", "files/")
_CACHES = "cachedContents/"


# -- generateContent ------------------------------------------------------------------------


def needs_location(request: GenerateContentRequest) -> bool:
    """Whether the request names a cache as the Gemini API does (`cachedContents/x`), which
    Vertex knows as `projects/p/locations/l/cachedContents/x`."""
    return (request.cached_content or "").startswith(_CACHES)


def _dump(model: WireModel, exclude: set[str] | None = None) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=exclude)


def _key(obj: dict[str, Any], name: str) -> str | None:
    """The key of field `name` (lowerCamel) in obj, as the client spelt it (or snake_case)."""
    return next((key for key in obj if to_camel(key) == name), None)


def _pop(obj: dict[str, Any], name: str) -> bool:
    key = _key(obj, name)
    if key is None:
        return False
    del obj[key]
    return True


def _refuse(obj: dict[str, Any], name: str, where: str, why: str, drops: Drops) -> None:
    if _key(obj, name) is not None:
        drops.refuse(f"{where}{name}: {why}")
        _pop(obj, name)


def _is_gemini_file(file_data: Any) -> bool:
    if not isinstance(file_data, dict):
        return False
    uri = file_data.get(_key(file_data, "fileUri") or "fileUri")
    return isinstance(uri, str) and uri.startswith(_GEMINI_FILES)


def _clean_part(part: dict[str, Any], where: str, drops: Drops) -> bool:
    """Vertex's form of one part; False when nothing of it is left to send."""
    if _pop(part, "partMetadata"):
        drops.add(f"{where}.partMetadata")
    why = "Vertex AI takes no server-side tool invocations (a Gemini API feature)"
    _refuse(part, "toolCall", f"{where}.", why, drops)
    _refuse(part, "toolResponse", f"{where}.", why, drops)
    if _is_gemini_file(part.get(_key(part, "fileData") or "fileData")):
        why = "a Gemini API file cannot be read by Vertex AI; use a gs:// or https URL"
        _refuse(part, "fileData", f"{where}.", why, drops)
    response = part.get(_key(part, "functionResponse") or "functionResponse")
    if isinstance(response, dict) and _pop(response, "willContinue"):
        drops.add(f"{where}.functionResponse.willContinue")
    return any(to_camel(key) in _DATA for key in part)


def _clean_content(content: Any, where: str, drops: Drops) -> bool:
    """Vertex's form of one Content; False when none of its parts is left."""
    if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
        return True  # not ours to judge: Vertex answers it
    parts = content["parts"]
    kept = [p for j, p in enumerate(parts) if _clean_part(p, f"{where}.parts[{j}]", drops)]
    content["parts"] = kept
    return bool(kept) or not parts


def _refuse_inside(
    body: dict[str, Any], section: str, name: str, where: str, why: str, drops: Drops
) -> None:
    """Refuse `section.name`; a section left empty by leaving it out goes too (Vertex
    refuses empty ones)."""
    found = body.get(section)
    if isinstance(found, dict) and found:
        _refuse(found, name, f"{where}{section}.", why, drops)
        if not found:
            del body[section]


def _clean(body: dict[str, Any], where: str, drops: Drops, location: str | None) -> None:
    """Remove or refuse what only the Gemini API takes (module docstring)."""
    if _pop(body, "store"):
        drops.add(f"{where}store")
    if location and (body.get("cachedContent") or "").startswith(_CACHES):
        body["cachedContent"] = f"{location}/{body['cachedContent']}"
    why = "only the Gemini API takes it, not Vertex AI"
    _refuse_inside(body, "generationConfig", "enableEnhancedCivicAnswers", where, why, drops)
    why = "Vertex AI takes no server-side tool invocations (a Gemini API feature)"
    _refuse_inside(body, "toolConfig", "includeServerSideToolInvocations", where, why, drops)
    if isinstance(tools := body.get("tools"), list):
        why = "File Search stores are a Gemini API feature; Vertex AI cannot use them"
        kept = []
        for i, tool in enumerate(tools):
            if isinstance(tool, dict) and tool:
                _refuse(tool, "fileSearch", f"{where}tools[{i}].", why, drops)
                if not tool:  # it was only a file search
                    continue
            kept.append(tool)
        if kept:
            body["tools"] = kept
        else:
            del body["tools"]
    if isinstance(body.get("contents"), list):
        body["contents"] = [
            c
            for i, c in enumerate(body["contents"])
            if _clean_content(c, f"{where}contents[{i}]", drops)
        ]
        if not body["contents"]:
            raise InvalidRequest(f"{where}contents: nothing is left to send to Vertex AI")
    if "systemInstruction" in body and not _clean_content(
        body["systemInstruction"], f"{where}systemInstruction", drops
    ):
        del body["systemInstruction"]


def to_wire(request: GenerateContentRequest, drops: Drops, location: str | None = None) -> bytes:
    """The Vertex generateContent body. `location` is `projects/p/locations/l`, needed only
    when `needs_location(request)`."""
    body = _dump(request, exclude={"model"})
    _clean(body, "", drops, location)
    return orjson.dumps(body)


def count_to_wire(request: CountTokensRequest, drops: Drops) -> bytes:
    """The Vertex countTokens body: the fields it takes, at the top."""
    inner = request.generate_content_request
    if inner is None:
        body = _dump(request, exclude={"generate_content_request"})
        where = ""
    else:
        body = _dump(inner, exclude={"model"})
        where = "generateContentRequest."
    _clean(body, where, drops, None)
    if _key(body, "cachedContent") is not None:
        drops.refuse(f"{where}cachedContent: Vertex AI's countTokens cannot count a cached content")
    kept = {name: body[name] for name in COUNT_FIELDS if name in body}
    drops.update(f"{where}{key}" for key in body if key not in kept and key != "cachedContent")
    if not kept.get("contents"):
        raise InvalidRequest(f"{where}contents: required, and must hold at least one Content")
    return orjson.dumps(kept)


# -- replies --------------------------------------------------------------------------------


def parse_reply(data: bytes, reply: type[T], what: str) -> T:
    """A Vertex reply as its wire model, or UpstreamMalformed."""
    try:
        return reply.model_validate_json(data)
    except ValidationError as exc:
        raise malformed(PROVIDER, what, format_validation_error(exc)) from None


def from_wire(data: bytes, what: str = "response") -> GenerateContentResponse:
    """A generateContent reply (or stream chunk) as the Gemini API says it: Vertex names a
    candidate's citations `citationMetadata.citations`, the Gemini API `citationSources`
    (Gemini API clients read only that); everything else is kept as it came."""
    response = parse_reply(data, GenerateContentResponse, what)
    for candidate in response.candidates or ():
        found = candidate.citation_metadata
        extra = found.__pydantic_extra__ if found is not None else None
        if found is None or extra is None or found.citation_sources is not None:
            continue
        citations = extra.get("citations")
        if isinstance(citations, list):
            try:
                sources = [CitationSource.model_validate(c) for c in citations]
            except ValidationError as exc:
                raise malformed(PROVIDER, what, format_validation_error(exc)) from None
            del extra["citations"]
            found.citation_sources = sources
    return response


def decode_event(payload: bytes) -> GenerateContentResponse:
    """One SSE `data` payload: a chunk, or an error event that ends the stream."""
    if payload.lstrip().startswith(b'{"error"'):
        raise map_error(500, payload, {})
    return from_wire(payload, "stream event")


# -- embeddings -----------------------------------------------------------------------------


def embeds_by_content(model: str) -> bool:
    """Whether a Vertex embedding model takes `:embedContent` (Gemini and MaaS models, as
    google-genai decides) rather than `:predict`."""
    name = model.rsplit("/", 1)[-1].lower()
    return "gemini" in name or "maas" in name


def _config(request: EmbedContentRequest) -> dict[str, Any]:
    settings = {
        "taskType": request.task_type,
        "title": request.title,
        "outputDimensionality": request.output_dimensionality,
    }
    return {k: v for k, v in settings.items() if v is not None}


def embed_content_body(request: EmbedContentRequest) -> dict[str, Any]:
    """One `:embedContent` body: the content, and `embedContentConfig`."""
    body: dict[str, Any] = {"content": _dump(request.content)}
    if config := _config(request):
        body["embedContentConfig"] = config
    return body


def batch_embed_body(requests: Iterable[EmbedContentRequest]) -> dict[str, Any]:
    """A Vertex `:batchEmbedContents` body: one entry per request, each with its config."""
    return {"requests": [embed_content_body(r) for r in requests]}


def _text(request: EmbedContentRequest, where: str, drops: Drops) -> str:
    texts: list[str] = []
    for j, part in enumerate(request.content.parts or []):
        if part.text is not None:
            texts.append(part.text)
        else:
            drops.refuse(f"{where}.content.parts[{j}]: this Vertex AI model embeds text only")
    return "\n".join(texts)


def predict_body(
    requests: Sequence[EmbedContentRequest], first: int, drops: Drops
) -> dict[str, Any]:
    """A `:predict` body for text embedding models: one instance per request (`first` is
    the index of the first, for error messages); they share `outputDimensionality`."""
    instances = []
    for i, request in enumerate(requests, start=first):
        instance: dict[str, Any] = {"content": _text(request, f"requests[{i}]", drops)}
        if request.task_type is not None:
            instance["task_type"] = request.task_type
        if request.title is not None:
            instance["title"] = request.title
        instances.append(instance)
    body: dict[str, Any] = {"instances": instances}
    dimensions = requests[0].output_dimensionality if requests else None
    if dimensions is not None:
        body["parameters"] = {"outputDimensionality": dimensions}
    return body


def _values(r: Reader, embedding: Any, path: str) -> ContentEmbedding:
    values = r.array(r.obj(embedding, path, required=True).get("values"), f"{path}.values")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise r.fail(f"{path}.values holds something other than numbers")
    return ContentEmbedding(values=[float(v) for v in values])


def _prompt_tokens(r: Reader, reply: dict[str, Any]) -> int | None:
    usage = r.obj(reply.get("usageMetadata"), "usageMetadata")
    return r.integer(usage.get("promptTokenCount"), "usageMetadata.promptTokenCount")


def embed_reply(data: bytes, count: int | None) -> BatchEmbedContentsResponse:
    """The reply of `:embedContent` (`count` None: one `embedding`) or of
    `:batchEmbedContents` (`count` embeddings), with the tokens Vertex says it embedded."""
    r = Reader(PROVIDER, "embedding" if count is None else "batch of embeddings")
    reply = r.load(data)
    if count is None:
        embeddings = [_values(r, reply.get("embedding"), "embedding")]
    else:
        found = r.array(reply.get("embeddings"), "embeddings", required=True)
        if len(found) != count:
            raise r.fail(f"{len(found)} embeddings for {count} requests")
        embeddings = [_values(r, e, f"embeddings[{i}]") for i, e in enumerate(found)]
    response = BatchEmbedContentsResponse(embeddings=embeddings)
    response.set_private("_input_tokens", _prompt_tokens(r, reply))
    return response


def predict_reply(data: bytes, count: int) -> BatchEmbedContentsResponse:
    """The reply of `:predict`: `predictions[].embeddings.values`, and the tokens of each
    (`statistics.token_count`) summed when every prediction says."""
    r = Reader(PROVIDER, "prediction")
    predictions = r.array(r.load(data).get("predictions"), "predictions", required=True)
    if len(predictions) != count:
        raise r.fail(f"{len(predictions)} predictions for {count} instances")
    embeddings: list[ContentEmbedding] = []
    tokens: int | None = 0
    for i, prediction in enumerate(predictions):
        path = f"predictions[{i}].embeddings"
        embedding = r.obj(r.obj(prediction, f"predictions[{i}]").get("embeddings"), path)
        embeddings.append(_values(r, embedding, path))
        stats = r.obj(embedding.get("statistics"), f"{path}.statistics")
        counted = r.integer(stats.get("token_count"), f"{path}.statistics.token_count")
        tokens = tokens + counted if tokens is not None and counted is not None else None
    response = BatchEmbedContentsResponse(embeddings=embeddings)
    response.set_private("_input_tokens", tokens)
    return response


def one_embedding(batch: BatchEmbedContentsResponse) -> EmbedContentResponse:
    """The embedContent answer made of a batch of one."""
    response = EmbedContentResponse(embedding=batch.embeddings[0])
    response.set_private("_input_tokens", batch._input_tokens)
    return response
