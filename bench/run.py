"""Benchmark genroute against a direct call, nginx and LiteLLM, side by side on 127.0.0.1.

Run by hand from the repository root (it is not a test)::

    .venv/bin/python bench/run.py [--only genroute,nginx] [--duration 8] [--skip-litellm]

It installs what is missing (nginx and wrk through apt-get, LiteLLM's proxy into
bench/.work/litellm-venv), starts a fake Gemini upstream (bench/fake_upstream.py) and one
server per target, each on its own port:

* ``direct``: wrk straight to the fake upstream, the baseline;
* ``nginx``: ``proxy_pass`` with a keep-alive upstream pool, one worker;
* ``genroute``: ``genroute serve``, one worker;
* ``litellm``: ``litellm --num_workers 1``, through its Google route ``/v1beta/models/...``.

Each target is checked first (one generateContent and one streamGenerateContent?alt=sse
request must return 200 and the expected text); then wrk loads it with and without streaming
at concurrency 1 and 32, each run after a warm-up. Targets take turns, scenario by scenario,
and the gateways not being measured are paused (SIGSTOP) so their idle work cannot steal CPU.
By default the targets run on CPU 0 and the fake upstream and wrk on CPU 1.

Prints a markdown table and writes it to bench/results.md, and the raw numbers to
bench/.work/results.json. Everything started is stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# bench/ is on sys.path when this runs as a script
from fake_upstream import EXPECTED_TEXT
from proctools import Procs, cpu_seconds, machine_busy_seconds, signal_group, tree_mib

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
WORK = BENCH / ".work"
LOGS = WORK / "logs"
LITELLM_VENV = WORK / "litellm-venv"
UPSTREAM_KEY = "fake-upstream-key"
TARGETS = ("direct", "nginx", "genroute", "litellm")
ERROR_KEYS = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
SCENARIOS = (("generate", 1, 1), ("generate", 32, 2), ("stream", 1, 1), ("stream", 32, 2))
# ~300 bytes, re-encoded compactly; every target gets the same bytes
REQUEST_BODY = json.dumps(json.loads((BENCH / "request.json").read_text()), separators=(",", ":"))


class BenchError(Exception):
    """A step failed; the message says which and why."""


@dataclass
class Target:
    """One server under test and what was learned about it."""

    name: str
    port: int
    model: str
    pgid: int  # process group (= pid of the process started); the upstream's for `direct`
    start_s: float = 0.0
    upstream_paths: list[str] = field(default_factory=list)
    stream_events: int = 0
    idle_rss_mib: float = 0.0
    peak_rss_mib: float = 0.0

    def path(self, mode: str) -> str:
        if mode == "stream":
            return f"/v1beta/models/{self.model}:streamGenerateContent?alt=sse"
        return f"/v1beta/models/{self.model}:generateContent"


# ---------------------------------------------------------------- installation


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    for path in (f"/usr/sbin/{name}", f"/usr/local/sbin/{name}"):
        if found is None and os.access(path, os.X_OK):
            found = path
    return found


def run_logged(
    cmd: list[str], log_name: str, timeout: float, env: dict[str, str] | None = None
) -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / log_name, "ab") as log:
        return subprocess.run(
            cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, env=env
        ).returncode


def ensure_system_tools() -> None:
    """apt-get install nginx and wrk when they are not on the machine."""
    missing = [name for name in ("nginx", "wrk", "taskset") if find_binary(name) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BenchError(f"missing {', '.join(missing)}: install them (as root: apt-get install)")
    print(f"installing {', '.join(missing)} with apt-get (log: {LOGS / 'apt.log'}) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run_logged(["apt-get", "update", "-q"], "apt.log", 600, env)
    packages = {"nginx": ["nginx-light", "nginx"], "wrk": ["wrk"], "taskset": ["util-linux"]}
    for name in missing:
        for package in packages[name]:
            if run_logged(["apt-get", "install", "-y", "-q", package], "apt.log", 600, env) == 0:
                break
        if find_binary(name) is None:
            raise BenchError(f"could not install {name}; see {LOGS / 'apt.log'}")


def ensure_litellm() -> Path:
    """LiteLLM's proxy in its own venv under bench/.work, reused when already there."""
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    print(f"installing litellm[proxy] into {LITELLM_VENV} (log: {LOGS / 'litellm-install.log'})")
    base = shutil.which("python3") or sys.executable
    if run_logged([base, "-m", "venv", str(LITELLM_VENV)], "litellm-install.log", 300) != 0:
        raise BenchError("could not create the LiteLLM venv")
    pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    if run_logged([*pip, "litellm[proxy]"], "litellm-install.log", 1200) != 0 or not exe.exists():
        raise BenchError(f"pip install 'litellm[proxy]' failed; see {LOGS / 'litellm-install.log'}")
    return exe


# ---------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render(template: str, out: Path, values: dict[str, object]) -> Path:
    """Fill the @@NAME@@ placeholders of a bench/ template into `out`."""
    text = (BENCH / template).read_text()
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", str(value))
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


def start_target(
    name: str, procs: Procs, upstream_port: int, cpu: str | None, key: str, litellm: Path | None
) -> Target:
    port, env, prefix = free_port(), dict(os.environ), WORK / "nginx"
    values: dict[str, object] = {"PORT": port, "UPSTREAM_PORT": upstream_port, "PREFIX": prefix}
    values |= {"UPSTREAM_KEY": UPSTREAM_KEY, "MASTER_KEY": key}
    model, timeout = "gemini-2.5-flash", 60.0
    if name == "nginx":
        (prefix / "tmp").mkdir(parents=True, exist_ok=True)
        conf = render("nginx.conf.template", prefix / "nginx.conf", values)
        nginx = find_binary("nginx") or "nginx"
        argv = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    elif name == "genroute":
        conf = render("genroute_config.yaml.template", WORK / "genroute.yaml", values)
        for stale in WORK.glob("genroute.db*"):  # its spend ledger, in its cwd: start afresh
            stale.unlink()
        exe = Path(sys.executable).with_name("genroute")
        argv = [str(exe), "serve", "--config", str(conf), "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--workers", "1"]
        model = "bench-model"
    else:
        assert litellm is not None
        conf = render("litellm_config.yaml.template", WORK / "litellm.yaml", values)
        argv = [str(litellm), "--config", str(conf), "--host", "127.0.0.1", "--port", str(port)]
        argv += ["--num_workers", "1"]
        env.pop("DATABASE_URL", None)  # no database: keys are checked against the master key
        env |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
        env |= {"LITELLM_TELEMETRY": "False", "NO_COLOR": "1"}
        timeout = 180.0  # its start-up imports take several seconds
    proc = procs.start(name, argv, cpu, env)
    return Target(name, port, model, proc.pid, start_s=wait_ready(name, proc, port, timeout))


# ---------------------------------------------------------------- correctness


def post(port: int, path: str, key: str | None, body: str = REQUEST_BODY) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["x-goog-api-key"] = key
    try:
        conn.request("POST", path, body=body.encode(), headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def upstream_paths(upstream_port: int) -> dict[str, int]:
    conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=10)
    try:
        conn.request("GET", "/__stats")
        return dict(json.loads(conn.getresponse().read())["paths"])
    finally:
        conn.close()


def text_of(event: dict[str, Any]) -> str:
    parts = event["candidates"][0].get("content", {}).get("parts", [])
    return "".join(part.get("text", "") for part in parts)


def verify(target: Target, key: str, upstream_port: int) -> None:
    """One request of each kind must return 200 and the fake upstream's text."""
    before = upstream_paths(upstream_port)
    status, body = post(target.port, target.path("generate"), key)
    if status != 200:
        raise BenchError(f"{target.name}: generateContent returned {status}: {body[:300]!r}")
    if (got := text_of(json.loads(body))) != EXPECTED_TEXT:
        raise BenchError(f"{target.name}: generateContent text differs: {got[:200]!r}")
    status, body = post(target.port, target.path("stream"), key)
    if status != 200:
        raise BenchError(f"{target.name}: stream returned {status}: {body[:300]!r}")
    events = [
        json.loads(line[5:])
        for line in body.decode().splitlines()
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]")
    ]
    got = "".join(text_of(event) for event in events if event.get("candidates"))
    last: dict[str, Any] = next((e for e in reversed(events) if e.get("candidates")), {})
    if got != EXPECTED_TEXT or last.get("candidates", [{}])[0].get("finishReason") != "STOP":
        raise BenchError(f"{target.name}: stream text/finishReason wrong: {body[:400]!r}")
    target.stream_events = len(events)
    after = upstream_paths(upstream_port)
    target.upstream_paths = sorted(p for p, n in after.items() if n > before.get(p, 0))


# ---------------------------------------------------------------- load


def run_wrk(
    target: Target, mode: str, conns: int, threads: int, seconds: float, key: str, cpu: str | None
) -> dict[str, Any]:
    """One wrk run; returns its BENCH_JSON summary plus wrk's own CPU seconds."""
    env = {**os.environ, "BENCH_PATH": target.path(mode), "BENCH_KEY": key}
    env["BENCH_BODY"] = REQUEST_BODY
    cmd = ["taskset", "-c", cpu] if cpu is not None else []
    cmd += ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    cmd += ["-s", str(BENCH / "wrk_post.lua"), f"http://127.0.0.1:{target.port}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({out.returncode}) on {target.name}: {out.stderr[-500:]}")
    summary: dict[str, Any] = json.loads(line.split(" ", 1)[1])
    summary["wrk_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return summary


def pause(targets: list[Target], running: Target) -> None:
    """SIGCONT `running`, SIGSTOP every other gateway (never the upstream, which `direct` is)."""
    for target in targets:
        if target.name != "direct":
            signal_group(target.pgid, signal.SIGCONT if target is running else signal.SIGSTOP)


def measure(targets: list[Target], args: argparse.Namespace, key: str) -> list[dict[str, Any]]:
    """Every scenario on every target in turn; one row per (scenario, target)."""
    rows: list[dict[str, Any]] = []
    cpus: Cpus = args.cpus
    upstream_pid = targets[0].pgid
    for mode, conns, threads in SCENARIOS:
        for target in targets:
            pause(targets, target)
            print(f"  {target.name:9} {mode:8} c={conns:<3}", end="", flush=True)
            if args.warmup > 0:
                run_wrk(target, mode, conns, threads, args.warmup, key, cpus.load)
            t0, up0 = cpu_seconds(target.pgid), cpu_seconds(upstream_pid)
            all0 = machine_busy_seconds()
            res = run_wrk(target, mode, conns, threads, args.duration, key, cpus.load)
            busy = machine_busy_seconds() - all0
            wall = res["duration_us"] / 1e6
            up_pct = 100 * (cpu_seconds(upstream_pid) - up0) / wall
            own_pct = 100 * (cpu_seconds(target.pgid) - t0) / wall  # the upstream's for direct
            wrk_pct = 100 * res["wrk_cpu_s"] / wall
            ours = up_pct + wrk_pct + (0 if target.name == "direct" else own_pct)
            row: dict[str, Any] = {"target": target.name, "mode": mode, "conns": conns}
            row |= res | {"threads": threads, "rps": res["requests"] / wall}
            row["errors"] = sum(res[k] for k in ERROR_KEYS)
            row |= {"target_cpu_pct": own_pct, "upstream_cpu_pct": up_pct, "wrk_cpu_pct": wrk_pct}
            row["other_cpu_pct"] = max(0.0, 100 * busy / wall - ours)
            rows.append(row)
            flag = f"  !! {row['errors']} errors" if row["errors"] else ""
            print(
                f" {row['rps']:9.0f} req/s  p50 {res['p50_us'] / 1000:7.2f} ms"
                f"  p99 {res['p99_us'] / 1000:7.2f} ms{flag}"
            )
    for target in targets:
        signal_group(target.pgid, signal.SIGCONT)
    return rows


# ---------------------------------------------------------------- report


@dataclass
class Cpus:
    """Which CPUs the targets and the load side (fake upstream + wrk) are pinned to."""

    target: str | None
    load: str | None

    def describe(self) -> str:
        if self.target is None:
            return "none (every process may run on every CPU)"
        return f"targets on CPU {self.target}; fake upstream and wrk on CPU {self.load}"


def command_output(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout + out.stderr).strip().splitlines()[0] if (out.stdout + out.stderr) else "?"


def environment(litellm: Path | None) -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    git = command_output(["git", "-C", str(REPO), "describe", "--always", "--dirty"])
    genroute = command_output([str(Path(sys.executable).with_name("genroute")), "--version"])
    litellm_version = "not run"
    if litellm is not None:
        py = str(litellm.with_name("python"))
        code = "import importlib.metadata as m; print(m.version('litellm'))"
        litellm_version = command_output([py, "-c", code])
    wrk_version = re.search(r"\d+\.\d+(\.\d+)?", command_output(["wrk", "-v"]))
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{os.cpu_count()} CPUs, {cpu}, Linux {platform.release()}",
        "genroute": f"{genroute.removeprefix('genroute ')} ({git})",
        "nginx": command_output([find_binary("nginx") or "nginx", "-v"]).split("/")[-1],
        "litellm": litellm_version,
        "wrk": wrk_version.group(0) if wrk_version else "?",
        "python": platform.python_version(),
    }


def ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def report(
    env: dict[str, str], targets: list[Target], rows: list[dict[str, Any]], args: argparse.Namespace
) -> str:
    cpus: Cpus = args.cpus
    direct = {(r["mode"], r["conns"]): r for r in rows if r["target"] == "direct"}
    out = [
        f"# genroute benchmark, {env['date']}",
        "",
        f"- machine: {env['machine']}",
        f"- versions: genroute {env['genroute']}, nginx {env['nginx']}, "
        f"LiteLLM {env['litellm']}, wrk {env['wrk']}, Python {env['python']}",
        f"- pinning: {cpus.describe()}; gateways not being measured are paused (SIGSTOP)",
        f"- load: wrk, {args.duration:g} s per run after a {args.warmup:g} s warm-up; "
        f"c=1 is `-t1 -c1`, c=32 is `-t2 -c32`; request body {len(REQUEST_BODY)} B; "
        "fake upstream answers at once (~1 KB JSON, or 5 SSE events)",
        "- latency is to the last byte (for a stream, the whole stream); "
        "+p50/+p99 are the target's minus `direct`'s in the same run",
        "- CPU% is of one CPU during the measured run; `other` is the rest of the machine "
        "(this script, other users): high values mean a noisy run",
        "",
        "| target | mode | c | req/s | p50 ms | p99 ms | +p50 ms | +p99 ms | errors "
        "| CPU% target | CPU% upstream | CPU% wrk | CPU% other |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        base = direct.get((r["mode"], r["conns"]))
        add50 = ms(r["p50_us"] - base["p50_us"]) if base and r["target"] != "direct" else "-"
        add99 = ms(r["p99_us"] - base["p99_us"]) if base and r["target"] != "direct" else "-"
        errors = f"**{r['errors']}** ⚠" if r["errors"] else "0"
        out.append(
            f"| {r['target']} | {r['mode']} | {r['conns']} | {r['rps']:.0f} | {ms(r['p50_us'])} "
            f"| {ms(r['p99_us'])} | {add50} | {add99} | {errors} | {r['target_cpu_pct']:.0f} "
            f"| {r['upstream_cpu_pct']:.0f} | {r['wrk_cpu_pct']:.0f} | {r['other_cpu_pct']:.0f} |"
        )
    out += ["", "| target | start s | idle RSS MiB | peak RSS MiB | upstream path used |"]
    out.append("|---|--:|--:|--:|---|")
    for t in targets:
        name = "direct (fake upstream)" if t.name == "direct" else t.name
        paths = "<br>".join(f"`{p}`" for p in t.upstream_paths)
        out.append(
            f"| {name} | {t.start_s:.1f} | {t.idle_rss_mib:.0f} | {t.peak_rss_mib:.0f} | {paths} |"
        )
    out += ["", "RSS is summed over the process tree; peak is the sum of VmHWM.", ""]
    add = {
        (r["target"], r["mode"]): r["p50_us"] - direct[(r["mode"], 1)]["p50_us"]
        for r in rows
        if r["conns"] == 1 and (r["mode"], 1) in direct
    }
    for mode in ("generate", "stream"):
        added = [f"{t} {ms(add[(t, mode)])}" for t in TARGETS[1:] if (t, mode) in add]
        if added:
            out.append(f"- added p50 at c=1, {mode} (ms): {', '.join(added)}")
    rps = {(r["target"], r["mode"], r["conns"]): r["rps"] for r in rows}
    for mode in ("generate", "stream"):
        g = rps.get(("genroute", mode, 32))
        parts = []
        if g and (n := rps.get(("nginx", mode, 32))):
            parts.append(f"{100 * g / n:.0f}% of nginx")
        if g and (lt := rps.get(("litellm", mode, 32))):
            parts.append(f"{g / lt:.1f}x LiteLLM")
        if parts:
            out.append(f"- genroute throughput at c=32, {mode}: {', '.join(parts)}")
    flagged = [r for r in rows if r["errors"]]
    for r in flagged:
        out.append(
            f"- ⚠ {r['target']} {r['mode']} c={r['conns']}: {r['status_errors']} non-2xx, "
            f"{r['connect_errors'] + r['read_errors'] + r['write_errors']} socket errors, "
            f"{r['timeouts']} timeouts"
        )
    for note in args.notes:
        out.append(f"- {note}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        default=",".join(TARGETS),
        help="comma-separated targets among direct,nginx,genroute,litellm "
        "(direct, the baseline, always runs)",
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    parser.add_argument("--skip-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="fake upstream latency")
    args = parser.parse_args(argv)
    chosen = {t.strip() for t in args.only.split(",") if t.strip()}
    if unknown := chosen - set(TARGETS):
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    if args.skip_litellm:
        chosen.discard("litellm")
    args.targets = [t for t in TARGETS if t in chosen or t == "direct"]
    if not 0 < args.duration <= 120 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be in (0, 120] and --warmup in [0, 60]")
    ncpu = len(os.sched_getaffinity(0))
    cpus = sorted(os.sched_getaffinity(0))
    pin = not args.no_pin and ncpu >= 2 and shutil.which("taskset") is not None
    args.cpus = Cpus(str(cpus[0]), str(cpus[1])) if pin else Cpus(None, None)
    args.notes = []
    return args


def on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that `finally` stops every server, as on Ctrl-C


def leave_out_litellm(args: argparse.Namespace, why: object) -> None:
    print(f"LiteLLM left out: {why}")
    lines = [line.strip() for line in str(why).splitlines() if line.strip()] or ["?"]
    args.notes.append(f"LiteLLM left out: {' … '.join(dict.fromkeys([lines[0], lines[-1]]))}")
    if "litellm" in args.targets:
        args.targets.remove("litellm")


def start_all(args: argparse.Namespace, procs: Procs, key: str) -> list[Target]:
    """The fake upstream, then every target, each verified; `direct` comes first."""
    cpus: Cpus = args.cpus
    up_port = free_port()
    argv = [sys.executable, str(BENCH / "fake_upstream.py"), "--port", str(up_port)]
    upstream = procs.start("fake_upstream", [*argv, "--delay-ms", str(args.delay_ms)], cpus.load)
    wait_ready("fake_upstream", upstream, up_port, 20)
    status, body = post(up_port, "/v1beta/models/x:generateContent", None)
    if status != 403 or b"PERMISSION_DENIED" not in body:
        raise BenchError(f"fake upstream accepted a request without a key: {status}")
    targets = [Target("direct", up_port, "gemini-2.5-flash", upstream.pid)]
    for name in args.targets[1:]:
        print(f"starting {name} ...", flush=True)
        try:
            targets.append(start_target(name, procs, up_port, cpus.target, key, args.litellm))
        except BenchError as exc:
            if name != "litellm":
                raise
            leave_out_litellm(args, exc)
    for target in list(targets):
        try:
            verify(target, key, up_port)
        except (BenchError, OSError, ValueError, KeyError, IndexError) as exc:
            if target.name != "litellm":
                raise BenchError(f"verification failed: {exc}") from exc
            leave_out_litellm(args, f"verification failed: {exc}")
            signal_group(target.pgid, signal.SIGTERM)
            targets.remove(target)
            continue
        target.idle_rss_mib = tree_mib(target.pgid, "VmRSS")
        print(
            f"verified {target.name:9} (port {target.port}; upstream {target.upstream_paths};"
            f" {target.stream_events} SSE events; idle RSS {target.idle_rss_mib:.0f} MiB)"
        )
    return targets


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    WORK.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    procs, key = Procs(LOGS, WORK), "sk-" + secrets.token_hex(32)
    try:
        ensure_system_tools()
        args.litellm = None
        if "litellm" in args.targets:
            try:
                args.litellm = ensure_litellm()
            except (BenchError, subprocess.TimeoutExpired) as exc:
                leave_out_litellm(args, exc)
        print(f"pinning: {args.cpus.describe()}")
        targets = start_all(args, procs, key)
        print("measuring ...")
        rows = measure(targets, args, key)
        for target in targets:
            target.peak_rss_mib = tree_mib(target.pgid, "VmHWM")
        env = environment(args.litellm if "litellm" in args.targets else None)
        table = report(env, targets, rows, args)
        print("\n" + table)
        (BENCH / "results.md").write_text(table)
        raw: dict[str, Any] = {"env": env, "pinning": asdict(args.cpus)}
        raw["request_body"] = REQUEST_BODY
        raw |= {"targets": [asdict(t) for t in targets], "runs": rows}
        (WORK / "results.json").write_text(json.dumps(raw, indent=2))
        print(f"wrote {BENCH / 'results.md'} and {WORK / 'results.json'}")
        return 0
    except BenchError as exc:
        print(f"\nbenchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
