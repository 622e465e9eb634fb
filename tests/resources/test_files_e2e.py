"""End to end: the Files API through genroute with the real google-genai client, and
uploaded files used in generateContent on Gemini, OpenAI and Anthropic groups (fakes).

One gateway (master key, SQLite, files in a directory) serves every test; keys of two
teams show that a file belongs to its team."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types

from tests.conftest import InProcessGateway, genai_client
from tests.fakes.anthropic_upstream import DEFAULT_API_KEY as ANTHROPIC_KEY
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import DEFAULT_KEY as OPENAI_KEY
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.e2e

MASTER = "sk-files-master"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeGemini, FakeOpenAI, FakeAnthropic]]:
    gemini = FakeGemini("upstream-key").start()
    with FakeOpenAI() as openai, FakeAnthropic() as anthropic:
        yield gemini, openai, anthropic
    gemini.stop()


@pytest.fixture(scope="module")
def gateway(
    fakes: tuple[FakeGemini, FakeOpenAI, FakeAnthropic], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    gemini, openai, anthropic = fakes
    config = {
        "model_list": [
            {
                "model_name": "gem",
                "params": {
                    "model": "gemini/gemini-2.5-flash",
                    "api_key": "upstream-key",
                    "api_base": gemini.base_url,
                },
            },
            {
                "model_name": "gpt",
                "params": {
                    "model": "openai/gpt-4o",
                    "api_key": OPENAI_KEY,
                    "api_base": f"{openai.base_url}/v1",
                },
            },
            {
                "model_name": "claude",
                "params": {
                    "model": "anthropic/claude-sonnet-4-5",
                    "api_key": ANTHROPIC_KEY,
                    "api_base": anthropic.base_url,
                },
            },
            {"model_name": "demo", "params": {"model": "demo/echo"}},
        ],
        "general_settings": {"master_key": MASTER},
        # Files over 64 bytes go to a Gemini deployment through its Files API.
        "files": {"gemini_inline_max_mb": 64 / (1024 * 1024), "max_inline_mb": 1},
    }
    gw = InProcessGateway(config, Path(tmp_path_factory.mktemp("files-gateway")))
    yield gw
    gw.stop()


def call(
    gw: InProcessGateway, method: str, path: str, body: Any = None, key: str = MASTER
) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        gw.base_url + path,
        data=data,
        headers={"content-type": "application/json", "x-goog-api-key": key},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            raw = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, json.loads(raw)
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, json.loads(err.read())


@pytest.fixture(scope="module")
def keys(gateway: InProcessGateway) -> dict[str, str]:
    made = {}
    for team in ("red", "blue"):
        assert call(gateway, "POST", "/team/new", {"team_id": team})[0] == 200
    for name, team in (("red1", "red"), ("red2", "red"), ("blue", "blue"), ("solo", None)):
        fields: dict[str, Any] = {"key_alias": f"files-{name}"}
        if team:
            fields["team_id"] = team
        status, _, body = call(gateway, "POST", "/key/generate", fields)
        assert status == 200, body
        made[name] = body["key"]
    return made


def upload(client: Any, data: bytes, mime: str, **config: Any) -> types.File:
    file: types.File = client.files.upload(
        file=io.BytesIO(data), config={"mime_type": mime, **config}
    )
    return file


def test_upload_get_list_delete(gateway: InProcessGateway, keys: dict[str, str]) -> None:
    client = genai_client(gateway.base_url, keys["red1"])
    data = b"hello, files\n" * 1000
    file = upload(client, data, "text/plain", display_name="greeting")
    assert file.name is not None and file.name.startswith("files/")
    assert file.state == types.FileState.ACTIVE
    assert file.size_bytes == len(data) and file.mime_type == "text/plain"
    assert file.display_name == "greeting"
    hexdigest = hashlib.sha256(data).hexdigest().encode()
    assert file.sha256_hash == base64.b64encode(hexdigest).decode()
    assert file.create_time is not None and file.expiration_time is not None
    assert file.expiration_time - file.create_time == timedelta(hours=48)
    assert file.uri == f"{gateway.base_url}/v1beta/files/{file.name[6:]}"

    got = client.files.get(name=file.name)
    assert got.sha256_hash == file.sha256_hash and got.size_bytes == len(data)
    assert file.name in [f.name for f in client.files.list()]

    client.files.delete(name=file.name)
    with pytest.raises(errors.ClientError) as caught:
        client.files.get(name=file.name)
    assert caught.value.code == 404 and "was not found" in str(caught.value.message)


def test_list_pages_newest_first(gateway: InProcessGateway, keys: dict[str, str]) -> None:
    client = genai_client(gateway.base_url, keys["solo"])
    names = [upload(client, f"file {i}".encode(), "text/plain").name for i in range(5)]
    pager = client.files.list(config={"page_size": 2})
    assert len(pager.page) == 2
    listed = [f.name for f in pager]
    assert listed == list(reversed(names))


def test_files_belong_to_the_team(gateway: InProcessGateway, keys: dict[str, str]) -> None:
    red1 = genai_client(gateway.base_url, keys["red1"])
    red2 = genai_client(gateway.base_url, keys["red2"])
    blue = genai_client(gateway.base_url, keys["blue"])
    master = genai_client(gateway.base_url, MASTER)
    file = upload(red1, b"team red's secret", "text/plain")
    assert file.name is not None
    assert red2.files.get(name=file.name).size_bytes == file.size_bytes  # same team
    for attempt in (
        lambda: blue.files.get(name=file.name),
        lambda: blue.files.delete(name=file.name),
    ):
        with pytest.raises(errors.ClientError) as caught:
            attempt()
        assert caught.value.code == 404
    assert file.name not in [f.name for f in blue.files.list()]
    assert file.name in [f.name for f in master.files.list(config={"page_size": 100})]
    # Used in a call by another team: refused naming the part, as a missing file.
    part = types.Part.from_uri(file_uri=str(file.uri), mime_type="text/plain")
    with pytest.raises(errors.ClientError) as caught:
        blue.models.generate_content(model="demo", contents=["Summarise", part])
    assert caught.value.code == 404
    assert "contents[0].parts[1].fileData.fileUri" in str(caught.value.message)
    master.files.delete(name=file.name)  # the master key may delete any file
    with pytest.raises(errors.ClientError):
        red1.files.get(name=file.name)


def test_a_gemini_group_gets_the_file_on_its_files_api_once(
    gateway: InProcessGateway, keys: dict[str, str], fakes: tuple[FakeGemini, Any, Any]
) -> None:
    gemini = fakes[0]
    client = genai_client(gateway.base_url, keys["red1"])
    data = PDF * 10  # over the 64-byte inline limit of this gateway
    file = upload(client, data, "application/pdf")
    started = gemini.files_api.uploads_started
    for _ in range(2):
        reply = client.models.generate_content(model="gem", contents=[file, "What is it?"])
        assert reply.text
    assert gemini.files_api.uploads_started == started + 1  # uploaded once, then remembered
    sent = gemini.requests[-1].body["contents"][0]["parts"][0]["fileData"]
    copy = next(f for f in gemini.files_api.completed() if bytes(f.data) == data)
    assert (
        sent["fileUri"] == f"https://generativelanguage.googleapis.com/v1beta/files/{copy.file_id}"
    )
    assert sent["mimeType"] == "application/pdf"
    # A small file goes inline.
    small = upload(client, b"tiny", "text/plain")
    client.models.generate_content(model="gem", contents=[small, "Read it"])
    inline = gemini.requests[-1].body["contents"][0]["parts"][0]["inlineData"]
    assert base64.b64decode(inline["data"]) == b"tiny"


def test_openai_and_anthropic_groups_get_the_bytes(
    gateway: InProcessGateway, keys: dict[str, str], fakes: tuple[Any, FakeOpenAI, FakeAnthropic]
) -> None:
    _, openai, anthropic = fakes
    client = genai_client(gateway.base_url, keys["red1"])
    image = upload(client, PNG, "image/png")
    notes = upload(client, b"a,b\n1,2\n", "text/csv")
    pdf = upload(client, PDF, "application/pdf")

    client.models.generate_content(model="gpt", contents=[image, notes, "Describe"])
    parts = openai.last_request.body["messages"][-1]["content"]
    assert parts[0]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert parts[1] == {"type": "text", "text": "a,b\n1,2\n"}

    client.models.generate_content(model="claude", contents=[pdf, notes, "Describe"])
    blocks = anthropic.last_request.body["messages"][-1]["content"]
    assert blocks[0]["source"] == {
        "type": "base64",
        "media_type": "application/pdf",
        "data": base64.b64encode(PDF).decode(),
    }
    assert blocks[1]["text"] == "a,b\n1,2\n"


def test_a_type_the_provider_cannot_take_names_the_part(
    gateway: InProcessGateway, keys: dict[str, str]
) -> None:
    client = genai_client(gateway.base_url, keys["red1"])
    archive = upload(client, b"PK\x03\x04 not really a zip", "application/zip")
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="claude", contents=["Open this", archive])
    assert caught.value.code == 400
    assert "contents[0].parts[1]" in str(caught.value.message)
    big = upload(client, b"x" * (1024 * 1024 + 1), "text/plain")  # over max_inline_mb: 1
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gpt", contents=[big])
    assert caught.value.code == 400 and "files.max_inline_mb" in str(caught.value.message)
