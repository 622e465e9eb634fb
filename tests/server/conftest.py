"""Fixtures for end-to-end tests: a fake Gemini upstream and a genroute process in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google import genai

from tests.conftest import Gateway, InProcessGateway, genai_client, refused_port
from tests.fakes.gemini_upstream import FakeGemini

MASTER_KEY = "sk-test-master"
UPSTREAM_KEY = "upstream-key"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeGemini]:
    """One fake Gemini upstream per module."""
    with FakeGemini(UPSTREAM_KEY) as upstream:
        yield upstream


@pytest.fixture(autouse=True)
def _fresh_fake(request: pytest.FixtureRequest) -> None:
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()


def gateway_config(fake: FakeGemini) -> dict[str, Any]:
    """A config serving several names in front of the fake upstream."""

    def gemini(model: str, **extra: Any) -> dict[str, Any]:
        return {
            "model": f"gemini/{model}",
            "api_key": UPSTREAM_KEY,
            "api_base": fake.base_url,
            **extra,
        }

    return {
        "model_list": [
            {
                "model_name": "gemini-2.5-flash",
                "params": gemini("gemini-2.5-flash", timeout=2, stream_timeout=2),
            },
            {"model_name": "team/flash", "params": gemini("gemini-2.0-flash")},
            # Times out against the fake's scripted delays (0.3 s) without waiting seconds.
            {"model_name": "impatient", "params": gemini("gemini-2.5-flash", timeout=0.05)},
            {
                "model_name": "text-embedding-004",
                "params": gemini("text-embedding-004"),
                "model_info": {"mode": "embedding"},
            },
            {
                "model_name": "wrong-upstream-key",
                "params": {**gemini("gemini-2.5-flash"), "api_key": "not-the-key"},
            },
            {
                "model_name": "unreachable",
                "params": {
                    **gemini("gemini-2.5-flash"),
                    "api_base": f"http://127.0.0.1:{refused_port()}",
                },
            },
        ],
        "router_settings": {"model_group_alias": {"gemini-pro": "gemini-2.5-flash"}},
        "general_settings": {"master_key": MASTER_KEY, "max_request_size_mb": 0.05},
    }


@pytest.fixture(scope="module")
def gateway(fake: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """genroute in front of the fake, shared by a module's tests."""
    gw = InProcessGateway(gateway_config(fake), Path(tmp_path_factory.mktemp("gateway")))
    yield gw
    gw.stop()


def client_for(gateway: Gateway, version: str = "v1beta", key: str = MASTER_KEY) -> genai.Client:
    """The official google-genai client pointed at genroute."""
    return genai_client(gateway.base_url, key, version)
