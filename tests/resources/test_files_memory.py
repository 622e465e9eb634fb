"""A 200 MB upload streams through genroute to storage in bounded memory: the process
(the in-process gateway is this process) grows by far less than the file. RSS is sampled
while the upload runs; no timing is asserted."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import InProcessGateway

pytestmark = pytest.mark.e2e

KEY = "sk-memory-master"
CHUNK = bytes(range(256)) * 4096  # 1 MiB
SIZE = 200 * len(CHUNK)
MAX_GROWTH = 64 * 1024 * 1024


def rss() -> int:
    with open("/proc/self/statm") as stat:
        return int(stat.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Sampler(threading.Thread):
    """The highest RSS seen until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.01):
            self.peak = max(self.peak, rss())


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[InProcessGateway]:
    config = {
        "model_list": [{"model_name": "demo", "params": {"model": "demo/echo"}}],
        "general_settings": {"master_key": KEY},
        "files": {"directory": str(tmp_path / "blobs")},
    }
    gw = InProcessGateway(config, tmp_path)
    yield gw
    gw.stop()


def test_a_200_mb_upload_does_not_grow_the_process_by_200_mb(
    gateway: InProcessGateway, tmp_path: Path
) -> None:
    start = requests.post(
        f"{gateway.base_url}/upload/v1beta/files",
        headers={
            "x-goog-api-key": KEY,
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": str(SIZE),
            "x-goog-upload-header-content-type": "application/octet-stream",
        },
        timeout=30,
    )
    url = start.headers["x-goog-upload-url"]

    def body() -> Iterator[bytes]:
        for _ in range(SIZE // len(CHUNK)):
            yield CHUNK

    before = rss()
    sampler = Sampler()
    sampler.start()
    try:
        done = requests.post(
            url,
            data=body(),  # chunked: the gateway never knows the length in advance
            headers={"x-goog-upload-command": "upload, finalize", "x-goog-upload-offset": "0"},
            timeout=300,
        )
    finally:
        sampler.done.set()
        sampler.join()
    assert done.status_code == 200, done.text
    file = done.json()["file"]
    assert file["sizeBytes"] == str(SIZE)
    expected = hashlib.sha256()
    for chunk in body():
        expected.update(chunk)
    import base64

    assert base64.b64decode(file["sha256Hash"]).decode() == expected.hexdigest()
    assert (tmp_path / "blobs").stat().st_size >= 0
    stored = next((tmp_path / "blobs").iterdir())
    assert stored.stat().st_size == SIZE
    growth = sampler.peak - before
    print(f"RSS grew by {growth / 2**20:.1f} MiB during a {SIZE / 2**20:.0f} MiB upload")
    assert growth < MAX_GROWTH, f"RSS grew by {growth / 2**20:.1f} MiB"
