"""Shared pieces of bench/run.py and bench/features.py: paths, targets, servers, the
correctness check and one measured wrk run."""

from __future__ import annotations

import http.client
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fake_upstream import EXPECTED_TEXT
from proctools import Procs, cpu_seconds, machine_busy_seconds, signal_group

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"
LOGS = WORK / "logs"
UPSTREAM_KEY = "fake-upstream-key"
ERROR_KEYS = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
# ~300 bytes, re-encoded compactly; every target gets the same bytes
_REQUEST = json.loads((BENCH / "request.json").read_text())
REQUEST_BODY = json.dumps(_REQUEST, separators=(",", ":"))


def _openai_body(stream: bool) -> str:
    """The same request as REQUEST_BODY in Chat Completions form, for `direct-openai`."""
    config = _REQUEST["generationConfig"]
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": []}
    body["messages"].append(
        {"role": "system", "content": _REQUEST["systemInstruction"]["parts"][0]["text"]}
    )
    body["messages"].append(
        {"role": "user", "content": _REQUEST["contents"][0]["parts"][0]["text"]}
    )
    body |= {"temperature": config["temperature"], "max_tokens": config["maxOutputTokens"]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return json.dumps(body, separators=(",", ":"))


OPENAI_BODIES = {"generate": _openai_body(False), "stream": _openai_body(True)}


class BenchError(Exception):
    """A step failed; the message says which and why."""


@dataclass
class Target:
    """One server under test and what was learned about it.

    `api` is how wrk talks to it: `gemini` (the Gemini API, the key in x-goog-api-key) or
    `openai` (Chat Completions, `direct-openai` only, the key as a Bearer token)."""

    name: str
    port: int
    model: str
    pgid: int  # process group (= pid of the process started); the upstream's for `direct`
    key: str = ""  # what the client sends
    api: str = "gemini"
    start_s: float = 0.0
    upstream_paths: list[str] = field(default_factory=list)
    stream_events: int = 0
    idle_rss_mib: float = 0.0
    peak_rss_mib: float = 0.0
    is_upstream: bool = False  # `direct`: the process is the fake upstream, never paused
    notes: list[str] = field(default_factory=list)
    chunk_model: str = ""  # the model that streams 50 events (mode `stream-50`)

    def path(self, mode: str) -> str:
        """`generate`, `stream` (and `ttfb`, the same request) or `stream-50`."""
        if self.api == "openai":
            return "/v1/chat/completions"
        if mode.startswith("stream-"):
            return f"/v1beta/models/{self.chunk_model}:streamGenerateContent?alt=sse"
        if mode in ("stream", "ttfb"):
            return f"/v1beta/models/{self.model}:streamGenerateContent?alt=sse"
        return f"/v1beta/models/{self.model}:generateContent"

    def body(self, mode: str) -> str:
        return OPENAI_BODIES[mode] if self.api == "openai" else REQUEST_BODY

    def headers(self) -> dict[str, str]:
        if self.api == "openai":
            return {"Authorization": f"Bearer {self.key}"}
        return {"x-goog-api-key": self.key} if self.key else {}


@dataclass
class Cpus:
    """Which CPUs the targets and the load side (fake upstream + wrk) are pinned to."""

    target: str | None
    load: str | None

    def describe(self) -> str:
        if self.target is None:
            return "none (every process may run on every CPU)"
        return f"targets on CPU {self.target}; fake upstream and wrk on CPU {self.load}"


# ---------------------------------------------------------------- servers


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    for path in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}"):
        if found is None and os.access(path, os.X_OK):
            found = path
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render(template: str, out: Path, values: dict[str, object]) -> Path:
    """Fill the @@NAME@@ placeholders of a bench/ template into `out`."""
    text = (BENCH / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", str(value))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


def log_tail(name: str, lines: int = 15) -> str:
    try:
        return "\n".join((LOGS / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_ready(name: str, proc: subprocess.Popen[bytes], port: int, timeout: float) -> float:
    """Seconds until the port accepts connections; raises if the process dies or time runs out."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode}:\n{log_tail(name)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return time.monotonic() - start
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{name} not listening on {port} after {timeout:.0f} s:\n{log_tail(name)}")


# ---------------------------------------------------------------- correctness


def request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on a fresh connection: status, headers (lower-case names), body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        sent = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=None if body is None else body.encode(), headers=sent)
        resp = conn.getresponse()
        got = {name.lower(): value for name, value in resp.getheaders()}
        return resp.status, got, resp.read()
    finally:
        conn.close()


def post(port: int, path: str, key: str | None, body: str = REQUEST_BODY) -> tuple[int, bytes]:
    status, _, data = request(port, "POST", path, {"x-goog-api-key": key} if key else {}, body)
    return status, data


def upstream_paths(upstream_port: int) -> dict[str, int]:
    _, _, body = request(upstream_port, "GET", "/__stats")
    return dict(json.loads(body)["paths"])


def text_of(event: dict[str, Any]) -> str:
    parts = event["candidates"][0].get("content", {}).get("parts", [])
    return "".join(part.get("text", "") for part in parts)


def _openai_check(target: Target, mode: str, body: bytes) -> tuple[str, bool, int]:
    """(text, finished, events) of a Chat Completions answer."""
    if mode == "generate":
        choice = json.loads(body)["choices"][0]
        return choice["message"]["content"], choice["finish_reason"] == "stop", 1
    events = [
        json.loads(line[5:])
        for line in body.decode().splitlines()
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]")
    ]
    choices = [c for e in events for c in e.get("choices", [])]
    text = "".join(c.get("delta", {}).get("content") or "" for c in choices)
    return text, any(c.get("finish_reason") == "stop" for c in choices), len(events)


def verify(target: Target, upstream_port: int) -> None:
    """One request of each kind must return 200 and the fake upstream's text."""
    before = upstream_paths(upstream_port)
    for mode in ("generate", "stream"):
        status, _, body = request(
            target.port, "POST", target.path(mode), target.headers(), target.body(mode)
        )
        if status != 200:
            raise BenchError(f"{target.name}: {mode} returned {status}: {body[:300]!r}")
        if target.api == "openai":
            got, finished, count = _openai_check(target, mode, body)
        elif mode == "generate":
            answer = json.loads(body)
            got, count = text_of(answer), 1
            finished = answer["candidates"][0].get("finishReason") == "STOP"
        else:
            events = [
                json.loads(line[5:])
                for line in body.decode().splitlines()
                if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]")
            ]
            got = "".join(text_of(event) for event in events if event.get("candidates"))
            last: dict[str, Any] = next((e for e in reversed(events) if e.get("candidates")), {})
            finished = last.get("candidates", [{}])[0].get("finishReason") == "STOP"
            count = len(events)
        if got != EXPECTED_TEXT or not finished:
            raise BenchError(f"{target.name}: {mode} text/finish reason wrong: {body[:400]!r}")
        if mode == "stream":
            target.stream_events = count
    after = upstream_paths(upstream_port)
    target.upstream_paths = sorted(p for p, n in after.items() if n > before.get(p, 0))


# ---------------------------------------------------------------- load


def run_wrk(
    target: Target, mode: str, conns: int, threads: int, seconds: float, cpu: str | None
) -> dict[str, Any]:
    """One wrk run (whole seconds: wrk takes no fractions); its BENCH_JSON summary plus wrk's
    own CPU seconds."""
    cmd, env = wrk_command(target, mode, conns, threads, seconds, cpu)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = wrk_summary(target, out.returncode, out.stdout, out.stderr)
    summary["wrk_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return summary


def wrk_summary(target: Target, returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
    """The BENCH_JSON line wrk_post.lua prints."""
    line = next((x for x in stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({returncode}) on {target.name}: {stderr[-500:]}")
    summary: dict[str, Any] = json.loads(line.split(" ", 1)[1])
    return summary


def wrk_command(
    target: Target, mode: str, conns: int, threads: int, seconds: float, cpu: str | None
) -> tuple[list[str], dict[str, str]]:
    """The wrk command line (pinned to `cpu`) and its environment for one run."""
    env = {**os.environ, "BENCH_PATH": target.path(mode), "BENCH_BODY": target.body(mode)}
    header, value = next(iter(target.headers().items()), ("x-goog-api-key", "none"))
    env |= {"BENCH_KEY_HEADER": header, "BENCH_KEY": value}
    cmd = ["taskset", "-c", cpu] if cpu is not None else []
    cmd += [
        "wrk",
        f"-t{threads}",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    cmd += ["-s", str(BENCH / "wrk_post.lua"), f"http://127.0.0.1:{target.port}"]
    return cmd, env


def pause(targets: list[Target], running: Target | None) -> None:
    """SIGCONT `running`, SIGSTOP every other gateway (never the upstream, which `direct` is).
    With `running` None, every gateway is continued."""
    for target in targets:
        if not target.is_upstream:
            go = running is None or target is running
            signal_group(target.pgid, signal.SIGCONT if go else signal.SIGSTOP)


def measure_run(
    target: Target,
    mode: str,
    conns: int,
    threads: int,
    durations: tuple[float, float],
    cpus: Cpus,
    upstream_pid: int,
) -> dict[str, Any]:
    """A warm-up (thrown away) and a measured wrk run on one target: one result row."""
    warmup, duration = durations
    warm = run_wrk(target, mode, conns, threads, warmup, cpus.load) if warmup > 0 else {}
    t0, up0 = cpu_seconds(target.pgid), cpu_seconds(upstream_pid)
    all0 = machine_busy_seconds()
    res = run_wrk(target, mode, conns, threads, duration, cpus.load)
    busy = machine_busy_seconds() - all0
    wall = res["duration_us"] / 1e6
    up_pct = 100 * (cpu_seconds(upstream_pid) - up0) / wall
    own_s = cpu_seconds(target.pgid) - t0  # the upstream's for direct
    own_pct = 100 * own_s / wall
    wrk_pct = 100 * res["wrk_cpu_s"] / wall
    ours = up_pct + wrk_pct + (0 if target.is_upstream else own_pct)
    row: dict[str, Any] = {"target": target.name, "mode": mode, "conns": conns}
    row |= res | {"threads": threads, "rps": res["requests"] / wall}
    row["errors"] = sum(res[k] for k in ERROR_KEYS)
    row["warmup_requests"] = warm.get("requests", 0)
    row |= {"target_cpu_pct": own_pct, "upstream_cpu_pct": up_pct, "wrk_cpu_pct": wrk_pct}
    # CPU time of the target's process tree (all its threads) per request served
    row["target_cpu_s"] = own_s
    row["cpu_us_per_req"] = 1e6 * own_s / res["requests"] if res["requests"] else 0.0
    row["other_cpu_pct"] = max(0.0, 100 * busy / wall - ours)
    return row


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ttfb_client(target: Target, seconds: float) -> dict[str, Any]:
    """Streams one after another on one keep-alive connection (c=1) for `seconds`: the time
    to the first byte of the response, to the first byte of the first event (`data:`), and
    to the end of the stream (the chunked terminator), in µs."""
    body = target.body("stream").encode()
    head = f"POST {target.path('ttfb')} HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\n"
    head += "Content-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in target.headers().items())
    request_bytes = head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    first_byte: list[float] = []
    first_event: list[float] = []
    total: list[float] = []
    errors = 0
    sock = socket.create_connection(("127.0.0.1", target.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    clock = time.perf_counter_ns
    start = clock()
    deadline = start + int(seconds * 1e9)
    try:
        while clock() < deadline:
            t0 = clock()
            sock.sendall(request_bytes)
            buf = b""
            t_byte = t_event = 0
            while True:
                data = sock.recv(65536)
                if not data:
                    raise BenchError(f"{target.name}: connection closed mid-stream")
                now = clock()
                if not t_byte:
                    t_byte = now
                buf += data
                if not t_event:
                    head_end = buf.find(b"\r\n\r\n")
                    if head_end >= 0 and not buf.startswith(b"HTTP/1.1 200"):
                        raise BenchError(f"{target.name}: {buf[:200]!r}")
                    if head_end >= 0 and buf.find(b"data:", head_end) >= 0:
                        t_event = now
                if t_event and buf.endswith(b"\r\n0\r\n\r\n"):
                    break
            first_byte.append((t_byte - t0) / 1000)
            first_event.append((t_event - t0) / 1000)
            total.append((now - t0) / 1000)
    except (OSError, BenchError):
        errors += 1
    finally:
        sock.close()
    duration_us = (clock() - start) / 1000
    return {
        "requests": len(total),
        "duration_us": duration_us,
        "errors": errors,
        "p50_us": _percentile(total, 0.5),
        "p90_us": _percentile(total, 0.9),
        "p99_us": _percentile(total, 0.99),
        "ttfb_p50_us": _percentile(first_event, 0.5),
        "ttfb_p99_us": _percentile(first_event, 0.99),
        "first_byte_p50_us": _percentile(first_byte, 0.5),
    }


def measure_ttfb(
    target: Target, durations: tuple[float, float], cpus: Cpus, upstream_pid: int
) -> dict[str, Any]:
    """A warm-up and a measured `ttfb_client` run (this process pinned to the load CPU, as
    wrk would be): one result row, with the columns of a wrk row where they apply."""
    warmup, duration = durations
    mask = os.sched_getaffinity(0)
    if cpus.load is not None:
        os.sched_setaffinity(0, {int(c) for c in cpus.load.split(",")})
    try:
        if warmup > 0:
            ttfb_client(target, warmup)
        t0, up0, all0 = cpu_seconds(target.pgid), cpu_seconds(upstream_pid), machine_busy_seconds()
        me0 = time.thread_time()
        res = ttfb_client(target, duration)
        me = time.thread_time() - me0
        busy = machine_busy_seconds() - all0
        own_s, up_s = cpu_seconds(target.pgid) - t0, cpu_seconds(upstream_pid) - up0
    finally:
        os.sched_setaffinity(0, mask)
    wall = res["duration_us"] / 1e6
    row: dict[str, Any] = {"target": target.name, "mode": "ttfb", "conns": 1, "threads": 1}
    row |= res | {"rps": res["requests"] / wall, "warmup_requests": 0}
    own_pct = 0.0 if target.is_upstream else 100 * own_s / wall
    row |= {"target_cpu_pct": 100 * own_s / wall, "upstream_cpu_pct": 100 * up_s / wall}
    row["wrk_cpu_pct"] = 100 * me / wall  # the Python client's own CPU
    row["other_cpu_pct"] = max(0.0, 100 * busy / wall - own_pct - row["upstream_cpu_pct"])
    row["other_cpu_pct"] = max(0.0, row["other_cpu_pct"] - row["wrk_cpu_pct"])
    row["target_cpu_s"] = own_s
    row["cpu_us_per_req"] = 1e6 * own_s / res["requests"] if res["requests"] else 0.0
    for key in ERROR_KEYS:
        row[key] = 0
    return row


def ms(us: float) -> str:
    return f"{us / 1000:.2f}"


# ---------------------------------------------------------------- gateways

LEAN_OBSERVABILITY = {
    "logs": {"enabled": False},
    "metrics": {"enabled": False},
    "tracing": {"enabled": False},
}


def clean_env() -> dict[str, str]:
    """This process's environment without what would change a gateway's behaviour."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.pop("DATABASE_URL", None)
    return env


GENROUTE = Path(sys.executable).with_name("genroute")
# The genroute under test: this checkout's by default; bench/run.py --genroute changes it.
_UNDER_TEST = [GENROUTE]


def use_genroute(exe: Path) -> None:
    """Run `exe` (another checkout's genroute) for every genroute target from now on."""
    _UNDER_TEST[0] = exe


def genroute_exe() -> Path:
    return _UNDER_TEST[0]


def start_genroute(
    procs: Procs,
    name: str,
    conf: Path,
    cpu: str | None,
    env: dict[str, str] | None = None,
    *,
    workers: int = 1,
    exe: Path | None = None,
) -> tuple[int, int, float]:
    """`genroute serve --workers N` (`exe`: another checkout's genroute, for the baseline) on
    a free port: (port, pid, seconds to listen)."""
    port = free_port()
    argv = [str(exe or genroute_exe()), "serve", "--config", str(conf), "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", str(workers)]
    proc = procs.start(name, argv, cpu, {**clean_env(), **(env or {})}, cwd=conf.parent)
    return port, proc.pid, wait_ready(name, proc, port, 60)


def start_litellm(procs: Procs, name: str, exe: Path, conf: Path, cpu: str | None) -> Target:
    """`litellm --num_workers 1` on a free port, with no database, telemetry or cost-map fetch."""
    port = free_port()
    argv = [str(exe), "--config", str(conf), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--num_workers", "1"]
    env = clean_env()  # no DATABASE_URL: keys are checked against the master key
    env |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
    env |= {"LITELLM_TELEMETRY": "False", "NO_COLOR": "1"}
    proc = procs.start(name, argv, cpu, env)
    start_s = wait_ready(name, proc, port, 180)  # its start-up imports take several seconds
    return Target(name, port, "", proc.pid, start_s=start_s)


def start_python_proxy(
    procs: Procs, name: str, upstream_port: int, cpu: str | None, key_header: str = "x-goog-api-key"
) -> Target:
    """bench/python_proxy.py (aiohttp server + client, uvloop), one process, on a free port."""
    port = free_port()
    argv = [sys.executable, str(BENCH / "python_proxy.py"), "--port", str(port)]
    argv += ["--upstream", f"http://127.0.0.1:{upstream_port}", "--upstream-key", UPSTREAM_KEY]
    argv += ["--key-header", key_header]
    proc = procs.start(name, argv, cpu, clean_env())
    start_s = wait_ready(name, proc, port, 30)
    return Target(name, port, "gemini-2.5-flash", proc.pid, start_s=start_s)
