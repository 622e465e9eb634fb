"""The `genroute` command: check-config, the embedded default, workers and shutdown."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.fakes.gemini_upstream import FakeGemini


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "genroute.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )


def generate(base_url: str, model: str, text: str, key: str | None = None) -> dict[str, Any]:
    body = json.dumps({"contents": [{"role": "user", "parts": [{"text": text}]}]}).encode()
    headers = {"content-type": "application/json", **({"x-goog-api-key": key} if key else {})}
    request = urllib.request.Request(
        f"{base_url}/v1beta/models/{model}:generateContent", body, headers
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        yaml.safe_dump(
            {"model_list": [{"model_name": "d", "litellm_params": {"model": "demo/echo"}}]}
        )
    )
    result = run_cli("check-config", str(path))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


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
            {"model_list": [{"model_name": "d", "params": {"model": "bedrock/claude-3"}}]},
            "provider 'bedrock' is not served",
        ),
    ],
)
def test_check_config_names_the_bad_key(
    tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_cli("check-config", str(path))
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())


def test_serve_refuses_a_bad_config_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("general_settings:\n  master_kee: x\n")
    result = run_cli("serve", "--config", str(path), "--port", "1")
    assert result.returncode == 2
    assert "general_settings.master_kee: unknown field" in result.stderr


@pytest.mark.e2e
def test_embedded_default_serves_the_demo_model(start_gateway: Any) -> None:
    gateway = start_gateway(None, process=True)  # the banner is printed by `genroute serve`
    reply = generate(gateway.base_url, "demo", "Hello there")
    assert (
        reply["candidates"][0]["content"]["parts"][0]["text"]
        == "This is the genroute demo model. You said: Hello there"
    )
    with urllib.request.urlopen(f"{gateway.base_url}/v1beta/models", timeout=5) as resp:
        models = json.loads(resp.read())["models"]
    assert [m["name"] for m in models] == ["models/demo"]
    assert "not a real LLM" in models[0]["description"]
    banner = " ".join(gateway.log().split())
    assert "demo/echo" in banner and "not a real LLM" in banner


@pytest.mark.e2e
def test_embedded_default_uses_a_gemini_key_from_the_environment(start_gateway: Any) -> None:
    with FakeGemini("env-key") as fake:
        gateway = start_gateway(
            None, env={"GEMINI_API_KEY": "env-key", "GEMINI_API_BASE": fake.base_url}
        )
        reply = generate(gateway.base_url, "gemini-2.5-flash", "from env")
        assert reply["candidates"][0]["content"]["parts"][-1]["text"] == "Echo: from env"
        assert fake.last_request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert "env-key" not in gateway.log()


@pytest.mark.e2e
def test_several_workers_serve_and_stop_on_sigterm(tmp_path: Path) -> None:
    from tests.conftest import Gateway

    config = {
        "model_list": [{"model_name": "demo", "params": {"model": "demo/echo"}}],
        "general_settings": {"master_key": "sk-w"},
    }
    gateway = Gateway(config, tmp_path, extra_args=["--workers", "2"])
    try:
        for i in range(6):
            assert generate(gateway.base_url, "demo", f"n{i}", key="sk-w")["candidates"]
        gateway.proc.send_signal(signal.SIGTERM)
        assert gateway.proc.wait(20) == 0
    finally:
        gateway.stop()
    assert "sk-w" not in gateway.log()
