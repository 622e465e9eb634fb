"""Shared fixtures: a real genroute server process on a free port, and service checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# Provider keys and base URLs from the developer's shell must not leak into test gateways.
PROVIDER_ENV_PREFIXES = (
    "GEMINI_", "GOOGLE_API_KEY", "GOOGLE_GEMINI_", "OPENAI_", "AZURE_", "ANTHROPIC_", "GROQ_",
    "DEEPSEEK_", "OPENROUTER_", "MISTRAL_", "TOGETHER", "XAI_", "HOSTED_VLLM_", "OLLAMA_",
)  # fmt: skip
POSTGRES_URL = os.environ.get("GENROUTE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GENROUTE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def in_ci() -> bool:
    """Whether this run is CI's (CI=true), where missing prerequisites fail instead of skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a service is not listening, except in CI (CI=true), where that fails."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as exc:
        message = f"{name} is not reachable on {host}:{port} ({exc})"
        if in_ci():
            pytest.fail(f"{message}; CI must have it running")
        pytest.skip(f"{message}; start it to run this test")


@pytest.fixture
def postgres_url() -> str:
    """A PostgreSQL URL for real tests (the machine's server, database `test`)."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


@pytest.fixture
def redis_url() -> str:
    """A Redis URL for real tests (the machine's server)."""
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gateway:
    """A `genroute serve` subprocess."""

    def __init__(
        self,
        config: dict[str, Any] | None,
        tmp: Path,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "genroute.cli", "serve", "--port", str(self.port)]
        if config is not None:
            path = tmp / f"config-{self.port}.yaml"
            path.write_text(yaml.safe_dump(config))
            args += ["--config", str(path)]
        args += extra_args or []
        self.log_path = tmp / f"gateway-{self.port}.log"
        self._log = self.log_path.open("wb")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(PROVIDER_ENV_PREFIXES)}
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"genroute exited early:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"genroute did not start in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        """Everything the process printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then wait (kill after 10 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Any]:
    """Factory: `start_gateway(config_dict_or_None, env=...)` → a running Gateway."""
    started: list[Gateway] = []

    def start(config: dict[str, Any] | None, env: dict[str, str] | None = None) -> Gateway:
        gateway = Gateway(config, tmp_path, env)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()
