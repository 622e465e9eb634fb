"""The `genroute` command: check-config, the embedded default, workers and shutdown.

Commands that return before serving run `genroute.cli.main` in this process; `genroute
serve` runs as a real process only where the process is what is tested: its banner and
the provider keys of its environment, and several workers stopped by SIGTERM."""

from __future__ import annotations

import importlib
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml

from genroute.cli import main
from tests.fakes.gemini_upstream import FakeGemini

# The module (the package's `serve` attribute is the function of the same name).
SERVE_MODULE = importlib.import_module("genroute.cli.serve")


def generate(base_url: str, model: str, text: str, key: str | None = None) -> dict[str, Any]:
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": text}]}]}).encode()
    headers = {"content-type": "application/json", **({"x-goog-api-key": key} if key else {})}
    request = urllib.request.Request(
        f"{base_url}/v1beta/models/{model}:generateContent", body, headers
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def test_check_config_accepts_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        yaml.safe_dump(
            {"model_list": [{"model_name": "d", "litellm_params": {"model": "demo/echo"}}]}
        )
    )
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "demo/echo" in out


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {
                "model_list": [
                    {"model_name": "d", "params": {"model": "demo/echo", "temprature": 1}}
                ]
            },
            "model_list[0].params.temprature: unknown field",
        ),
        (
            {"model_list": [{"model_name": "d", "params": {"model": "sagemaker/my-endpoint"}}]},
            "provider 'sagemaker' is not served",
        ),
    ],
)
def test_check_config_names_the_bad_key(
    tmp_path: Path, config: dict[str, Any], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["check-config", str(path)]) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_serve_refuses_a_bad_config_at_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("general_settings:\n  master_kee: x\n")
    assert main(["serve", "--config", str(path), "--port", "1"]) == 2
    assert "general_settings.master_kee: unknown field" in capsys.readouterr().err


def test_argument_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", "many"])
    assert exited.value.code == 2 and "invalid int value" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.startswith("genroute ")


def test_serve_without_a_config_prints_the_demo_banner(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    monkeypatch.setattr(SERVE_MODULE, "settle_heap", lambda: None)  # leave this process's gc
    assert main(["serve", "--port", "4321"]) == 0
    banner = " ".join(capsys.readouterr().err.split())
    assert "serving the Gemini API on http://127.0.0.1:4321" in banner
    assert "config: <embedded default>; workers: 1" in banner
    assert "demo/echo" in banner and "not a real LLM" in banner
    assert "GEMINI_API_KEY" in banner and "No master_key configured" in banner
    assert served["port"] == 4321 and served["loop"] == "uvloop" and callable(served["app"])


def test_embedded_default_serves_the_demo_model(start_gateway: Any) -> None:
    gateway = start_gateway(None)  # no provider key in this process's environment
    reply = generate(gateway.base_url, "demo", "Hello there")
    assert (
        reply["candidates"][0]["content"]["parts"][0]["text"]
        == "This is the genroute demo model. You said: Hello there"
    )
    with urllib.request.urlopen(f"{gateway.base_url}/v1beta/models", timeout=5) as resp:
        models = json.loads(resp.read())["models"]
    demo = next(m for m in models if m["name"] == "models/demo")
    assert "not a real LLM" in demo["description"]


@pytest.mark.e2e
def test_serve_takes_provider_keys_from_its_environment(start_gateway: Any) -> None:
    """The one `genroute serve` process without a config: its banner, and the embedded
    default built from the keys in its own environment (tests/server/test_conformance_e2e.py
    covers each provider's key in process)."""
    with FakeGemini("env-key") as fake:
        gateway = start_gateway(
            None, env={"GEMINI_API_KEY": "env-key", "GEMINI_API_BASE": fake.base_url}
        )
        reply = generate(gateway.base_url, "gemini-2.5-flash", "from env")
        assert reply["candidates"][0]["content"]["parts"][-1]["text"] == "Echo: from env"
        assert fake.last_request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    banner = " ".join(gateway.log().split())
    assert "config: <embedded default>" in banner and "gemini/gemini-*" in banner
    assert "demo/echo" not in banner and "not a real LLM" not in banner
    assert "env-key" not in gateway.log()


# Several workers serving and stopping on SIGTERM (status 0, the master key in no output):
# tests/observability/test_proxy_e2e.py::test_metrics_are_aggregated_across_workers, the
# suite's one `--workers 2` process.
