"""The resumable upload protocol as HTTP (what the SDKs do, and what they may do on a bad
network): chunks, query, resume, cancel, offsets, limits; download; the config."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from genroute.config import ConfigError, config_from_data
from genroute.resources import genroute_file_id
from tests.conftest import InProcessGateway

pytestmark = pytest.mark.e2e

KEY = "sk-protocol-master"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessGateway]:
    config = {
        "model_list": [{"model_name": "demo", "params": {"model": "demo/echo"}}],
        "general_settings": {"master_key": KEY, "request_body_timeout": 5},
        "files": {"max_file_size_mb": 1, "allowed_mime_types": ["text/*", "image/png"]},
    }
    gw = InProcessGateway(config, Path(tmp_path_factory.mktemp("files-protocol")))
    yield gw
    gw.stop()


class Http:
    """requests with the gateway's base URL and the master key."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["x-goog-api-key"] = KEY

    def __getattr__(self, method: str) -> Any:
        return lambda path, **kw: self.session.request(method, self.base_url + path, **kw)


@pytest.fixture
def http(gateway: InProcessGateway) -> Iterator[Http]:
    client = Http(gateway.base_url)
    yield client
    client.session.close()


def start(http: Http, size: int, mime: str = "text/plain", **file: Any) -> str:
    response = http.post(
        "/upload/v1beta/files",
        headers={
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": str(size),
            "x-goog-upload-header-content-type": mime,
        },
        json={"file": file},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-goog-upload-status"] == "active"
    return response.headers["x-goog-upload-url"]


def send(
    url: str, data: bytes, offset: int, command: str = "upload", **headers: str
) -> requests.Response:
    # As the SDKs do: no key on the upload URL (its upload_id is the credential).
    return requests.post(
        url,
        data=data,
        headers={"x-goog-upload-command": command, "x-goog-upload-offset": str(offset), **headers},
    )


def test_chunks_query_resume_and_finalize(http: Http) -> None:
    data = bytes(range(256)) * 1000
    url = start(http, len(data), display_name="bytes")
    assert url.startswith(f"{http.base_url}/upload/v1beta/files?upload_id=")
    first = send(url, data[:100_000], 0)
    assert first.status_code == 200 and first.headers["x-goog-upload-status"] == "active"
    # A chunk sent at the wrong offset (a retry of the first, say) is refused...
    wrong = send(url, data[:100_000], 0)
    assert wrong.status_code == 400 and wrong.headers["x-goog-upload-status"] == "final"
    assert "X-Goog-Upload-Offset" in wrong.json()["error"]["message"]
    # ...and the client asks where to resume.
    query = requests.post(url, headers={"x-goog-upload-command": "query"})
    assert query.headers["x-goog-upload-size-received"] == "100000"
    done = send(url, data[100_000:], 100_000, "upload, finalize")
    assert done.status_code == 200 and done.headers["x-goog-upload-status"] == "final"
    file = done.json()["file"]
    assert file["sizeBytes"] == str(len(data)) and file["state"] == "ACTIVE"
    assert file["displayName"] == "bytes" and file["source"] == "UPLOADED"
    # The hash of bytes that came in two requests is of all of them.
    got = http.get(f"/v1beta/{file['name']}").json()
    assert got["sha256Hash"] == file["sha256Hash"]
    download = http.get(f"/v1beta/{file['name']}:download", params={"alt": "media"})
    assert download.content == data and download.headers["content-type"] == "text/plain"
    assert hashlib.sha256(download.content).hexdigest() == hashlib.sha256(data).hexdigest()
    # The session is over once finalized.
    assert send(url, b"more", len(data)).status_code == 404


def test_cancel_ends_the_upload(http: Http) -> None:
    url = start(http, 10)
    assert send(url, b"12345", 0).status_code == 200
    cancelled = requests.post(url, headers={"x-goog-upload-command": "cancel"})
    assert cancelled.headers["x-goog-upload-status"] == "cancelled"
    assert send(url, b"67890", 5, "upload, finalize").status_code == 404


def test_sizes_and_types_are_limited(http: Http) -> None:
    too_big = http.post(
        "/upload/v1beta/files",
        headers={
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": str(2 * 1024 * 1024),
            "x-goog-upload-header-content-type": "text/plain",
        },
    )
    assert too_big.status_code == 413 and "files.max_file_size_mb" in too_big.text
    pdf = http.post(
        "/upload/v1beta/files",
        headers={
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": "10",
            "x-goog-upload-header-content-type": "application/pdf",
        },
    )
    assert pdf.status_code == 400 and "files.allowed_mime_types" in pdf.text
    # More bytes than declared: refused as they stream in, and the upload stays resumable.
    url = start(http, 10)
    over = send(url, b"x" * 11, 0, "upload, finalize")
    assert over.status_code == 413 and over.headers["x-goog-upload-status"] == "final"
    short = send(url, b"x" * 9, 0, "upload, finalize")
    assert short.status_code == 400 and "declared 10" in short.json()["error"]["message"]


def test_bad_starts_say_what_to_do(http: Http, gateway: InProcessGateway) -> None:
    multipart = http.post("/upload/v1beta/files", headers={"x-goog-upload-protocol": "multipart"})
    assert multipart.status_code == 400 and "resumable" in multipart.json()["error"]["message"]
    create = http.post("/v1beta/files", json={"file": {}})
    assert create.status_code == 400 and "/upload/" in create.json()["error"]["message"]
    no_key = requests.get(f"{gateway.base_url}/v1beta/files")
    assert no_key.status_code == 403
    bad_name = http.get("/v1beta/files/Not_A_Name")
    assert bad_name.status_code == 400 and "name" in bad_name.json()["error"]["message"]
    taken = start(http, 1, name="files/chosen-name")
    assert send(taken, b"x", 0, "upload, finalize").json()["file"]["name"] == "files/chosen-name"
    again = http.post(
        "/upload/v1beta/files",
        headers={
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": "1",
            "x-goog-upload-header-content-type": "text/plain",
        },
        json={"file": {"name": "files/chosen-name"}},
    )
    assert again.status_code == 409 and again.json()["error"]["status"] == "ALREADY_EXISTS"
    assert http.put("/v1beta/files/chosen-name").status_code == 405


def test_genroute_file_uris_are_told_from_others() -> None:
    assert genroute_file_id("http://127.0.0.1:4000/v1beta/files/abc-123") == "abc-123"
    assert genroute_file_id("https://gw.example.com/some/prefix/v1/files/x9") == "x9"
    assert genroute_file_id("files/abc") == "abc"
    assert genroute_file_id("https://generativelanguage.googleapis.com/v1beta/files/abc") is None
    assert genroute_file_id("https://example.com/pictures/cat.png") is None
    assert genroute_file_id("gs://bucket/v1/files/abc") is None
    assert genroute_file_id("https://example.com/v1/files/abc?sig=1") is None


def test_the_files_config_is_checked() -> None:
    with pytest.raises(ConfigError, match=r"files: .*storage: s3 needs an s3 section"):
        config_from_data({"files": {"storage": "s3"}})
    with pytest.raises(ConfigError, match=r"files\.s3\.bucket"):
        config_from_data({"files": {"storage": "s3", "s3": {}}})
    with pytest.raises(ConfigError, match=r"files\.allowed_mime_types"):
        config_from_data({"files": {"allowed_mime_types": ["pdf"]}})
    with pytest.raises(ConfigError, match=r"files\.s3\.endpoint_url"):
        config_from_data({"files": {"storage": "s3", "s3": {"bucket": "b", "endpoint_url": "x"}}})
    with pytest.raises(ConfigError, match=r"files\.max_file_size_mb"):
        config_from_data({"files": {"max_file_size_mb": 0}})
    with pytest.raises(ConfigError, match=r"files\.s3"):
        config_from_data({"files": {"s3": {"bucket": "bkt", "access_key_id": "only-one"}}})


def test_a_streamed_body_over_the_limit_is_cut_off(http: Http) -> None:
    response = http.post(
        "/upload/v1beta/files",
        headers={
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-type": "text/plain",
        },
    )
    url = response.headers["x-goog-upload-url"]  # no size declared: the 1 MB limit holds

    def body() -> Iterator[bytes]:
        for _ in range(32):
            yield b"x" * 65536  # 2 MB, chunked: no Content-Length to refuse up front

    over = requests.post(
        url, data=body(), headers={"x-goog-upload-command": "upload, finalize"}, timeout=30
    )
    assert over.status_code == 413 and "files.max_file_size_mb" in over.text
