"""Files kept in S3-compatible storage: moto's S3 server on 127.0.0.1 (real HTTP, SigV4
checked), written by genroute's multipart uploads, read back by boto3 and by genroute."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import InProcessGateway, genai_client

pytestmark = pytest.mark.e2e

KEY = "sk-s3-master"
BUCKET = "genroute-files-test"
ACCESS, SECRET = "AKIAGENROUTETEST", "genroute-test-secret"


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[str, Any]]:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
    )
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    client.close()
    server.stop()


@pytest.fixture(scope="module")
def gateway(
    s3: tuple[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessGateway]:
    endpoint, _ = s3
    config = {
        "model_list": [{"model_name": "demo", "params": {"model": "demo/echo"}}],
        "general_settings": {"master_key": KEY},
        "files": {
            "storage": "s3",
            "s3": {
                "bucket": BUCKET,
                "prefix": "uploads/",
                "endpoint_url": endpoint,
                "access_key_id": ACCESS,
                "secret_access_key": SECRET,
                "part_size_mb": 5,
            },
        },
    }
    gw = InProcessGateway(config, Path(tmp_path_factory.mktemp("files-s3")))
    yield gw
    gw.stop()


def objects(client: Any) -> list[str]:
    found = client.list_objects_v2(Bucket=BUCKET).get("Contents") or []
    return sorted(item["Key"] for item in found)


def test_a_large_file_goes_to_s3_in_parts(gateway: InProcessGateway, s3: tuple[str, Any]) -> None:
    _, boto = s3
    client = genai_client(gateway.base_url, KEY)
    data = os.urandom(12 * 1024 * 1024 + 123)  # the SDK sends 8 MB chunks: parts and a tail
    file = client.files.upload(file=io.BytesIO(data), config={"mime_type": "image/png"})
    assert file.size_bytes == len(data)
    assert file.name is not None
    keys = objects(boto)
    assert len(keys) == 1 and keys[0].startswith(f"uploads/{file.name[6:]}-")  # no tail left
    stored = boto.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
    # Read back through genroute (a download streams from S3).
    import requests

    got = requests.get(
        f"{gateway.base_url}/v1beta/{file.name}:download?alt=media",
        headers={"x-goog-api-key": KEY},
        timeout=30,
    )
    assert got.status_code == 200 and got.content == data
    client.files.delete(name=file.name)
    assert objects(boto) == []


def test_a_small_file_is_one_object(gateway: InProcessGateway, s3: tuple[str, Any]) -> None:
    _, boto = s3
    client = genai_client(gateway.base_url, KEY)
    file = client.files.upload(file=io.BytesIO(b"tiny"), config={"mime_type": "text/plain"})
    assert file.name is not None
    reply = client.models.generate_content(model="demo", contents=["Read", file])
    assert reply.text
    (key,) = objects(boto)
    assert boto.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"tiny"
    client.files.delete(name=file.name)


def test_storage_errors_are_503_naming_the_bucket(
    s3: tuple[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    endpoint, _ = s3
    config = {
        "model_list": [{"model_name": "demo", "params": {"model": "demo/echo"}}],
        "general_settings": {"master_key": KEY},
        "files": {
            "storage": "s3",
            "s3": {
                "bucket": "no-such-bucket",
                "endpoint_url": endpoint,
                "access_key_id": ACCESS,
                "secret_access_key": SECRET,
            },
        },
    }
    gw = InProcessGateway(config, Path(tmp_path_factory.mktemp("files-s3-bad")))
    try:
        from google.genai import errors

        client = genai_client(gw.base_url, KEY)
        with pytest.raises(errors.ServerError) as caught:
            client.files.upload(file=io.BytesIO(b"x"), config={"mime_type": "text/plain"})
        assert caught.value.code == 503
        assert "no-such-bucket" in str(caught.value.message)
        assert "NoSuchBucket" in str(caught.value.message)
    finally:
        gw.stop()
