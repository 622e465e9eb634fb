"""The names clients send on their own: the embedded default serves gemini-cli's, and
check-config says when a config would leave them unserved."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from genroute.cli import main
from genroute.defaults import GEMINI_CLI_MODELS, default_config
from genroute.routing import Router


@pytest.mark.parametrize(
    ("environ", "pro", "lite"),
    [
        ({}, "demo/echo", "demo/echo"),
        ({"GEMINI_API_KEY": "k"}, "gemini/gemini-3.1-pro-preview", "gemini/gemini-3.5-flash-lite"),
        ({"OPENAI_API_KEY": "k"}, "openai/gpt-4.1", "openai/gpt-4.1-mini"),
        (
            {"ANTHROPIC_API_KEY": "k"},
            "anthropic/claude-sonnet-4-5",
            "anthropic/claude-haiku-4-5",
        ),
    ],
    ids=["no-key", "gemini", "openai", "anthropic"],
)
def test_the_embedded_default_serves_gemini_cli_names(
    environ: dict[str, str], pro: str, lite: str
) -> None:
    router = Router.from_config(default_config(environ), allow_ad_hoc_models=False)
    assert all(router.knows(name) for name in GEMINI_CLI_MODELS)
    assert router.group("gemini-3.1-pro-preview")[0].spec.params.model == pro
    assert router.group("gemini-3.5-flash-lite")[0].spec.params.model == lite


def test_check_config_warns_about_unserved_client_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    narrow = tmp_path / "narrow.yaml"
    narrow.write_text(
        yaml.safe_dump({"model_list": [{"model_name": "gpt", "params": {"model": "demo/x"}}]})
    )
    assert main(["check-config", str(narrow)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "warning: gemini-cli calls gemini-3.5-flash-lite, gemini-3.1-pro-preview" in out
    assert "gemini-*" in out and "model_group_alias" in out
    wide = tmp_path / "wide.yaml"
    wide.write_text(
        yaml.safe_dump({"model_list": [{"model_name": "gemini-*", "params": {"model": "demo/x"}}]})
    )
    assert main(["check-config", str(wide)]) == 0
    assert "warning" not in capsys.readouterr().out
