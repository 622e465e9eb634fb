"""Golden fixtures of the Vertex translation (`tests/fixtures/vertex/*`; expected halves
rewritten with GENROUTE_REGEN_GOLDEN=1, then review the diff), and what google-genai and
the anthropic SDK themselves send to Vertex, to check the fixtures against."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from pydantic.alias_generators import to_camel

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "vertex"
REGEN = os.environ.get("GENROUTE_REGEN_GOLDEN") == "1"
PROJECT, LOCATION = "genroute-test", "us-central1"


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def names(prefix: str, suffix: str = ".in.json") -> list[str]:
    """Case names of the fixtures `<prefix>_<name><suffix>`."""
    return sorted(p.name[: -len(suffix)] for p in FIXTURES.glob(f"{prefix}_*{suffix}"))


def expect(name: str, actual: Any) -> Any:
    """The expected output `<name>.out.json` (written from `actual` in regen mode)."""
    path = FIXTURES / f"{name}.out.json"
    if REGEN:
        path.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n")
    return load(path)


def canonical(value: Any) -> Any:
    """A body as Google's JSON parser reads it: field names in lowerCamel (it takes
    snake_case too), lists of tools in any order."""
    if isinstance(value, dict):
        out = {to_camel(k): canonical(v) for k, v in value.items()}
        if isinstance(out.get("tools"), list):
            out["tools"] = sorted(out["tools"], key=lambda t: json.dumps(t, sort_keys=True))
        return out
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


@functools.cache
def _vertex_client() -> Any:
    from google import genai
    from google.auth.credentials import AnonymousCredentials

    return genai.Client(
        vertexai=True, project=PROJECT, location=LOCATION, credentials=AnonymousCredentials()
    )._api_client


def _finish(request: dict[str, Any]) -> dict[str, Any]:
    from google.genai import _common

    request.pop("_url", None)
    request.pop("config", None)
    return dict(_common.encode_unserializable_types(_common.convert_to_dict(request)))


def genai_generate(body: dict[str, Any]) -> dict[str, Any]:
    """What google-genai (vertexai=True) sends Vertex for the request `body` describes.
    Raises (pydantic's extra_forbidden, or google-genai's "only supported in Gemini
    Developer API mode") for a field Vertex does not take."""
    from google.genai import models, types

    config = dict(body.get("generationConfig") or {})
    for name in ("systemInstruction", "tools", "toolConfig", "safetySettings", "labels",
                 "cachedContent", "serviceTier", "modelArmorConfig"):  # fmt: skip
        if name in body:
            config[name] = body[name]
    unknown = set(body) - {"contents", "generationConfig"} - set(config)
    assert not unknown, f"google-genai has no config field for {unknown}"
    params = types._GenerateContentParameters(
        model="gemini-2.5-flash", contents=body["contents"], config=config
    )
    sent = _finish(models._GenerateContentParameters_to_vertex(_vertex_client(), params))
    if not sent.get("generationConfig") and "generationConfig" not in body:
        sent.pop("generationConfig", None)  # google-genai sends {} when given no config
    return sent


def genai_count(body: dict[str, Any]) -> dict[str, Any]:
    """What google-genai (vertexai=True) sends Vertex's countTokens for `body`."""
    from google.genai import models, types

    config = {k: body[k] for k in ("systemInstruction", "tools", "generationConfig") if k in body}
    params = types._CountTokensParameters(
        model="gemini-2.5-flash", contents=body["contents"], config=config
    )
    return _finish(models._CountTokensParameters_to_vertex(_vertex_client(), params))


def genai_embed(model: str, body: dict[str, Any]) -> dict[str, Any]:
    """What google-genai (vertexai=True) sends for `body` (predict, embedContent or
    batchEmbedContents), made from the texts and the config in it."""
    from google.genai import models, types

    if "instances" in body:  # google-genai gives every instance one config: one at a time
        dimensions = body.get("parameters", {}).get("outputDimensionality")
        sent = [
            genai_embed(model, {"instance": i, "dimensions": dimensions}) for i in body["instances"]
        ]
        return {"instances": [s["instances"][0] for s in sent], **{
            k: v for k, v in sent[0].items() if k != "instances"}}  # fmt: skip
    if "instance" in body:
        config = {
            "task_type": body["instance"].get("task_type"),
            "title": body["instance"].get("title"),
            "output_dimensionality": body["dimensions"],
        }
        params = types._EmbedContentParametersPrivate(
            model=model,
            contents=[body["instance"]["content"]],
            config=config,
            embedding_api_type=types.EmbeddingApiType.PREDICT,
        )
    elif "content" in body:
        params = types._EmbedContentParametersPrivate(
            model=model,
            content=body["content"],
            config=body.get("embedContentConfig"),
            embedding_api_type=types.EmbeddingApiType.EMBED_CONTENT,
        )
    else:  # google-genai gives every request one config: compare the contents' shape
        params = types._EmbedContentParametersPrivate(
            model=model,
            batch_contents=[r["content"] for r in body["requests"]],
            embedding_api_type=types.EmbeddingApiType.BATCH_EMBED_CONTENTS,
        )
    convert = models._EmbedContentParametersPrivate_to_vertex
    return _finish(convert(_vertex_client(), params, None, params))


def anthropic_vertex(body: dict[str, Any], *, count: bool = False) -> tuple[str, dict[str, Any]]:
    """(URL path, body) the anthropic SDK's AnthropicVertex client sends for the Messages
    body `body` (its `anthropic_version` default is not Vertex's, so it is given)."""
    from anthropic._models import FinalRequestOptions
    from anthropic.lib.vertex._client import _prepare_options

    url = "/v1/messages/count_tokens" if count else "/v1/messages"
    data = {**body, "anthropic_version": "vertex-2023-10-16"}
    options = FinalRequestOptions.construct(method="post", url=url, json_data=data)
    prepared = _prepare_options(options, project_id=PROJECT, region=LOCATION)
    assert isinstance(prepared.json_data, dict)
    return prepared.url, prepared.json_data
