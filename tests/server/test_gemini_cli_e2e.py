"""gemini-cli (npm @google/gemini-cli), unchanged, through genroute to OpenAI and Anthropic.

gemini-cli is asked a question it can only answer by calling one of its own tools
(`read_file`); the fake upstream makes the model call it, gemini-cli runs it, sends the
result back, and prints the model's final answer. The model name is routed to a fake
OpenAI or Anthropic upstream, so the whole tool loop crosses the translation layer.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from genroute.defaults import GEMINI_CLI_MODELS
from tests.conftest import ROOT, Gateway, InProcessGateway, in_ci
from tests.fakes.anthropic_upstream import FakeAnthropic, tool_use
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.e2e
GEMINI_BIN = ROOT / "tests" / "clients" / "node_modules" / ".bin" / "gemini"
SECRET = "the-launch-code-is-4217"


@pytest.fixture(scope="module")
def gemini_bin() -> Path:
    """The gemini-cli binary that scripts/test installs with npm."""
    if not GEMINI_BIN.exists():
        message = (
            "gemini-cli is not installed: run `npm ci --prefix tests/clients` (scripts/test does)"
        )
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return GEMINI_BIN


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeOpenAI, FakeAnthropic]]:
    with (
        FakeOpenAI("sk-openai-up") as openai_fake,
        FakeAnthropic("sk-anthropic-up") as anthropic_fake,
    ):
        yield openai_fake, anthropic_fake


@pytest.fixture(scope="module")
def gateway(
    upstreams: tuple[FakeOpenAI, FakeAnthropic], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    openai_fake, anthropic_fake = upstreams
    config = {
        "model_list": [
            {
                "model_name": "gpt-via-genroute",
                "params": {
                    "model": "openai/gpt-4o-mini",
                    "api_key": "sk-openai-up",
                    "api_base": f"{openai_fake.base_url}/v1",
                },
            },
            # gemini-cli's own names without -m, on a model that does not reason.
            {
                "model_name": "gemini-*",
                "params": {
                    "model": "openai/gpt-4o",
                    "api_key": "sk-openai-up",
                    "api_base": f"{openai_fake.base_url}/v1",
                },
            },
            {
                "model_name": "claude-via-genroute",
                "params": {
                    "model": "anthropic/claude-sonnet-4-5",
                    "api_key": "sk-anthropic-up",
                    "api_base": anthropic_fake.base_url,
                },
            },
        ],
        "general_settings": {"master_key": "sk-cli-master"},
    }
    gw = InProcessGateway(config, tmp_path_factory.mktemp("cli-gateway"))
    yield gw
    gw.stop()


def run_gemini_cli(
    gemini: Path,
    gateway: Gateway | InProcessGateway,
    model: str | None,
    workdir: Path,
    prompt: str,
    key: str = "sk-cli-master",
) -> dict[str, Any]:
    """gemini-cli -p, with `-m model` or (None) with its own model names, sending `key`;
    no Gemini, Google or Vertex settings of the shell reach it."""
    home = workdir.parent / "home"
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
    }
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GEMINI_", "GOOGLE_", "VERTEX"))
        },
        "GEMINI_CLI_HOME": str(home),
        "GEMINI_API_KEY": key,
        "GOOGLE_GEMINI_BASE_URL": gateway.base_url,
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
        # Not relaunched in a second Node with a larger heap: the same program, ~0.7 s less.
        "GEMINI_CLI_NO_RELAUNCH": "true",
        "NO_COLOR": "1",
    }
    result = subprocess.run(
        [str(gemini), "-p", prompt, *(["-m", model] if model else []), "--yolo", "-o", "json"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (
        f"gemini-cli failed ({result.returncode}):\n{result.stderr[-3000:]}\n{gateway.log()[-3000:]}"
    )
    output: dict[str, Any] = json.loads(result.stdout)
    return output


def workspace(tmp_path: Path) -> tuple[Path, Path]:
    work = tmp_path / "work"
    work.mkdir()
    secret = work / "secret.txt"
    secret.write_text(f"{SECRET}\n")
    return work, secret


def test_gemini_cli_tool_loop_through_openai(
    gemini_bin: Path, gateway: Gateway, upstreams: tuple[FakeOpenAI, FakeAnthropic], tmp_path: Path
) -> None:
    openai_fake, _ = upstreams
    work, secret = workspace(tmp_path)
    openai_fake.script("reply", tool_calls=[("read_file", {"file_path": str(secret)})])
    before = len(openai_fake.requests)
    output = run_gemini_cli(
        gemini_bin, gateway, "gpt-via-genroute", work, "What does secret.txt say?"
    )
    assert SECRET in output["response"]
    calls = openai_fake.requests[before:]
    assert len(calls) >= 2
    first, second = calls[0].body, calls[-1].body
    assert first["stream"] is True and any(
        t["function"]["name"] == "read_file" for t in first["tools"]
    )
    tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool_messages and SECRET in json.dumps(tool_messages)
    assert output["stats"]["tools"]["byName"]["read_file"]["success"] == 1


def test_gemini_cli_tool_loop_through_anthropic(
    gemini_bin: Path, gateway: Gateway, upstreams: tuple[FakeOpenAI, FakeAnthropic], tmp_path: Path
) -> None:
    _, anthropic_fake = upstreams
    work, secret = workspace(tmp_path)
    anthropic_fake.script("reply", content=[tool_use("read_file", {"file_path": str(secret)})])
    before = len(anthropic_fake.requests)
    output = run_gemini_cli(
        gemini_bin, gateway, "claude-via-genroute", work, "What does secret.txt say?"
    )
    assert SECRET in output["response"]
    calls = anthropic_fake.requests[before:]
    assert len(calls) >= 2
    assert calls[0].body["stream"] is True
    results = [
        b
        for m in calls[-1].body["messages"]
        for b in (m["content"] if isinstance(m["content"], list) else [])
        if b.get("type") == "tool_result"
    ]
    assert results and SECRET in json.dumps(results)
    assert output["stats"]["tools"]["byName"]["read_file"]["success"] == 1


def requests_logged(gateway: InProcessGateway) -> list[str]:
    """The gateway's request log lines (JSON)."""
    return [line for line in gateway.log().splitlines() if line.startswith('{"timestamp"')]


def assert_default_names_served(fake: FakeOpenAI, before: int, models: set[str]) -> None:
    """gemini-cli called its own names (a classifier, then a pro model), each with a
    thinkingConfig; the fake refuses reasoning_effort to these models, as OpenAI does."""
    bodies = [r.body for r in fake.requests[before:]]
    assert bodies and {b["model"] for b in bodies} <= models
    assert all("reasoning_effort" not in b for b in bodies)


def test_gemini_cli_without_a_model_on_a_gemini_wildcard(
    gemini_bin: Path, gateway: Gateway, upstreams: tuple[FakeOpenAI, FakeAnthropic], tmp_path: Path
) -> None:
    openai_fake, _ = upstreams
    work, _ = workspace(tmp_path)
    before = len(openai_fake.requests)
    # Log lines are written off the loop: one of the previous test's calls may land after
    # this test starts, so this test's lines are told apart by their time, not position.
    now = time.time()
    started = (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
    )
    output = run_gemini_cli(gemini_bin, gateway, None, work, "Say hello.")
    assert "Say hello." in output["response"]
    assert_default_names_served(openai_fake, before, {"gpt-4o"})
    # The groups it asked for are its own names (the classifier's, then the one it picked).
    lines = [json.loads(line) for line in requests_logged(gateway)]
    asked = {line["model_group"] for line in lines if line["timestamp"] >= started}
    assert "gemini-3.5-flash-lite" in asked and asked <= set(GEMINI_CLI_MODELS)


def test_gemini_cli_without_a_model_on_the_embedded_default(
    gemini_bin: Path,
    upstreams: tuple[FakeOpenAI, FakeAnthropic],
    start_gateway: Any,
    tmp_path: Path,
) -> None:
    """A first run: `genroute serve` with no config and an OpenAI key serves gemini-cli's
    own names (on gpt-4.1 and gpt-4.1-mini, which do not reason)."""
    openai_fake, _ = upstreams
    env = {"OPENAI_API_KEY": "sk-openai-up", "OPENAI_API_BASE": f"{openai_fake.base_url}/v1"}
    gateway = start_gateway(None, env=env)
    work, _ = workspace(tmp_path)
    before = len(openai_fake.requests)
    output = run_gemini_cli(gemini_bin, gateway, None, work, "Say hello.")
    assert "Say hello." in output["response"]
    assert_default_names_served(openai_fake, before, {"gpt-4.1", "gpt-4.1-mini"})
