"""Every Bedrock test runs without the developer's AWS setup: no AWS_* variables, shared
config and credentials files that do not exist, and the instance metadata service off (so
botocore's credential chain never reaches for the network)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def isolate_aws(monkeypatch: pytest.MonkeyPatch, tmp: Path) -> None:
    """Clear the AWS environment and point botocore at files under `tmp`."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(autouse=True)
def _no_aws_from_the_shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_aws(monkeypatch, tmp_path)
