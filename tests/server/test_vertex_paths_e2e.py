"""Every path shape real clients send: Vertex AI (with a project, and express mode), tuned
models and version-less paths, driven with google-genai against an in-process gateway."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from google.oauth2.credentials import Credentials

from tests.conftest import InProcessGateway

pytestmark = pytest.mark.e2e
KEY = "sk-vertex-test"
CONFIG: dict[str, Any] = {
    "model_list": [
        {"model_name": "gemini-*", "params": {"model": "demo/echo"}},
        {"model_name": "claude-x", "params": {"model": "demo/claude"}},
        {"model_name": "tunedModels/my-tune", "params": {"model": "demo/tuned"}},
        {"model_name": "emb", "params": {"model": "demo/e"}, "model_info": {"mode": "embedding"}},
    ],
    "general_settings": {"master_key": KEY},
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessGateway]:
    gateway = InProcessGateway(CONFIG, Path(tmp_path_factory.mktemp("vertex")))
    yield gateway
    gateway.stop()


def vertex(gw: InProcessGateway, version: str | None = None) -> genai.Client:
    """A `vertexai=True` client with a project; its bearer token is the genroute key."""
    options = types.HttpOptions(base_url=gw.base_url, api_version=version)
    return genai.Client(
        vertexai=True,
        project="my-project",
        location="us-central1",
        credentials=Credentials(token=KEY),
        http_options=options,
    )


def express(gw: InProcessGateway) -> genai.Client:
    """Vertex express mode: an API key, no project."""
    return genai.Client(vertexai=True, api_key=KEY, http_options={"base_url": gw.base_url})


@pytest.mark.parametrize("version", [None, "v1", "v1beta1"])
def test_vertex_client_with_a_project(gw: InProcessGateway, version: str | None) -> None:
    client = vertex(gw, version)
    reply = client.models.generate_content(model="gemini-2.5-flash", contents="hello vertex")
    assert reply.text == "This is the genroute demo model. You said: hello vertex"
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="a b"))
    assert "".join(c.text or "" for c in chunks).endswith("You said: a b")
    count = client.models.count_tokens(model="gemini-2.5-flash", contents="one two three")
    assert count.total_tokens == 3
    # A model id `a/b` travels as publishers/a/models/b: `claude-x` is the served name.
    reply = client.models.generate_content(model="anthropic/claude-x", contents="published")
    assert reply.model_version == "demo/claude"


def test_vertex_express_mode(gw: InProcessGateway) -> None:
    client = express(gw)
    reply = client.models.generate_content(model="gemini-2.5-flash", contents="express")
    assert reply.text is not None and reply.text.endswith("You said: express")
    embedded = client.models.embed_content(model="emb", contents=["first text", "second"])
    assert embedded.embeddings is not None and len(embedded.embeddings) == 2
    assert all(e.values for e in embedded.embeddings)
    stranger = genai.Client(
        vertexai=True, api_key="sk-wrong", http_options={"base_url": gw.base_url}
    )
    with pytest.raises(genai_errors.ClientError) as err:
        stranger.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert err.value.code == 401


def test_vertex_embed_content_config_is_read(gw: InProcessGateway) -> None:
    body = {
        "content": {"parts": [{"text": "hello"}]},
        "embedContentConfig": {"outputDimensionality": 8, "taskType": "RETRIEVAL_QUERY"},
    }
    status, reply = post(gw, "/v1beta1/publishers/google/models/emb:embedContent", body)
    assert status == 200 and len(reply["embedding"]["values"]) == 8


def test_tuned_model_and_version_less_paths(gw: InProcessGateway) -> None:
    client = genai.Client(api_key=KEY, http_options={"base_url": gw.base_url})
    reply = client.models.generate_content(model="tunedModels/my-tune", contents="tuned")
    assert reply.model_version == "demo/tuned"
    status, raw = post(gw, "/models/gemini-2.5-flash:generateContent", CONTENTS)
    assert status == 200 and raw["candidates"][0]["content"]["role"] == "model"


CONTENTS = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def post(gw: InProcessGateway, path: str, body: Any) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"{gw.base_url}{path}",
        data=json.dumps(body).encode(),
        headers={"x-goog-api-key": KEY, "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_google_rest_samples_with_curl(gw: InProcessGateway) -> None:
    """Google's REST samples as the Gemini API and Vertex AI docs print them, with only
    the host and the key changed (Vertex's send `contents` and `parts` as single objects)."""
    vertex = "/v1/projects/my-project/locations/us-central1/publishers/google/models"
    samples = [
        # Gemini API: the key in x-goog-api-key, then a stream.
        (
            "/v1beta/models/gemini-2.5-flash:generateContent",
            ["-H", f"x-goog-api-key: {KEY}"],
            {"contents": [{"parts": [{"text": "Explain how AI works in a few words"}]}]},
        ),
        (
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            ["-H", f"x-goog-api-key: {KEY}", "--no-buffer"],
            {"contents": [{"parts": [{"text": "Explain how AI works in a few words"}]}]},
        ),
        # Vertex AI with a project: an access token, one object for contents and parts.
        (
            f"{vertex}/gemini-2.5-flash:generateContent",
            ["-H", f"Authorization: Bearer {KEY}"],
            {
                "contents": {"role": "user", "parts": {"text": "Explain how AI works"}},
                "generation_config": {"temperature": 0.2, "maxOutputTokens": 256},
            },
        ),
        # Vertex AI express mode: ?key= on the publisher path.
        (
            f"/v1/publishers/google/models/gemini-2.5-flash:generateContent?key={KEY}",
            [],
            {"contents": {"role": "user", "parts": {"text": "Explain how AI works"}}},
        ),
    ]
    for path, headers, body in samples:
        out = curl(gw, path, headers, body)
        if "alt=sse" in path:
            events = [json.loads(x[6:]) for x in out.splitlines() if x.startswith("data: ")]
            text = "".join(
                p["text"] for e in events for p in e["candidates"][0]["content"]["parts"]
            )
        else:
            text = json.loads(out)["candidates"][0]["content"]["parts"][0]["text"]
        assert text.startswith("This is the genroute demo model. You said: Explain how AI works")
    one = {"contents": {"role": "user", "parts": {"text": "one two three"}}}
    count = curl(
        gw, f"{vertex}/gemini-2.5-flash:countTokens", ["-H", f"Authorization: Bearer {KEY}"], one
    )
    assert json.loads(count)["totalTokens"] == 3


def curl(gw: InProcessGateway, path: str, headers: list[str], body: Any) -> str:
    """What curl prints for a JSON POST (its exit status checked)."""
    command = ["curl", "-sS", "-X", "POST", f"{gw.base_url}{path}", *headers]
    command += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True)
    return result.stdout
