"""Vertex tests run without the developer's Google Cloud settings: a project, location or
credentials file from the shell would change where calls go."""

from __future__ import annotations

import pytest

from tests.providers.vertex.mock import GOOGLE_CLOUD_ENV


@pytest.fixture(autouse=True)
def _no_google_cloud_settings_from_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in GOOGLE_CLOUD_ENV:
        monkeypatch.delenv(name, raising=False)
