"""Shared fixtures: genroute serving on a free port (in this process, or as a real
`genroute serve` process), service checks, and a test session free of provider keys."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml

from tests.fakes.sockets import tcp_listener

ROOT = Path(__file__).resolve().parent.parent
# Provider keys and base URLs from the developer's shell must not leak into test gateways.
PROVIDER_ENV_PREFIXES = (
    "GEMINI_", "GOOGLE_API_KEY", "GOOGLE_GEMINI_", "OPENAI_", "AZURE_", "ANTHROPIC_", "GROQ_",
    "DEEPSEEK_", "OPENROUTER_", "MISTRAL_", "TOGETHER", "XAI_", "HOSTED_VLLM_", "OLLAMA_",
    "AWS_",
)  # fmt: skip
POSTGRES_URL = os.environ.get("GENROUTE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GENROUTE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Once the tests are collected, what collecting made (every test module, the SDKs'
    types, the fakes) is moved out of the garbage collector's sight, as `genroute serve`
    does with its start-up heap (`settle_heap`): it lives for the whole run, and re-scanning
    it made each full collection ~0.4 s (GC time over the governance, store, routing,
    providers, fuzz and bounded-memory tests: 6.5 s of 45 s of CPU, 3.9 s with this)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True, scope="session")
def _no_provider_keys_from_the_shell() -> Iterator[None]:
    """Keys and base URLs from the developer's shell must not reach test gateways (nor
    in-process ones): a test that wants one sets it."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(PROVIDER_ENV_PREFIXES)}
    for name in saved:
        del os.environ[name]
    yield
    os.environ.update(saved)


@pytest.fixture(autouse=True, scope="session")
def _close_refusing_ports() -> Iterator[None]:
    yield
    while _REFUSING:
        _REFUSING.pop().close()


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


# One TLS context for every google-genai client the tests make: each client would otherwise
# load the CA bundle three times (httpx, aiohttp, websockets), ~90 ms per client.
_TLS = ssl.create_default_context()


def genai_client(base_url: str, key: str, version: str = "v1beta", **options: Any) -> Any:
    """The official google-genai client pointed at `base_url` (a gateway or a fake)."""
    from google import genai
    from google.genai import types

    http = types.HttpOptions(
        base_url=base_url,
        api_version=version,
        client_args={"verify": _TLS},
        async_client_args={"ssl": _TLS},
        **options,
    )
    return genai.Client(api_key=key, http_options=http)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a subprocess to
    bind; something else may take it first, see Gateway)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_REFUSING: list[socket.socket] = []


def refused_port() -> int:
    """A port on 127.0.0.1 where every connection is refused, for as long as the tests
    run: it is bound here and never listened on, so no other test (nor xdist worker) can
    start a server on it."""
    if not _REFUSING:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        _REFUSING.append(sock)
    return int(_REFUSING[0].getsockname()[1])


class _Server(uvicorn.Server):
    """uvicorn's server, looking every 5 ms instead of every 100 ms for `should_exit` and,
    once stopping, for its connections and requests to end, so that stopping an in-process
    gateway does not wait out ticks (uvicorn's own shutdown waits 0.1 s at least)."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(0.005)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """As uvicorn's: stop listening, ask every connection to close, wait for the
        connections and requests in flight to end (at most the graceful timeout, then
        cancel them), then run the lifespan's shutdown."""
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        deadline = time.monotonic() + (self.config.timeout_graceful_shutdown or 0)
        state = self.server_state
        while (state.connections or state.tasks) and not self.force_exit:
            if time.monotonic() > deadline:
                for task in state.tasks:
                    task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
                break
            await asyncio.sleep(0.005)
        if not self.force_exit:
            await self.lifespan.shutdown()


class InProcessGateway:
    """genroute's ASGI app on uvicorn in a thread of this process: the same app, routes and
    lifespan as `genroute serve`, without starting an interpreter. Its Python log records
    (the `genroute` loggers) and request log lines go to a file, which `log()` reads."""

    def __init__(self, config: dict[str, Any] | None, tmp: Path) -> None:
        from genroute.cli.serve import load_config
        from genroute.defaults import default_config
        from genroute.server import create_app

        # Bound here and handed to uvicorn: no window in which another server takes it.
        self._socket = tcp_listener()
        self.port = int(self._socket.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"gateway-{self.port}.log"
        self.log_path.touch()
        if config is not None:
            config = dict(config)
            observability = dict(config.get("observability") or {})
            logs = dict(observability.get("logs") or {})
            logs.setdefault("destination", str(self.log_path))
            observability["logs"] = logs
            config["observability"] = observability
            path = tmp / f"config-{self.port}.yaml"
            path.write_text(yaml.safe_dump(config))
            loaded = load_config(path)
        else:
            loaded = default_config()
        self._handler = logging.FileHandler(self.log_path)
        self._handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger("genroute").addHandler(self._handler)
        self.app = create_app(loaded)
        settings = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            loop="asyncio",
            http="httptools",
            lifespan="on",
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=10,
        )
        self.server = _Server(settings)
        self._thread = threading.Thread(target=self._run, name=f"gateway-{self.port}")
        self._thread.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self._socket]))

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"genroute did not start:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"genroute did not start in {timeout}s:\n{self.log()}")
            time.sleep(0.005)

    def log(self) -> str:
        """What the gateway logged so far."""
        self._handler.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Shut down as on SIGTERM: finish requests, run the lifespan shutdown, join."""
        self.server.should_exit = True
        self._thread.join(30)
        self._socket.close()
        logging.getLogger("genroute").removeHandler(self._handler)
        self._handler.close()


def mid_minute() -> float:
    """A wall-clock time in the middle of the current minute."""
    return (time.time() // 60) * 60 + 30


def freeze_limits(*gateways: InProcessGateway) -> None:
    """Run the gateways' rate limiters on a clock stopped in the middle of a minute, so
    that a test never straddles the start of a new one."""
    now = mid_minute()
    for gateway in gateways:
        governance = gateway.app.governance
        assert governance is not None
        governance.limiter._clock = lambda: now  # type: ignore[attr-defined]


def advance_key_cache(gateway: InProcessGateway, seconds: float) -> None:
    """Move the gateway's key cache forward in time (its rows go stale after the TTL)."""
    governance = gateway.app.governance
    assert governance is not None
    cache = governance.cache
    clock = cache.clock
    cache.clock = lambda: clock() + seconds


def eventually(check: Any, seconds: float = 5.0) -> None:
    """Poll `check()` every 10 ms until it is true (for changes that travel through Redis)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class Gateway:
    """A `genroute serve` subprocess (for the CLI, environment variables, signals and
    several workers; everything else uses InProcessGateway)."""

    def __init__(
        self,
        config: dict[str, Any] | None,
        tmp: Path,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(PROVIDER_ENV_PREFIXES)}
        full_env.update(env or {})
        for attempt in range(3):
            # The port is free when chosen; another server (another xdist worker's) may
            # still take it before this process binds it: then choose another.
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
            self.proc = subprocess.Popen(
                args, stdout=self._log, stderr=subprocess.STDOUT, env=full_env, cwd=ROOT
            )
            try:
                self._wait_ready()
                return
            except BaseException:
                self.stop()
                if attempt == 2 or "address already in use" not in self.log().lower():
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
    """Factory: `start_gateway(config_dict_or_None, env=...)` → a running gateway: in this
    process, or a `genroute serve` process when `env` is given or `process=True`."""
    started: list[Gateway | InProcessGateway] = []

    def start(
        config: dict[str, Any] | None,
        env: dict[str, str] | None = None,
        *,
        process: bool = False,
    ) -> Gateway | InProcessGateway:
        gateway: Gateway | InProcessGateway
        if env is not None or process:
            gateway = Gateway(config, tmp_path, env)
        else:
            gateway = InProcessGateway(config, tmp_path)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()
