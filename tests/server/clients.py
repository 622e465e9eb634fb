"""The real clients the end-to-end tests drive, and one gateway for them to drive.

scripts/test installs them: the Python client libraries into `.venv-clients` from
`tests/clients/requirements.txt` (several pin google-genai < 3, genroute's own test extras
use 3.x), the Node ones into `tests/clients/node_modules` from `package-lock.json`. Each
client runs a check script of `tests/clients/` as a subprocess against the gateway's URL;
the script prints one JSON report (see tests/clients/python/checks.py): `run_checks()`
runs one, `passed()` reads one check of it, `sent()` the requests the client sent.

`client_gateway()` is genroute in front of fake Gemini, OpenAI and Anthropic upstreams,
with the groups the scripts name (`GROUPS`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROVIDER_ENV_PREFIXES, ROOT, InProcessGateway, in_ci
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import DEFAULT_KEY, FakeOpenAI

CLIENTS = ROOT / "tests" / "clients"
REQUIREMENTS = CLIENTS / "requirements.txt"
CLIENTS_VENV = ROOT / ".venv-clients"
# scripts/test copies the requirements it installed here: a venv without it is unfinished.
INSTALLED = CLIENTS_VENV / "installed-requirements.txt"
KEY = "sk-clients-master"
# The paths Vertex AI clients call: with a project (and a bearer token), and in express mode.
VERTEX = "/v1beta1/projects/my-project/locations/us-central1/publishers/google/models"
EXPRESS = "/v1beta1/publishers/google/models"
ANTHROPIC_KEY, GEMINI_KEY = "sk-ant-upstream", "gemini-upstream-key"
# The groups the client scripts call, and what serves them.
GROUPS = {
    "gemini-2.5-flash": "gemini/gemini-2.5-flash (the Gemini passthrough)",
    "gemini-*": "openai/gpt-4o (does not reason: a client's thinkingConfig must not reach it)",
    "gpt-group": "openai/gpt-4o-mini",
    "claude-group": "anthropic/claude-sonnet-4-5",
    "reasoner": "openai/o4-mini (refuses sampling settings and max_tokens)",
    "embedder": "openai/text-embedding-3-small (an embedding model by its model facts)",
    "tunedModels/my-tune": "openai/gpt-4.1",
}


def _missing(message: str) -> None:
    if in_ci():
        pytest.fail(f"{message}; CI must have it (scripts/test installs it)")
    pytest.skip(message)


def clients_python() -> Path:
    """The Python of `.venv-clients`, where the Python clients are installed."""
    python = CLIENTS_VENV / "bin" / "python"
    if not python.exists():
        _missing(f"{python} is missing: run ./scripts/test, which creates it from {REQUIREMENTS}")
    if not INSTALLED.exists() or INSTALLED.read_text() != REQUIREMENTS.read_text():
        _missing(
            f"{CLIENTS_VENV} is not installed from the current {REQUIREMENTS}: run ./scripts/test"
        )
    return python


def node_client(package: str) -> str:
    """The `node` binary, once the npm package (from package-lock.json) is installed."""
    node = shutil.which("node")
    if node is None or not (CLIENTS / "node_modules" / package / "package.json").exists():
        _missing(
            f"node or {package} is missing: run `npm ci --prefix tests/clients` (scripts/test does)"
        )
    assert node is not None
    return node


def client_env() -> dict[str, str]:
    """The environment of a client process: no provider keys or Google settings of the shell."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith((*PROVIDER_ENV_PREFIXES, "GOOGLE_", "VERTEXAI_", "LITELLM_"))
    }
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # LiteLLM fetches its price list otherwise
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_checks(command: list[str], args: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    """Run a check script with its JSON argument; its JSON report."""
    result = subprocess.run(
        [*command, json.dumps(args)],
        cwd=CLIENTS,
        env=client_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0 and result.stdout.strip(), (
        f"{command[-1]} failed ({result.returncode}):\n{result.stderr[-4000:]}"
    )
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def passed(report: dict[str, Any], name: str) -> Any:
    """The value of one check, which must have passed."""
    check = report[name]
    assert check["ok"], f"{name}: {check['error']}\n{check.get('trace', '')}"
    return check["value"]


def sent(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """The requests the client sent during one check (method, path, query, auth, body)."""
    requests: list[dict[str, Any]] = report[name]["http"]
    return requests


def paths(report: dict[str, Any], name: str) -> list[str]:
    """`METHOD /path` of each request the client sent during one check."""
    return [f"{r['method']} {r['path']}" for r in sent(report, name)]


def upstream_bodies(fake: FakeOpenAI | FakeAnthropic | FakeGemini, marker: str) -> list[Any]:
    """The bodies a fake upstream received whose JSON contains `marker`."""
    return [r.body for r in fake.requests if marker in json.dumps(r.body)]


@dataclass
class Upstreams:
    """The three fake upstreams behind the client gateway."""

    openai: FakeOpenAI
    anthropic: FakeAnthropic
    gemini: FakeGemini

    def reset(self) -> None:
        for fake in (self.openai, self.anthropic, self.gemini):
            fake.reset()


@contextmanager
def client_gateway(tmp: Path) -> Iterator[tuple[InProcessGateway, Upstreams]]:
    """genroute with `GROUPS` in front of fresh fakes, a master key and a SQLite store."""
    with (
        FakeOpenAI(pause=0.001) as openai,
        FakeAnthropic(ANTHROPIC_KEY) as anthropic,
        FakeGemini(GEMINI_KEY, pause=0.001) as gemini,
    ):

        def on_openai(model: str) -> dict[str, Any]:
            return {"model": f"openai/{model}", "api_key": DEFAULT_KEY, "api_base": openai.base_url}

        config = {
            "model_list": [
                {
                    "model_name": "gemini-2.5-flash",
                    "params": {
                        "model": "gemini/gemini-2.5-flash",
                        "api_key": GEMINI_KEY,
                        "api_base": gemini.base_url,
                    },
                },
                {"model_name": "gemini-*", "params": on_openai("gpt-4o")},
                {"model_name": "gpt-group", "params": on_openai("gpt-4o-mini")},
                {
                    "model_name": "claude-group",
                    "params": {
                        "model": "anthropic/claude-sonnet-4-5",
                        "api_key": ANTHROPIC_KEY,
                        "api_base": anthropic.base_url,
                    },
                },
                {"model_name": "reasoner", "params": on_openai("o4-mini")},
                {"model_name": "embedder", "params": on_openai("text-embedding-3-small")},
                {"model_name": "tunedModels/my-tune", "params": on_openai("gpt-4.1")},
            ],
            "general_settings": {
                "master_key": KEY,
                "database_url": f"sqlite:///{tmp / 'clients.db'}",
            },
        }
        gateway = InProcessGateway(config, tmp)
        try:
            yield gateway, Upstreams(openai, anthropic, gemini)
        finally:
            gateway.stop()
