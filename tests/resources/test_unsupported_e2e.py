"""End to end: what genroute does not serve of the resource APIs answers a Google error
(4xx) that says what to do instead: an embedding batch job, Vertex AI's batch jobs and
cached contents (the `vertexai=True` clients), file search stores, Cloud Storage
sources, batch actions that do not exist, the providers' batch mode in the config; and a
video a Gemini deployment keeps PROCESSING is waited for, then refused with a retry delay
naming the part, without a second upload."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from google import genai
from google.genai import errors, types

from genroute.config import load_config
from genroute.errors import ConfigError
from tests.conftest import InProcessGateway, genai_client
from tests.fakes.gemini_upstream import FakeGemini
from tests.resources.http import http

pytestmark = pytest.mark.e2e

MASTER = "sk-unsupported-master"
VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200  # over the 64-byte inline limit below


@pytest.fixture(scope="module")
def gemini() -> Iterator[FakeGemini]:
    fake = FakeGemini("upstream-key").start()
    yield fake
    fake.stop()


def config(gemini: FakeGemini, wait: float) -> dict[str, Any]:
    params = {"model": "gemini/gemini-2.5-flash", "api_key": "upstream-key"}
    return {
        "model_list": [
            {"model_name": "gem", "params": {**params, "api_base": gemini.base_url}},
            {"model_name": "demo", "params": {"model": "demo/echo"}},
        ],
        "general_settings": {"master_key": MASTER},
        "files": {
            "gemini_inline_max_mb": 64 / (1024 * 1024),
            "upstream_processing_wait_seconds": wait,
        },
    }


@pytest.fixture(scope="module")
def gateway(
    gemini: FakeGemini, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    gw = InProcessGateway(config(gemini, 0.3), Path(tmp_path_factory.mktemp("unsupported")))
    yield gw
    gw.stop()


def refused(status: int, body: Any, *hints: str) -> str:
    assert 400 <= status < 500 and status != 404, (status, body)
    message: str = body["error"]["message"]
    assert body["error"]["status"] == "FAILED_PRECONDITION" or status == 400
    for hint in hints:
        assert hint in message, message
    return message


@pytest.mark.parametrize(
    ("method", "path", "hints"),
    [
        ("POST", "/v1beta/models/demo:asyncBatchEmbedContent", ["batchEmbedContents"]),
        (
            "POST",
            "/v1beta1/projects/p/locations/us-central1/batchPredictionJobs",
            ["client.batches.create", "without vertexai=True"],
        ),
        ("GET", "/v1beta1/batchPredictionJobs/123", ["Batch API"]),
        ("POST", "/v1/projects/p/locations/l/cachedContents", ["client.caches.create"]),
        ("POST", "/v1beta/fileSearchStores", ["client.files.upload"]),
        ("POST", "/v1beta/files:register", ["gs://", "client.files.upload"]),
        ("POST", "/v1beta/batches/abc:updateGenerateContentBatch", [":cancel", "new batch"]),
        ("POST", "/v1beta/files/abc:copy", [":download"]),
    ],
)
def test_an_unserved_route_says_what_to_do_instead(
    gateway: InProcessGateway, method: str, path: str, hints: list[str]
) -> None:
    refused(*http(gateway, method, path, MASTER, {}), *hints)


def test_batch_sources_only_vertex_reads(gateway: InProcessGateway) -> None:
    path = "/v1beta/models/demo:batchGenerateContent"
    body = {"batch": {"inputConfig": {"gcsSource": {"uris": ["gs://bucket/requests.jsonl"]}}}}
    refused(*http(gateway, "POST", path, MASTER, body), "batch.inputConfig.gcsSource", "fileName")
    requests = {"requests": {"requests": [{"request": {"contents": [{"parts": [{"text": "x"}]}]}}]}}
    body = {"batch": {"inputConfig": requests, "outputConfig": {"gcsDestination": {}}}}
    refused(*http(gateway, "POST", path, MASTER, body), "batch.outputConfig", "inlinedResponses")


@pytest.mark.filterwarnings("ignore:batches.create_embeddings")
def test_the_sdks_calls_get_the_hint(gateway: InProcessGateway) -> None:
    client = genai_client(gateway.base_url, MASTER)
    with pytest.raises(errors.ClientError) as caught:  # an embedding batch job
        client.batches.create_embeddings(
            model="demo", src={"inlined_requests": {"contents": [{"parts": [{"text": "a"}]}]}}
        )
    assert caught.value.code == 400 and "batchEmbedContents" in str(caught.value.message)
    vertex = genai.Client(
        vertexai=True,
        api_key=MASTER,
        http_options=types.HttpOptions(base_url=gateway.base_url),
    )
    with pytest.raises(errors.ClientError) as caught:  # Vertex AI's batch jobs (express mode)
        vertex.batches.create(model="demo", src="gs://bucket/requests.jsonl")
    assert caught.value.code == 400 and "without vertexai=True" in str(caught.value.message)


def test_the_providers_batch_mode_is_refused_in_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"model_list": [], "batches": {"mode": "provider"}}))
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert "batches.mode" in caught.value.message and "mode: genroute" in caught.value.message


def upload_video(client: Any) -> types.File:
    file: types.File = client.files.upload(
        file=io.BytesIO(VIDEO), config={"mime_type": "video/mp4"}
    )
    return file


def test_a_video_still_processing_upstream(gateway: InProcessGateway, gemini: FakeGemini) -> None:
    client = genai_client(gateway.base_url, MASTER)
    # Processing for two looks: waited for (within 0.3 s), then the call goes on.
    gemini.files_api.processing_gets = 2
    video = upload_video(client)
    reply = client.models.generate_content(model="gem", contents=[video, "What happens?"])
    assert reply.text
    # Still processing after the wait: a 400 naming the part that says to retry, with a
    # retry delay; the retry reuses the upload.
    gemini.files_api.processing_gets = 10_000
    video = upload_video(client)
    started = gemini.files_api.uploads_started
    with pytest.raises(errors.ClientError) as caught:
        client.models.generate_content(model="gem", contents=["Describe", video])
    message = str(caught.value.message)
    assert caught.value.code == 400 and caught.value.status == "FAILED_PRECONDITION"
    assert "contents[0].parts[1].fileData.fileUri" in message and "retry" in message
    assert "RetryInfo" in str(caught.value.details)
    (copy,) = [f for f in gemini.files_api.completed() if f.state == "PROCESSING"]
    copy.state = "ACTIVE"  # the upstream has finished with it
    assert client.models.generate_content(model="gem", contents=["Describe", video]).text
    assert gemini.files_api.uploads_started == started + 1  # uploaded once, then reused
    # A video the upstream cannot read: a 400 naming the part.
    gemini.files_api.processing_gets, gemini.files_api.fail_processing = 1, True
    try:
        broken = upload_video(client)
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model="gem", contents=[broken])
        assert caught.value.code == 400 and "could not be processed" in str(caught.value.message)
        assert "contents[0].parts[0]" in str(caught.value.message)
    finally:
        gemini.files_api.processing_gets, gemini.files_api.fail_processing = 0, False
